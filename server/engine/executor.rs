//! The seam between the engine and the world: executors run a step's operation on a host and
//! answer, by idempotency key, what became of an action whose result was lost.
//!
//! Implementations: the agent executor (HTTPS + mutual TLS), the SQL executor (tiberius), the
//! probe runner, and in tests an in-process executor that journals what it ran.

use serde::{Deserialize, Serialize};

use crate::knowledge::operation::Operation;

/// Identifies one attempt of one step of one run. The same key is never executed twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdempotencyKey {
    pub run_id: String,
    pub step_id: String,
    pub attempt: u32,
}

impl IdempotencyKey {
    /// Canonical text form `run/step/attempt`, used on the wire and in journals.
    pub fn as_string(&self) -> String {
        format!("{}/{}/{}", self.run_id, self.step_id, self.attempt)
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_string())
    }
}

/// One request to execute a step's operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dispatch {
    pub key: IdempotencyKey,
    /// Server name from the inventory, if the step is bound to one.
    pub host: Option<String>,
    pub operation: Operation,
    /// Seconds the executor may take before the engine treats the outcome as unknown.
    pub timeout_secs: u64,
}

/// What happened, with the evidence that shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Succeeded {
        evidence: serde_json::Value,
    },
    Failed {
        message: String,
        evidence: serde_json::Value,
    },
    /// The result was lost (timeout, dropped connection, agent restart). Never retried
    /// automatically: the engine asks [`Executor::status`] and then a person decides.
    Unknown {
        reason: String,
    },
    /// The executor cannot establish the result, but a person can (e.g. no session counters
    /// on the server: someone watches the sessions in the DCMC). The step becomes a manual task:
    /// it waits for an operator to claim it and confirm with a note, like any manual step.
    NeedsPerson {
        /// What the person is asked to confirm, and why the executor could not.
        reason: String,
        evidence: serde_json::Value,
    },
}

/// The executor's knowledge of an action, asked for by key after doubt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ActionStatus {
    /// The executor never saw this key: safe to dispatch.
    NotFound,
    /// Still running.
    Running,
    /// Finished with this outcome.
    Finished { outcome: Outcome },
    /// The executor saw it but cannot tell what happened (e.g. interrupted by a restart).
    Unknown { reason: String },
}

/// Runs operations. Implementations must be idempotent per key: executing a key that already
/// ran returns the recorded outcome and does not run the action again.
#[async_trait::async_trait]
pub trait Executor: Send + Sync + 'static {
    async fn execute(&self, dispatch: &Dispatch) -> Outcome;
    async fn status(&self, key: &IdempotencyKey, host: Option<&str>) -> ActionStatus;
    /// Best effort; returns whether the action was cancelled before it took effect.
    async fn cancel(&self, _key: &IdempotencyKey, _host: Option<&str>) -> bool {
        false
    }

    /// Evaluates a read-only condition (a post-condition, or one poll of a wait step). Called
    /// repeatedly with the same key, so it must not change anything and is not journaled as an
    /// action. `Succeeded` means the condition holds, `Failed` that it does not (yet).
    /// The default runs `execute`, which suits executors whose checks are plain reads.
    async fn check(&self, dispatch: &Dispatch) -> Outcome {
        self.execute(dispatch).await
    }

    /// Runs an undo operation. `before` is the evidence the undone step recorded when it ran (the
    /// values it captured before changing them). The default ignores it and executes the
    /// operation, which suits undo operations that already carry the value to restore.
    async fn undo(&self, dispatch: &Dispatch, _before: &serde_json::Value) -> Outcome {
        self.execute(dispatch).await
    }
}
