//! Plans: a runbook expanded over an inventory into a DAG of concrete steps on concrete hosts.
//!
//! A plan is deterministic (same runbook, inventory and parameters give byte-identical output) and
//! its step ids are stable, so an approval, an audit event or a journal entry that names a step id
//! keeps meaning the same thing.

use serde::{Deserialize, Serialize};

use super::inventory::Topology;
use super::operation::Operation;

/// What kind of work a step is; decides which executor or which human handles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// An allowlisted action on a host's agent.
    Agent,
    /// SQL against a server's Registry/Directory databases.
    Sql,
    /// An HTTP(S) verification probe.
    Probe,
    /// Work a person does (e.g. the Setup wizard); claimed, completed with a note, then verified.
    Manual,
    /// A gate: people with `role` approve with a comment; four-eyes.
    Approval,
    /// Poll a condition until it holds or times out.
    Wait,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Agent => "agent",
            StepKind::Sql => "sql",
            StepKind::Probe => "probe",
            StepKind::Manual => "manual",
            StepKind::Approval => "approval",
            StepKind::Wait => "wait",
        }
    }
}

/// Who may pass an approval gate, and how many of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSpec {
    /// The role allowed to approve (e.g. "approver").
    pub role: String,
    /// Distinct approvers needed (at least 1).
    pub quorum: u32,
    /// Seconds after the gate opens at which it lapses (the run waits; nothing proceeds by default).
    pub expires_after_secs: Option<u64>,
}

/// Whether a failed attempt may be retried automatically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Total automatic attempts (1 = never retried automatically).
    pub max_attempts: u32,
    pub initial_backoff_secs: u64,
    pub max_backoff_secs: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            initial_backoff_secs: 5,
            max_backoff_secs: 300,
        }
    }
}

/// One concrete step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStep {
    /// Stable id: `<runbook step id>` or `<runbook step id>@<host>` when fanned out per host.
    pub id: String,
    pub title: String,
    /// The seed heading this step carries out, exactly as printed (e.g. "Stop Data Center Services").
    pub section: String,
    /// Grouping shown to people ("Prepare", "Primary side", "Web Services", ...).
    pub phase: String,
    pub kind: StepKind,
    /// The server the step acts on; `None` for steps not bound to one server.
    pub host: Option<String>,
    pub depends_on: Vec<String>,
    /// Instructions for the operator, in our words.
    pub instructions: String,
    /// What to do, with every argument resolved.
    pub operation: Operation,
    /// What must hold afterwards for the step to count as done.
    pub postcondition: Option<Operation>,
    /// How to undo the step (restores values captured before the change), if it can be undone.
    pub undo: Option<Operation>,
    pub gate: Option<GateSpec>,
    pub retry: RetryPolicy,
    pub timeout_secs: u64,
    pub estimate_secs: u64,
}

/// A runbook expanded for one inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub runbook: String,
    pub runbook_title: String,
    pub inventory: String,
    pub topology: Topology,
    /// Parameters the plan was expanded with (e.g. `target=2016`), sorted by key.
    pub params: std::collections::BTreeMap<String, String>,
    /// Steps in a topological order (every step after all it depends on).
    pub steps: Vec<PlannedStep>,
}

impl Plan {
    pub fn step(&self, id: &str) -> Option<&PlannedStep> {
        self.steps.iter().find(|s| s.id == id)
    }
}
