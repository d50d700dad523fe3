//! Plans: a runbook expanded over an inventory into a DAG of concrete steps on concrete hosts.
//!
//! A plan is deterministic (same runbook, inventory and parameters give byte-identical output) and
//! its step ids are stable, so an approval, an audit event or a journal entry that names a step id
//! keeps meaning the same thing.

use serde::{Deserialize, Serialize};

use super::inventory::Topology;
use super::operation::Operation;
use super::role::Role;

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
    /// A join made by plan expansion, never written in a runbook: it waits for every instance
    /// of one runbook step and does nothing, so the steps after them depend on it alone instead
    /// of each on every instance (edges grow with the estate, not with its square). The engine
    /// passes it as soon as it starts; pages show it as a phase marker, never as a task.
    Barrier,
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
            StepKind::Barrier => "barrier",
        }
    }
}

/// Who may pass an approval gate, and how many of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSpec {
    /// The role allowed to approve (the runbook's word, parsed when the runbook is read).
    pub role: Role,
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

/// The longest an automatic step of a simulated site may take (see [`Plan::for_simulated_site`]).
pub const SIMULATED_STEP_TIMEOUT_SECS: u64 = 30;

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

impl PlannedStep {
    /// A join made by plan expansion ([`StepKind::Barrier`]): part of the order, no one's work,
    /// so pages leave it out of their cards and counts.
    pub fn is_join(&self) -> bool {
        self.kind == StepKind::Barrier
    }
}

impl Plan {
    pub fn step(&self, id: &str) -> Option<&PlannedStep> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Adapts the plan to a simulated Data Center, where nobody is backing up and nothing needs
    /// time to settle: a wait for backup sessions to drain is checked once a second and needs no
    /// stable period, and automatic retries keep their number of attempts but wait 1 s (at most
    /// 2 s) between them instead of the tens of seconds a real IIS or SQL Server is given. Used
    /// by rehearsals and the demo; never for a real site.
    ///
    /// Automatic steps (agent, SQL, probe, wait) also get at most [`SIMULATED_STEP_TIMEOUT_SECS`]:
    /// a real service may take minutes to start, a simulated one takes milliseconds, so a step
    /// that would wait out a real timeout (three attempts of 15 minutes for a service that never
    /// starts) ends in seconds. Manual tasks and gates keep theirs: people act on them in the demo.
    pub fn for_simulated_site(&mut self) {
        for step in &mut self.steps {
            step.retry.initial_backoff_secs = step.retry.initial_backoff_secs.min(1);
            step.retry.max_backoff_secs = step.retry.max_backoff_secs.min(2);
            if matches!(
                step.kind,
                StepKind::Agent | StepKind::Sql | StepKind::Probe | StepKind::Wait
            ) {
                step.timeout_secs = step.timeout_secs.min(SIMULATED_STEP_TIMEOUT_SECS);
            }
            if let Operation::Wait { timeout_secs, .. } = &mut step.operation {
                *timeout_secs = (*timeout_secs).min(SIMULATED_STEP_TIMEOUT_SECS);
            }
            if let Operation::Wait {
                condition: super::operation::WaitCondition::BackupSessionsLow { stable_secs, .. },
                interval_secs,
                ..
            } = &mut step.operation
            {
                *stable_secs = 0;
                *interval_secs = 1;
            }
        }
    }
}

pub mod render;

impl Plan {
    /// Every step `id` depends on, directly or through others (its dependency closure).
    pub fn ancestors(&self, id: &str) -> std::collections::BTreeSet<String> {
        let by_id: std::collections::HashMap<&str, &PlannedStep> =
            self.steps.iter().map(|s| (s.id.as_str(), s)).collect();
        let mut seen = std::collections::BTreeSet::new();
        let mut stack: Vec<&str> = by_id
            .get(id)
            .map(|s| s.depends_on.iter().map(String::as_str).collect())
            .unwrap_or_default();
        while let Some(d) = stack.pop() {
            if seen.insert(d.to_string()) {
                if let Some(s) = by_id.get(d) {
                    stack.extend(s.depends_on.iter().map(String::as_str));
                }
            }
        }
        seen
    }

    /// Whether `later` can only start after `earlier` finished (through any chain of dependencies).
    pub fn runs_after(&self, later: &str, earlier: &str) -> bool {
        self.ancestors(later).contains(earlier)
    }

    /// The sum of every step's estimate: the window if nothing ran side by side.
    pub fn total_estimate_secs(&self) -> u64 {
        self.steps.iter().map(|s| s.estimate_secs).sum()
    }

    /// The longest chain of estimates through the dependencies: the window if everything that
    /// may run side by side does.
    pub fn critical_path_secs(&self) -> u64 {
        let mut finish: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        for s in &self.steps {
            let start = s
                .depends_on
                .iter()
                .filter_map(|d| finish.get(d.as_str()))
                .max()
                .copied()
                .unwrap_or(0);
            finish.insert(&s.id, start + s.estimate_secs);
        }
        finish.values().max().copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::knowledge::expand::expand;
    use crate::knowledge::inventory::Inventory;
    use crate::knowledge::operation::{Operation, WaitCondition};
    use crate::knowledge::runbook::Catalog;

    fn drain_waits(plan: &super::Plan) -> Vec<(u64, u64)> {
        plan.steps
            .iter()
            .filter_map(|s| match &s.operation {
                Operation::Wait {
                    condition: WaitCondition::BackupSessionsLow { stable_secs, .. },
                    interval_secs,
                    ..
                } => Some((*stable_secs, *interval_secs)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_simulated_site_does_not_wait_minutes_for_sessions_to_drain() {
        let text = include_str!("../../examples/mirrored.toml");
        let inventory = Inventory::from_toml(text, "examples/mirrored.toml").expect("example");
        let catalog = Catalog::builtin().expect("built-in runbooks");
        let runbook = catalog.get("upgrade-8.11").expect("upgrade-8.11");
        let mut plan = expand(runbook, &inventory, &BTreeMap::new()).expect("plan");

        let real = drain_waits(&plan);
        assert!(
            !real.is_empty(),
            "upgrade-8.11 drains sessions before stopping"
        );
        assert!(real.iter().all(|(stable, _)| *stable >= 60), "{real:?}");

        plan.for_simulated_site();
        let simulated = drain_waits(&plan);
        assert_eq!(simulated.len(), real.len());
        assert!(simulated.iter().all(|w| *w == (0, 1)), "{simulated:?}");
    }

    #[test]
    fn a_simulated_site_keeps_every_retry_but_waits_seconds_between_them() {
        let text = include_str!("../../examples/mirrored.toml");
        let inventory = Inventory::from_toml(text, "examples/mirrored.toml").expect("example");
        let catalog = Catalog::builtin().expect("built-in runbooks");
        let runbook = catalog.get("upgrade-8.11").expect("upgrade-8.11");
        let real = expand(runbook, &inventory, &BTreeMap::new()).expect("plan");
        let mut simulated = real.clone();
        simulated.for_simulated_site();

        let retried: Vec<_> = real
            .steps
            .iter()
            .filter(|s| s.retry.max_attempts > 1)
            .collect();
        assert!(
            retried.iter().any(|s| s.retry.initial_backoff_secs >= 30),
            "the probes wait 30 s between attempts on a real site"
        );
        let start = real
            .steps
            .iter()
            .find(|s| s.id.starts_with("start-services@"))
            .expect("a start step");
        assert!(start.timeout_secs >= 600, "a real service gets minutes");
        for (r, s) in real.steps.iter().zip(&simulated.steps) {
            match s.kind {
                super::StepKind::Manual | super::StepKind::Approval => {
                    assert_eq!(
                        s.timeout_secs, r.timeout_secs,
                        "people keep their time: {}",
                        s.id
                    )
                }
                _ => assert!(
                    s.timeout_secs <= super::SIMULATED_STEP_TIMEOUT_SECS,
                    "{}",
                    s.id
                ),
            }
            assert_eq!(s.retry.max_attempts, r.retry.max_attempts, "{}", s.id);
            assert!(s.retry.initial_backoff_secs <= 1, "{}", s.id);
            assert!(s.retry.max_backoff_secs <= 2, "{}", s.id);
        }
    }
}
