//! The durable workflow engine: pure state machines, the SQLite store with its hash-chained audit
//! log, and the driver that dispatches ready steps through executors.

pub mod audit;
pub mod executor;
pub mod machine;
pub mod store;

pub use machine::{Actor, Millis, Refusal};
pub use store::{EngineError, Store};
pub mod testkit;
