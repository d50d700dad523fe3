//! The words of the policy that the state machines need too: every control a person can use on a
//! run, and the refusal that names the rule a decision broke. A leaf, so the machines
//! (`machine::Refusal` carries a [`PolicyViolation`]) and the policy table (which checks an
//! `Actor` and answers with a `Refusal`) can both import it without importing each other. The
//! names and the rules themselves are in [`super::policy`].

use serde::{Deserialize, Serialize};

/// Every control a person can use on a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    Submit,
    ApproveStart,
    ApproveGate,
    DenyGate,
    ReopenGate,
    Skip,
    Retry,
    MarkDone,
    MarkFailed,
    Claim,
    Complete,
    Pause,
    Resume,
    Abort,
    Undo,
    OverrideFinding,
    ExtendWindow,
    AskAgain,
}

/// A decision the policy refused: which control, which rule, and who asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{who} may not {control}: {rule}")]
pub struct PolicyViolation {
    pub control: Control,
    pub rule: String,
    pub who: String,
}
