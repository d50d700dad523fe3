//! One journal record on disk: a checked frame, and the scan that verifies a whole file.
//!
//! A frame is one line: `LLLLLLLL CCCCCCCCCCCCCCCC {json}\n` — the payload's length (8 hex
//! digits) and the first 8 bytes of its SHA-256 (16 hex digits), then the payload (a record's
//! JSON, which never holds a raw newline). A line is accepted only when all three agree, so a
//! flipped byte anywhere — in the length, the checksum, the payload or a line end — is found.
//!
//! Lines that start with `{` are the old format (bare JSON, no checksum): they are read as
//! before so an agent upgraded in place keeps its history, and the journal rewrites them as
//! frames when it opens the file (see `Journal::open`).

use sha2::{Digest, Sha256};

/// Header: 8 hex length, space, 16 hex checksum, space.
pub const HEADER_LEN: usize = 8 + 1 + 16 + 1;
/// The largest payload a frame may carry (a record is a few KiB; this bounds a damaged length).
pub const MAX_PAYLOAD: usize = 4 << 20;

fn checksum(payload: &[u8]) -> String {
    hex::encode(&Sha256::digest(payload)[..8])
}

/// The bytes of one frame for `payload` (which must not contain `\n`).
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + 1);
    out.extend_from_slice(format!("{:08x} {} ", payload.len(), checksum(payload)).as_bytes());
    out.extend_from_slice(payload);
    out.push(b'\n');
    out
}

/// Where a journal file is damaged: the byte offset and line of the first bad record.
#[derive(Debug, Clone, PartialEq)]
pub struct Damage {
    pub offset: u64,
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {} (byte {}): {}",
            self.line, self.offset, self.reason
        )
    }
}

/// One verified record's payload with where it was found.
#[derive(Debug, Clone)]
pub struct Found {
    pub offset: u64,
    pub line: usize,
    pub payload: Vec<u8>,
    /// Read from an old-format (unchecked) line.
    pub legacy: bool,
}

/// The result of verifying a whole file.
#[derive(Debug, Default)]
pub struct Scan {
    pub records: Vec<Found>,
    /// Every damaged line (the agent stops at the first; `lockstep-agent journal` lists all).
    pub damage: Vec<Damage>,
    /// Byte length of the file up to the end of the last complete line: what to keep when a
    /// torn tail is cut off.
    pub whole_len: u64,
    /// A last write that never finished (shorter than its header says): offset where it begins.
    pub torn_at: Option<u64>,
}

fn is_hex(b: &[u8]) -> bool {
    b.iter()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

/// Checks one complete line (without its `\n`); `Ok(payload, legacy)` or why it is damaged.
fn check_line(line: &[u8]) -> Result<(Vec<u8>, bool), String> {
    if line.first() == Some(&b'{') {
        return match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(_) => Ok((line.to_vec(), true)),
            Err(e) => Err(format!("old-format record is not valid JSON ({e})")),
        };
    }
    if line.len() < HEADER_LEN {
        return Err(format!(
            "{} bytes, shorter than a frame header ({HEADER_LEN})",
            line.len()
        ));
    }
    let (len_hex, sum_hex) = (&line[..8], &line[9..25]);
    if !is_hex(len_hex) || line[8] != b' ' || !is_hex(sum_hex) || line[25] != b' ' {
        return Err("the frame header is not `LENGTH CHECKSUM `".into());
    }
    let payload = &line[HEADER_LEN..];
    let claimed = usize::from_str_radix(&String::from_utf8_lossy(len_hex), 16)
        .map_err(|e| format!("length field: {e}"))?;
    if claimed != payload.len() {
        return Err(format!(
            "the header says {claimed} bytes but the record holds {}",
            payload.len()
        ));
    }
    if sum_hex != checksum(payload).as_bytes() {
        return Err("checksum mismatch: the record was altered on disk".into());
    }
    Ok((payload.to_vec(), false))
}

/// Whether `tail` (bytes after the last `\n`) is the start of a frame that was never finished:
/// a header prefix that is well formed so far, with fewer payload bytes than it announces.
fn is_torn(tail: &[u8]) -> bool {
    if tail.first() == Some(&b'{') {
        // An old-format line cut short by a crash: the old agent ignored it too.
        return serde_json::from_slice::<serde_json::Value>(tail).is_err();
    }
    let head = &tail[..tail.len().min(HEADER_LEN)];
    let shape_ok = head.iter().enumerate().all(|(i, c)| match i {
        8 | 25 => *c == b' ',
        _ => is_hex(&[*c]),
    });
    if !shape_ok {
        return false;
    }
    if tail.len() < HEADER_LEN {
        return true;
    }
    let claimed = usize::from_str_radix(&String::from_utf8_lossy(&tail[..8]), 16).unwrap_or(0);
    tail.len() - HEADER_LEN < claimed && claimed <= MAX_PAYLOAD
}

/// Verifies every line of a journal file's bytes. Never fails: damage is reported, not thrown,
/// and bytes that are not UTF-8 are just bytes here.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut scan = Scan::default();
    let mut pos = 0usize;
    let mut line_no = 0usize;
    while pos < bytes.len() {
        line_no += 1;
        match bytes[pos..].iter().position(|b| *b == b'\n') {
            Some(n) => {
                let line = &bytes[pos..pos + n];
                if !line.is_empty() {
                    match check_line(line) {
                        Ok((payload, legacy)) => scan.records.push(Found {
                            offset: pos as u64,
                            line: line_no,
                            payload,
                            legacy,
                        }),
                        Err(reason) => scan.damage.push(Damage {
                            offset: pos as u64,
                            line: line_no,
                            reason,
                        }),
                    }
                }
                pos += n + 1;
                scan.whole_len = pos as u64;
            }
            None => {
                let tail = &bytes[pos..];
                if is_torn(tail) {
                    scan.torn_at = Some(pos as u64);
                } else {
                    scan.damage.push(Damage {
                        offset: pos as u64,
                        line: line_no,
                        reason: "the last record has no end of line but is not a write cut short"
                            .into(),
                    });
                }
                break;
            }
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_reads_back_and_any_flipped_byte_is_found() {
        let f = encode(br#"{"record":"x"}"#);
        let s = scan(&f);
        assert_eq!(s.records.len(), 1);
        assert!(s.damage.is_empty() && s.torn_at.is_none());
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x01;
            let s = scan(&g);
            assert!(
                !s.damage.is_empty() || s.records.is_empty(),
                "byte {i} flipped went unnoticed"
            );
        }
    }

    #[test]
    fn a_write_cut_short_is_torn_not_damage() {
        let f = encode(br#"{"record":"x"}"#);
        for cut in 1..f.len() - 1 {
            let s = scan(&f[..cut]);
            assert_eq!(s.torn_at, Some(0), "cut at {cut}");
            assert!(s.damage.is_empty(), "cut at {cut}");
        }
    }
}
