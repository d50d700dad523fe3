//! Lockstep: conducts Connected Backup Data Center upgrades.

pub mod engine;
pub mod knowledge;
