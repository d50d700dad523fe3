//! Encoding of the server's token stream: LOGINACK, ENVCHANGE, INFO/ERROR, COLMETADATA, ROW,
//! DONE/DONEINPROC/DONEPROC and RETURNSTATUS (MS-TDS 2.2.7), TDS 7.2 and later layouts.

use super::wire::{put_b_varchar, put_ucs2, put_us_varchar, ucs2_len};
use crate::sql::{Column, ResultSet, ServerMessage, SqlType, Value};

/// Latin1_General_CI_AS, the collation the simulated server reports.
pub const COLLATION: [u8; 5] = [0x09, 0x04, 0xD0, 0x00, 0x34];

pub const DONE_FINAL: u16 = 0x00;
pub const DONE_MORE: u16 = 0x01;
pub const DONE_ERROR: u16 = 0x02;
pub const DONE_COUNT: u16 = 0x10;
pub const DONE_ATTN: u16 = 0x20;

/// Name the server gives itself in INFO/ERROR tokens.
pub struct TokenWriter {
    pub out: Vec<u8>,
    server_name: String,
}

impl TokenWriter {
    pub fn new(server_name: &str) -> Self {
        TokenWriter {
            out: Vec::new(),
            server_name: server_name.to_string(),
        }
    }

    fn with_len(&mut self, token: u8, body: Vec<u8>) {
        self.out.push(token);
        self.out
            .extend_from_slice(&(body.len().min(u16::MAX as usize) as u16).to_le_bytes());
        self.out.extend(body);
    }

    pub fn env_database(&mut self, new: &str, old: &str) {
        let mut b = vec![1u8];
        put_b_varchar(&mut b, new);
        put_b_varchar(&mut b, old);
        self.with_len(0xE3, b);
    }

    pub fn env_language(&mut self, new: &str) {
        let mut b = vec![2u8];
        put_b_varchar(&mut b, new);
        put_b_varchar(&mut b, "");
        self.with_len(0xE3, b);
    }

    pub fn env_packet_size(&mut self, new: u32, old: u32) {
        let mut b = vec![4u8];
        put_b_varchar(&mut b, &new.to_string());
        put_b_varchar(&mut b, &old.to_string());
        self.with_len(0xE3, b);
    }

    pub fn env_collation(&mut self) {
        let mut b = vec![7u8, COLLATION.len() as u8];
        b.extend_from_slice(&COLLATION);
        b.push(0);
        self.with_len(0xE3, b);
    }

    pub fn login_ack(&mut self, tds_version: u32) {
        let mut b = vec![1u8];
        b.extend_from_slice(&tds_version.to_be_bytes());
        put_b_varchar(&mut b, "Microsoft SQL Server");
        b.extend_from_slice(&[13, 0, 0x13, 0xA2]);
        self.with_len(0xAD, b);
    }

    fn message(&mut self, token: u8, m: &ServerMessage) {
        let mut b = Vec::new();
        b.extend_from_slice(&m.number.to_le_bytes());
        b.push(m.state);
        b.push(m.class);
        put_us_varchar(&mut b, &m.text);
        put_b_varchar(&mut b, &self.server_name);
        put_b_varchar(&mut b, &m.procedure);
        b.extend_from_slice(&m.line.to_le_bytes());
        self.with_len(token, b);
    }

    pub fn info(&mut self, m: &ServerMessage) {
        self.message(0xAB, m);
    }

    pub fn error(&mut self, m: &ServerMessage) {
        self.message(0xAA, m);
    }

    pub fn done(&mut self, token: u8, status: u16, count: u64) {
        self.out.push(token);
        self.out.extend_from_slice(&status.to_le_bytes());
        self.out.extend_from_slice(&0xC1u16.to_le_bytes());
        self.out.extend_from_slice(&count.to_le_bytes());
    }

    pub fn return_status(&mut self, status: i32) {
        self.out.push(0x79);
        self.out.extend_from_slice(&status.to_le_bytes());
    }

    pub fn result_set(&mut self, rs: &ResultSet) {
        self.out.push(0x81);
        self.out
            .extend_from_slice(&(rs.columns.len() as u16).to_le_bytes());
        let wide: Vec<bool> = rs
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                c.ty == SqlType::NVarChar
                    && rs
                        .rows
                        .iter()
                        .any(|r| matches!(r.get(i), Some(Value::Text(s)) if ucs2_len(s) > 4000))
            })
            .collect();
        for (c, wide) in rs.columns.iter().zip(&wide) {
            self.column(c, *wide);
        }
        for row in &rs.rows {
            self.out.push(0xD1);
            for ((c, v), wide) in rs.columns.iter().zip(row).zip(&wide) {
                self.value(c.ty, v, *wide);
            }
        }
    }

    fn column(&mut self, c: &Column, wide: bool) {
        self.out.extend_from_slice(&0u32.to_le_bytes());
        self.out.extend_from_slice(&0x0001u16.to_le_bytes()); // nullable
        match c.ty {
            SqlType::Int => self.out.extend_from_slice(&[0x26, 4]),
            SqlType::BigInt => self.out.extend_from_slice(&[0x26, 8]),
            SqlType::Bit => self.out.extend_from_slice(&[0x68, 1]),
            SqlType::Float => self.out.extend_from_slice(&[0x6D, 8]),
            SqlType::NVarChar => {
                self.out.push(0xE7);
                let max: u16 = if wide { 0xFFFF } else { 8000 };
                self.out.extend_from_slice(&max.to_le_bytes());
                self.out.extend_from_slice(&COLLATION);
            }
        }
        put_b_varchar(&mut self.out, &c.name);
    }

    fn value(&mut self, ty: SqlType, v: &Value, wide: bool) {
        let o = &mut self.out;
        match (ty, v) {
            (SqlType::NVarChar, Value::Null) if wide => {
                o.extend_from_slice(&u64::MAX.to_le_bytes())
            }
            (SqlType::NVarChar, Value::Null) => o.extend_from_slice(&0xFFFFu16.to_le_bytes()),
            (_, Value::Null) => o.push(0),
            (SqlType::Int, Value::Int(i)) => {
                o.push(4);
                o.extend_from_slice(&(*i as i32).to_le_bytes());
            }
            (SqlType::BigInt, Value::Int(i)) => {
                o.push(8);
                o.extend_from_slice(&i.to_le_bytes());
            }
            (SqlType::Bit, Value::Int(i)) => {
                o.push(1);
                o.push((*i != 0) as u8);
            }
            (SqlType::Float, Value::Float(f)) => {
                o.push(8);
                o.extend_from_slice(&f.to_le_bytes());
            }
            (SqlType::NVarChar, v) => {
                let mut bytes = Vec::new();
                put_ucs2(&mut bytes, &v.to_text());
                if wide {
                    o.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                    if !bytes.is_empty() {
                        o.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                        o.extend_from_slice(&bytes);
                    }
                    o.extend_from_slice(&0u32.to_le_bytes());
                } else {
                    o.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
                    o.extend_from_slice(&bytes);
                }
            }
            // The engine chooses column types from the values, so other pairs cannot occur;
            // a NULL keeps the stream well-formed if they ever did.
            (_, _) => o.push(0),
        }
    }
}
