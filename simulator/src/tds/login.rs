//! PRELOGIN and LOGIN7: what the client asks for, and the server's PRELOGIN answer.
//!
//! The simulator never encrypts: it answers `ENCRYPT_NOT_SUP`, so a client that requires
//! encryption (the SQL executor's default) refuses to continue, as it would against a real server
//! without a certificate.

use super::wire::{Reader, WireError};

pub const ENCRYPT_OFF: u8 = 0x00;
pub const ENCRYPT_ON: u8 = 0x01;
pub const ENCRYPT_NOT_SUP: u8 = 0x02;
pub const ENCRYPT_REQ: u8 = 0x03;

/// The client's PRELOGIN options the simulator looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prelogin {
    pub encryption: Option<u8>,
}

pub fn parse_prelogin(payload: &[u8]) -> Result<Prelogin, WireError> {
    let mut r = Reader::new(payload, "PRELOGIN");
    let mut encryption = None;
    for _ in 0..64 {
        let token = r.u8()?;
        if token == 0xFF {
            return Ok(Prelogin { encryption });
        }
        let offset = r.u16_be()? as usize;
        let len = r.u16_be()? as usize;
        if offset + len > payload.len() {
            return Err(WireError::Malformed(format!(
                "PRELOGIN option {token:#04x} points past the end of the message"
            )));
        }
        if token == 0x01 {
            if len != 1 {
                return Err(WireError::Malformed(
                    "PRELOGIN ENCRYPTION must be one byte".into(),
                ));
            }
            encryption = Some(payload[offset]);
        }
    }
    Err(WireError::Malformed("PRELOGIN has no terminator".into()))
}

/// The server's PRELOGIN reply: version (SQL Server 2016, 13.0.5026), encryption not supported,
/// no instance name, no thread id, MARS off.
pub fn prelogin_reply() -> Vec<u8> {
    let version: [u8; 6] = [13, 0, 0x13, 0xA2, 0, 0];
    let opts: [(u8, &[u8]); 4] = [
        (0x00, &version),
        (0x01, &[ENCRYPT_NOT_SUP]),
        (0x02, &[0x00]),
        (0x04, &[0x00]),
    ];
    let mut head = Vec::new();
    let mut data = Vec::new();
    let base = opts.len() * 5 + 1;
    for (token, value) in opts {
        head.push(token);
        head.extend_from_slice(&((base + data.len()) as u16).to_be_bytes());
        head.extend_from_slice(&(value.len() as u16).to_be_bytes());
        data.extend_from_slice(value);
    }
    head.push(0xFF);
    head.extend(data);
    head
}

/// The parts of LOGIN7 the simulator uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login7 {
    pub tds_version: u32,
    pub packet_size: u32,
    pub user: String,
    pub password: String,
    pub app_name: String,
    pub database: String,
    /// Integrated (SSPI) authentication was requested; the simulator refuses it.
    pub sspi: bool,
}

pub fn parse_login7(payload: &[u8]) -> Result<Login7, WireError> {
    let mut r = Reader::new(payload, "LOGIN7");
    let total = r.u32_le()? as usize;
    if total > payload.len() || total < 94 {
        return Err(WireError::Malformed(format!(
            "LOGIN7 declares {total} bytes but {} arrived",
            payload.len()
        )));
    }
    let tds_version = r.u32_le()?;
    let packet_size = r.u32_le()?;
    r.seek(24)?;
    let _flags1 = r.u8()?;
    let flags2 = r.u8()?;
    // offset/length pairs start at byte 36
    r.seek(36)?;
    let field = |r: &mut Reader| -> Result<(usize, usize), WireError> {
        Ok((r.u16_le()? as usize, r.u16_le()? as usize))
    };
    let host = field(&mut r)?;
    let user = field(&mut r)?;
    let password = field(&mut r)?;
    let app = field(&mut r)?;
    let _server = field(&mut r)?;
    let _ext = field(&mut r)?;
    let _lib = field(&mut r)?;
    let _lang = field(&mut r)?;
    let database = field(&mut r)?;
    let _ = host;
    let text = |(off, chars): (usize, usize), name: &str| -> Result<String, WireError> {
        let end = off + chars * 2;
        if end > total {
            return Err(WireError::Malformed(format!(
                "LOGIN7 {name} lies outside the message"
            )));
        }
        super::wire::decode_ucs2(&payload[off..end])
    };
    let (poff, pchars) = password;
    if poff + pchars * 2 > total {
        return Err(WireError::Malformed(
            "LOGIN7 password lies outside the message".into(),
        ));
    }
    // Passwords are obfuscated: each byte had its nibbles swapped, then was XORed with 0xA5.
    let clear: Vec<u8> = payload[poff..poff + pchars * 2]
        .iter()
        .map(|b| {
            let x = b ^ 0xA5;
            x.rotate_left(4)
        })
        .collect();
    Ok(Login7 {
        tds_version,
        packet_size,
        user: text(user, "user name")?,
        password: super::wire::decode_ucs2(&clear)?,
        app_name: text(app, "application name")?,
        database: text(database, "database")?,
        sspi: flags2 & 0x80 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_says_encryption_is_not_supported() {
        let reply = prelogin_reply();
        assert_eq!(
            parse_prelogin(&reply).unwrap().encryption,
            Some(ENCRYPT_NOT_SUP)
        );
    }

    #[test]
    fn a_prelogin_option_pointing_outside_is_refused() {
        let bad = [0x01u8, 0x00, 0x40, 0x00, 0x01, 0xFF];
        assert!(parse_prelogin(&bad).is_err());
    }

    #[test]
    fn a_short_login7_is_refused_without_panicking() {
        for n in 0..100 {
            let _ = parse_login7(&vec![0xFFu8; n]);
        }
        assert!(parse_login7(&[0u8; 10]).is_err());
    }
}
