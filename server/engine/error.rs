//! What can go wrong in the engine, in one leaf every engine module can import: the store, the
//! step log, the driver. (It lived in the store, which made the step log and the store import
//! each other.)

use super::machine::Refusal;

/// Everything that can go wrong in the engine, each with a message a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The state machine refused (wrong state, missing role, four-eyes, …). Maps to 409/403/422.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Someone else changed the same run or step first. Reload and try again. Maps to 409.
    #[error("{0} changed meanwhile; reload and try again")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    /// Bad input (a plan that does not hold together, a malformed value). Maps to 422.
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The same, from a statement the store ran on the connection directly (`store/raw.rs`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("audit log: {0}")]
    Audit(String),
    /// The audit chain is broken and not acknowledged: no state change until an admin
    /// acknowledges the break. Maps to 409.
    #[error("{0}")]
    ChainBroken(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
