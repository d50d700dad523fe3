//! Lockstep: conducts Connected Backup Data Center upgrades.

// Production code never unwraps, expects or panics on what it is given (the lint gate, see the
// workspace `Cargo.toml`); unit tests may.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod cli;
pub mod config;
pub mod engine;
pub mod executors;
pub mod knowledge;
pub mod logtext;
pub mod notify;
pub mod rehearsal;
pub mod startup;
pub mod web;
