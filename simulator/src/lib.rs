//! A simulated Connected Backup Data Center that speaks the real protocols: TDS for the
//! Registry and Directory databases, HTTPS for the IIS endpoints the verification probes read.

pub mod sql;
pub mod tds;
