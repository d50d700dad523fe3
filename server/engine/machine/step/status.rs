//! Where a step is: [`StepStatus`], its stored word, and the questions the driver and the pages
//! ask of it (done? in flight? over?).

use serde::{Deserialize, Serialize};

/// The step's place in its state machine (see the parent module for the arrows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    #[default]
    Pending,
    Ready,
    AwaitingApproval,
    AwaitingOperator,
    Dispatched,
    Running,
    Verifying,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
    OutcomeUnknown,
}

impl StepStatus {
    pub const ALL: [StepStatus; 12] = [
        StepStatus::Pending,
        StepStatus::Ready,
        StepStatus::AwaitingApproval,
        StepStatus::AwaitingOperator,
        StepStatus::Dispatched,
        StepStatus::Running,
        StepStatus::Verifying,
        StepStatus::Succeeded,
        StepStatus::Failed,
        StepStatus::Skipped,
        StepStatus::Cancelled,
        StepStatus::OutcomeUnknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Ready => "ready",
            StepStatus::AwaitingApproval => "awaiting_approval",
            StepStatus::AwaitingOperator => "awaiting_operator",
            StepStatus::Dispatched => "dispatched",
            StepStatus::Running => "running",
            StepStatus::Verifying => "verifying",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
            StepStatus::OutcomeUnknown => "outcome_unknown",
        }
    }

    pub fn parse(s: &str) -> Option<StepStatus> {
        StepStatus::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Satisfies a dependency.
    pub fn is_done(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Skipped)
    }

    /// An executor may be working on it.
    pub fn is_in_flight(self) -> bool {
        matches!(
            self,
            StepStatus::Dispatched | StepStatus::Running | StepStatus::Verifying
        )
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded | StepStatus::Skipped | StepStatus::Cancelled
        )
    }
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
