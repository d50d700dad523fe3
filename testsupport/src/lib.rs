//! Test support shared by the test suites of the Lockstep crates (the orchestrator and the agent).
//!
//! A dev-dependency only (`publish = false`): nothing here is compiled into `lockstep` or
//! `lockstep-agent`. It depends on neither of them either, so both can use it without a cycle;
//! what is specific to the system under test (how a signature is checked) is passed in.
//!
//! - [`testssl`]: one [`testssl::assert_modern_tls`] for every TLS port Lockstep opens;
//! - [`webhook`]: one signed-webhook receiver on loopback for the notification tests;
//! - [`smtp`]: waiting for the tests' aiosmtpd servers and reading their Maildir.

pub mod smtp;
pub mod testssl;
pub mod webhook;
