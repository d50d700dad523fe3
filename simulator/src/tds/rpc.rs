//! Decoding of RPC requests (MS-TDS 2.2.6.6): which procedure, and its typed parameters.
//! tiberius sends every parameterized query as `sp_executesql` (ProcID 10) with `@stmt`,
//! `@params` and `@P1…`, so that is what this module must read exactly.

use super::wire::{decode_ucs2, Reader, WireError};
use crate::sql::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Procedure {
    Id(u16),
    Name(String),
}

impl Procedure {
    pub fn is_executesql(&self) -> bool {
        match self {
            Procedure::Id(10) => true,
            Procedure::Name(n) => {
                let n = n.to_ascii_lowercase();
                n == "sp_executesql" || n == "sys.sp_executesql"
            }
            Procedure::Id(_) => false,
        }
    }
    pub fn display(&self) -> String {
        match self {
            Procedure::Id(10) => "sp_executesql".into(),
            Procedure::Id(n) => format!("procedure id {n}"),
            Procedure::Name(n) => n.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RpcRequest {
    pub procedure: Procedure,
    pub params: Vec<Param>,
}

/// Skips ALL_HEADERS (present from TDS 7.2 on) at the start of a batch or RPC payload.
pub fn skip_all_headers(r: &mut Reader, tds72: bool) -> Result<(), WireError> {
    if !tds72 {
        return Ok(());
    }
    let total = r.u32_le()? as usize;
    if total < 4 {
        return Err(WireError::Malformed(format!(
            "ALL_HEADERS length {total} is below 4"
        )));
    }
    r.seek(total)
}

pub fn parse_rpc(payload: &[u8], tds72: bool) -> Result<RpcRequest, WireError> {
    let mut r = Reader::new(payload, "RPC request");
    skip_all_headers(&mut r, tds72)?;
    let name_len = r.u16_le()?;
    let procedure = if name_len == 0xFFFF {
        Procedure::Id(r.u16_le()?)
    } else {
        Procedure::Name(r.ucs2(name_len as usize)?)
    };
    let _options = r.u16_le()?;
    let mut params = Vec::new();
    while r.remaining() > 0 {
        // A batch separator (0xFF/0x80) would start a second RPC: the simulator takes one.
        let name = r.b_varchar()?;
        let _status = r.u8()?;
        let value = read_typed_value(&mut r)?;
        params.push(Param { name, value });
    }
    Ok(RpcRequest { procedure, params })
}

fn read_typed_value(r: &mut Reader) -> Result<Value, WireError> {
    let ty = r.u8()?;
    match ty {
        0x1F => Ok(Value::Null),
        0x30 => Ok(Value::Int(r.u8()? as i64)),
        0x34 => Ok(Value::Int(r.u16_le()? as i16 as i64)),
        0x38 => Ok(Value::Int(r.u32_le()? as i32 as i64)),
        0x7F => Ok(Value::Int(r.u64_le()? as i64)),
        0x32 => Ok(Value::Int((r.u8()? != 0) as i64)),
        0x3E => Ok(Value::Float(f64::from_bits(r.u64_le()?))),
        0x26 | 0x68 => {
            let _max = r.u8()?;
            let len = r.u8()?;
            match (ty, len) {
                (_, 0) => Ok(Value::Null),
                (0x68, 1) => Ok(Value::Int((r.u8()? != 0) as i64)),
                (0x26, 1) => Ok(Value::Int(r.u8()? as i64)),
                (0x26, 2) => Ok(Value::Int(r.u16_le()? as i16 as i64)),
                (0x26, 4) => Ok(Value::Int(r.u32_le()? as i32 as i64)),
                (0x26, 8) => Ok(Value::Int(r.u64_le()? as i64)),
                _ => Err(WireError::Malformed(format!(
                    "parameter of type {ty:#04x} has impossible length {len}"
                ))),
            }
        }
        0x6D => {
            let _max = r.u8()?;
            match r.u8()? {
                0 => Ok(Value::Null),
                4 => Ok(Value::Float(f32::from_bits(r.u32_le()?) as f64)),
                8 => Ok(Value::Float(f64::from_bits(r.u64_le()?))),
                n => Err(WireError::Malformed(format!(
                    "FLTN parameter has length {n}"
                ))),
            }
        }
        0xE7 | 0xEF | 0xA7 | 0xAF => {
            let max = r.u16_le()?;
            let _collation = r.bytes(5)?;
            let wide = ty == 0xE7 || ty == 0xEF;
            let bytes = if max == 0xFFFF {
                read_plp(r)?
            } else {
                match r.u16_le()? {
                    0xFFFF => None,
                    n => Some(r.bytes(n as usize)?.to_vec()),
                }
            };
            match bytes {
                None => Ok(Value::Null),
                Some(b) if wide => Ok(Value::Text(decode_ucs2(&b)?)),
                Some(b) => Ok(Value::Text(b.iter().map(|&c| c as char).collect())),
            }
        }
        other => Err(WireError::Malformed(format!(
            "parameter type {other:#04x} is not supported by the simulated server \
             (it reads NVARCHAR, VARCHAR, INT, BIGINT, BIT and FLOAT parameters)"
        ))),
    }
}

/// Partially length-prefixed bytes (NVARCHAR(MAX)): total length, then chunks ending in 0.
fn read_plp(r: &mut Reader) -> Result<Option<Vec<u8>>, WireError> {
    let total = r.u64_le()?;
    if total == u64::MAX {
        return Ok(None);
    }
    let mut out = Vec::new();
    loop {
        let n = r.u32_le()? as usize;
        if n == 0 {
            return Ok(Some(out));
        }
        if out.len() + n > super::wire::MAX_MESSAGE {
            return Err(WireError::TooLarge);
        }
        out.extend_from_slice(r.bytes(n)?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_parameters_are_refused_without_panicking() {
        let mut p = vec![0xFF, 0xFF, 10, 0, 0, 0];
        p.extend_from_slice(&[2, b'@', 0, b'x', 0, 0, 0xE7, 0x40, 0x1F]);
        for n in 0..p.len() {
            let _ = parse_rpc(&p[..n], false);
        }
        assert!(parse_rpc(&p, false).is_err());
    }

    #[test]
    fn an_int_parameter_is_read() {
        let mut p = vec![0xFF, 0xFF, 10, 0, 0, 0];
        p.extend_from_slice(&[3, b'@', 0, b'P', 0, b'1', 0, 0, 0x26, 4, 4, 7, 0, 0, 0]);
        let rpc = parse_rpc(&p, false).unwrap();
        assert!(rpc.procedure.is_executesql());
        assert_eq!(rpc.params[0].name, "@P1");
        assert_eq!(rpc.params[0].value, Value::Int(7));
    }
}
