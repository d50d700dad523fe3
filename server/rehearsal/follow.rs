//! The rehearsal's picture of its run's steps, kept from the event stream.
//!
//! The stand-in for people used to re-read every step's status after each burst of commits: a
//! 200-server plan has 1,566 steps, and the bursts grow with the plan, so the reads grew faster
//! than the plan (issue 19). Now the statuses are read once, then each committed step event moves
//! one entry (`from` → `to` in its payload). An event whose `from` does not match what is held
//! (one seen before the first read, or a gap after the subscriber lagged) marks the picture stale,
//! and it is read again whole: correctness never rests on every event arriving.

use std::collections::{BTreeSet, HashMap};

use crate::engine::audit::AuditEvent;
use crate::engine::machine::StepStatus;
use crate::engine::store::{Result, Store};

/// A change of one step that the rehearsal reports as progress.
pub(super) struct Change {
    pub step: String,
    pub status: StepStatus,
    pub detail: Option<String>,
}

/// Every step's status and last error, and which steps wait for people.
#[derive(Default)]
pub(super) struct StepView {
    steps: HashMap<String, (StepStatus, Option<String>)>,
    /// Steps at a gate or a manual task (the ones the stand-in acts on).
    pub waiting: BTreeSet<String>,
    /// Steps per status, so "is anything still moving" does not scan the plan.
    counts: HashMap<StepStatus, usize>,
    /// An event did not fit: read everything again before trusting the picture.
    pub stale: bool,
}

impl StepView {
    /// Reads every step (at the start, and when the picture went stale); returns what changed.
    pub async fn reload(&mut self, store: &Store, run_id: &str) -> Result<Vec<Change>> {
        let mut changes = Vec::new();
        for s in store.step_statuses(run_id).await? {
            let now = (s.status, s.last_error);
            if self.steps.get(&s.id) != Some(&now) {
                changes.push(Change {
                    step: s.id.clone(),
                    status: now.0,
                    detail: now.1.clone(),
                });
                self.set(s.id, now);
            }
        }
        self.stale = false;
        Ok(changes)
    }

    /// Applies one committed event of the run; returns the change it made, if any. A step's last
    /// error is not in the event: it is read (one row) only when the step failed or is in doubt,
    /// the only statuses whose reason the report prints.
    pub async fn apply(
        &mut self,
        store: &Store,
        run_id: &str,
        ev: &AuditEvent,
    ) -> Result<Option<Change>> {
        if ev.run_id.as_deref() != Some(run_id) || !ev.kind.is_step() {
            return Ok(None);
        }
        let Some(step) = ev.step_id.as_deref() else {
            return Ok(None);
        };
        let status = |k: &str| ev.payload[k].as_str().and_then(StepStatus::parse);
        let (Some(from), Some(to)) = (status("from"), status("to")) else {
            return Ok(None);
        };
        match self.steps.get(step) {
            Some((held, _)) if *held == from => {}
            // Already there (an event from before the first read): nothing to do.
            Some((held, _)) if *held == to => return Ok(None),
            _ => {
                self.stale = true;
                return Ok(None);
            }
        }
        if from == to {
            return Ok(None);
        }
        let detail = match to {
            StepStatus::Failed | StepStatus::OutcomeUnknown => {
                store.step(run_id, step).await?.state.last_error
            }
            _ => None,
        };
        self.set(step.to_string(), (to, detail.clone()));
        Ok(Some(Change {
            step: step.to_string(),
            status: to,
            detail,
        }))
    }

    fn set(&mut self, id: String, now: (StepStatus, Option<String>)) {
        if let Some((old, _)) = self.steps.get(&id) {
            if let Some(c) = self.counts.get_mut(old) {
                *c = c.saturating_sub(1);
            }
        }
        *self.counts.entry(now.0).or_default() += 1;
        if matches!(
            now.0,
            StepStatus::AwaitingApproval | StepStatus::AwaitingOperator
        ) {
            self.waiting.insert(id.clone());
        } else {
            self.waiting.remove(&id);
        }
        self.steps.insert(id, now);
    }

    /// Whether any step is in one of `statuses`.
    pub fn any(&self, statuses: &[StepStatus]) -> bool {
        statuses
            .iter()
            .any(|s| self.counts.get(s).copied().unwrap_or(0) > 0)
    }
}
