//! Lockstep: conducts Connected Backup Data Center upgrades.

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
