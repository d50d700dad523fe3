//! A simulated Connected Backup Data Center that speaks the real protocols: TDS for the
//! Registry and Directory databases, HTTPS for the IIS endpoints the verification probes read.

// Production code never unwraps, expects or panics on what it is given (the lint gate, see the
// workspace `Cargo.toml`); unit tests may.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod certs;
pub mod datacenter;
pub mod description;
pub mod iis;
pub mod scripts;
pub mod site_config;
pub mod sql;
pub mod tds;

pub use datacenter::{Endpoints, SimOptions, SimulatedDataCenter};
pub use description::Description;
