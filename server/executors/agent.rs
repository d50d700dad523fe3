//! The agent executor: allowlisted actions on host agents over HTTPS with mutual TLS.
