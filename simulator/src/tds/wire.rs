//! TDS framing: 8-byte packet headers, whole-message reassembly, and a bounds-checked reader for
//! the little- and big-endian fields and UCS-2 strings TDS payloads are made of.
//!
//! Everything a client sends is untrusted: every read is checked and answers a [`WireError`]
//! naming what was wrong, never a panic.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Packet types the simulated server understands (MS-TDS 2.2.3.1.1).
pub const PKT_SQL_BATCH: u8 = 0x01;
pub const PKT_RPC: u8 = 0x03;
pub const PKT_REPLY: u8 = 0x04;
pub const PKT_ATTENTION: u8 = 0x06;
pub const PKT_LOGIN7: u8 = 0x10;
pub const PKT_PRELOGIN: u8 = 0x12;

const HEADER_LEN: usize = 8;
const STATUS_EOM: u8 = 0x01;
/// Largest message (all packets of one request) the simulator accepts: far above anything the
/// procedure sends, low enough that a hostile client cannot exhaust memory.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("the client closed the connection")]
    Closed,
    #[error("i/o error: {0}")]
    Io(String),
    #[error("packet length {0} is outside 8..={1}")]
    BadPacketLength(usize, usize),
    #[error("message exceeds {MAX_MESSAGE} bytes")]
    TooLarge,
    #[error("packet type changed from {0:#04x} to {1:#04x} inside one message")]
    MixedTypes(u8, u8),
    #[error("truncated {0}: needed {1} more bytes")]
    Truncated(&'static str, usize),
    #[error("{0}")]
    Malformed(String),
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            WireError::Closed
        } else {
            WireError::Io(e.to_string())
        }
    }
}

/// One reassembled client message.
#[derive(Debug, Clone)]
pub struct Message {
    pub kind: u8,
    pub payload: Vec<u8>,
}

/// Reads packets until end-of-message. `max_packet` is the negotiated packet size.
pub async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
    max_packet: usize,
) -> Result<Message, WireError> {
    let mut payload = Vec::new();
    let mut kind = None;
    loop {
        let mut header = [0u8; HEADER_LEN];
        r.read_exact(&mut header).await?;
        let len = u16::from_be_bytes([header[2], header[3]]) as usize;
        if !(HEADER_LEN..=max_packet).contains(&len) {
            return Err(WireError::BadPacketLength(len, max_packet));
        }
        match kind {
            None => kind = Some(header[0]),
            Some(k) if k != header[0] => return Err(WireError::MixedTypes(k, header[0])),
            Some(_) => {}
        }
        if payload.len() + len - HEADER_LEN > MAX_MESSAGE {
            return Err(WireError::TooLarge);
        }
        let start = payload.len();
        payload.resize(start + len - HEADER_LEN, 0);
        r.read_exact(&mut payload[start..]).await?;
        if header[1] & STATUS_EOM != 0 {
            return Ok(Message {
                kind: header[0],
                payload,
            });
        }
    }
}

/// Writes `payload` as a reply message split into packets of at most `packet_size` bytes.
pub async fn write_message<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: u8,
    payload: &[u8],
    packet_size: usize,
) -> Result<(), WireError> {
    let chunk = packet_size.saturating_sub(HEADER_LEN).max(1);
    let mut out = Vec::with_capacity(payload.len() + HEADER_LEN * (payload.len() / chunk + 1));
    let mut chunks = payload.chunks(chunk).peekable();
    let mut id: u8 = 1;
    if chunks.peek().is_none() {
        out.extend_from_slice(&[kind, STATUS_EOM, 0, HEADER_LEN as u8, 0, 0, 1, 0]);
    }
    while let Some(c) = chunks.next() {
        let last = chunks.peek().is_none();
        let len = (c.len() + HEADER_LEN) as u16;
        out.push(kind);
        out.push(if last { STATUS_EOM } else { 0 });
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&[0, 0, id, 0]);
        out.extend_from_slice(c);
        id = id.wrapping_add(1);
    }
    w.write_all(&out).await?;
    w.flush().await?;
    Ok(())
}

/// A bounds-checked cursor over a payload.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// `what` names the structure being read, for error messages.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }
    pub fn pos(&self) -> usize {
        self.pos
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn seek(&mut self, pos: usize) -> Result<(), WireError> {
        if pos > self.buf.len() {
            return Err(WireError::Truncated(self.what, pos - self.buf.len()));
        }
        self.pos = pos;
        Ok(())
    }
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated(self.what, n - self.remaining()));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.bytes(1)?[0])
    }
    pub fn u16_le(&mut self) -> Result<u16, WireError> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub fn u16_be(&mut self) -> Result<u16, WireError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn u32_le(&mut self) -> Result<u32, WireError> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u32_be(&mut self) -> Result<u32, WireError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64_le(&mut self) -> Result<u64, WireError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// `chars` UCS-2 code units.
    pub fn ucs2(&mut self, chars: usize) -> Result<String, WireError> {
        let b = self.bytes(chars * 2)?;
        decode_ucs2(b)
    }
    /// B_VARCHAR: one length byte (in characters), then UCS-2.
    pub fn b_varchar(&mut self) -> Result<String, WireError> {
        let n = self.u8()? as usize;
        self.ucs2(n)
    }
}

pub fn decode_ucs2(b: &[u8]) -> Result<String, WireError> {
    if b.len() & 1 != 0 {
        return Err(WireError::Malformed(
            "UCS-2 text has an odd number of bytes".into(),
        ));
    }
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).map_err(|_| WireError::Malformed("text is not valid UTF-16".into()))
}

/// Appends UCS-2 (UTF-16LE) bytes of `s`.
pub fn put_ucs2(out: &mut Vec<u8>, s: &str) {
    for u in s.encode_utf16() {
        out.extend_from_slice(&u.to_le_bytes());
    }
}

pub fn ucs2_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// B_VARCHAR, truncated to 255 characters (the format's limit).
pub fn put_b_varchar(out: &mut Vec<u8>, s: &str) {
    let units: Vec<u16> = s.encode_utf16().take(255).collect();
    out.push(units.len() as u8);
    for u in units {
        out.extend_from_slice(&u.to_le_bytes());
    }
}

/// US_VARCHAR, truncated to 65535 characters.
pub fn put_us_varchar(out: &mut Vec<u8>, s: &str) {
    let units: Vec<u16> = s.encode_utf16().take(65535).collect();
    out.extend_from_slice(&(units.len() as u16).to_le_bytes());
    for u in units {
        out.extend_from_slice(&u.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_message_split_over_packets_is_reassembled() {
        let mut buf = Vec::new();
        write_message(&mut buf, PKT_SQL_BATCH, &[7u8; 20], 16)
            .await
            .unwrap();
        let m = read_message(&mut buf.as_slice(), 4096).await.unwrap();
        assert_eq!(m.kind, PKT_SQL_BATCH);
        assert_eq!(m.payload, vec![7u8; 20]);
    }

    #[tokio::test]
    async fn a_packet_longer_than_negotiated_is_refused() {
        let pkt = [1u8, 1, 0x20, 0x00, 0, 0, 1, 0];
        let e = read_message(&mut &pkt[..], 4096).await.unwrap_err();
        assert_eq!(e, WireError::BadPacketLength(0x2000, 4096));
    }

    #[tokio::test]
    async fn a_header_shorter_than_itself_is_refused() {
        let pkt = [1u8, 1, 0, 3, 0, 0, 1, 0];
        assert!(matches!(
            read_message(&mut &pkt[..], 4096).await,
            Err(WireError::BadPacketLength(3, _))
        ));
    }

    #[test]
    fn reading_past_the_end_names_the_structure() {
        let mut r = Reader::new(&[1, 2], "LOGIN7");
        assert_eq!(r.u32_le(), Err(WireError::Truncated("LOGIN7", 2)));
    }
}
