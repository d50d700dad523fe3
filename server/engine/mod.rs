//! The durable workflow engine: pure state machines, the SQLite store with its hash-chained audit
//! log, and the driver that dispatches ready steps through executors.

pub mod executor;
