//! Executors: the agent client (HTTPS + mutual TLS), the SQL executor (tiberius) and the probe
//! runner. Each implements [`crate::engine::executor::Executor`].

pub mod agent;
pub mod probe;
pub mod sql;
pub mod words;
