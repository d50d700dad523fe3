//! `lockstep-agent`: runs allowlisted, journaled actions on one Data Center server, over HTTPS
//! with mutual TLS pinned by thumbprint.
//!
//! - [`tls`]: the agent's side of the pinned mutual TLS (the shared mechanics are
//!   `lockstep_protocol::tls`);
//! - [`config`], [`policy`]: the configuration and the allowlist check run before anything else;
//! - [`journal`]: durable at-most-once record of every action id;
//! - [`core`], [`server`]: admission, background execution, status/cancel, the HTTPS server;
//! - [`backend`]: `windows` (real commands) and `simulated` (a model Data Center server);
//! - [`client`]: the HTTP client for one agent;
//! - [`simulated_agent`]: start simulated agents in-process;
//! - [`chaos`]: a TCP proxy that resets connections (network fault injection).

// Production code never unwraps, expects or panics on what it is given (the lint gate, see the
// workspace `Cargo.toml`); unit tests may.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod backend;
pub mod chaos;
pub mod client;
pub mod config;
pub mod core;
pub mod journal;
pub mod policy;
pub mod server;
pub mod simulated_agent;
pub mod tls;

pub use server::{serve, spawn, AgentSetup, RunningAgent};
