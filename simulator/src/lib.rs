//! A simulated Connected Backup Data Center that speaks the real protocols: TDS for the
//! Registry and Directory databases, HTTPS for the IIS endpoints the verification probes read.

pub mod certs;
pub mod iis;
pub mod sql;
pub mod tds;
