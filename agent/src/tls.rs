//! The agent's side of mutual TLS: it presents its own identity (kept in its state folder as
//! `agent.cert.pem` and `agent.key.pem`) and admits only the orchestrator certificates it pins.
//!
//! The mechanics both ends share (identities, thumbprints, pinned verifiers, the rustls client
//! and server configurations) live in [`lockstep_protocol::tls`]; they are re-exported here so
//! the agent's own code reads them as `crate::tls`. The orchestrator's identity is the server's
//! business (`lockstep::executors::agent::identity`), not this crate's.

pub use lockstep_protocol::tls::{
    client_config, provider, server_config, write_private, Identity, PinnedClientVerifier,
    PinnedServerVerifier, Thumbprint,
};
