//! The durable workflow engine: pure state machines, the SQLite store with its hash-chained audit
//! log, and the driver that dispatches ready steps through executors.
//!
//! For the web layer: [`Engine`] (clone it into state) for people's commands and the driver,
//! [`Store`] for reading runs, steps and events and for `subscribe()` to live events.

pub mod audit;
pub mod audit_bundle;
pub mod clock;
pub mod control;
pub mod driver;
pub mod error;
pub mod executor;
pub mod forecast;
#[cfg(any(test, feature = "testkit"))]
pub mod journal;
pub mod machine;
pub mod policy;
pub mod router;
pub mod steplog;
pub mod store;
// Test support, not product: the `testkit` feature (on for tests and benches, off in release
// builds) brings these and the hidden `lockstep engine run-local` command that drives them.
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use driver::{Engine, EngineConfig};
pub use machine::{Actor, Millis, Refusal};
pub use router::Router;
pub use store::{EngineError, Store};
