//! The driver's side of the store: claiming ready steps within the concurrency limits and host
//! locks, settling runs whose steps are all done or stopped, and who holds which host.

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;

use super::queries::{load_run, load_step, load_steps, load_steps_in, RunRecord, StepRecord};
use super::{Result, Store, WriteTx};
use crate::engine::audit::AuditEvent;
use crate::engine::machine::gating;
use crate::engine::machine::{Millis, RunEvent, RunStatus, StepAction, StepEvent, StepStatus};

/// Concurrency limits the driver claims within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriveLimits {
    /// Steps of one run in flight at once.
    pub per_run: usize,
    /// Steps of one run in flight on one host at once.
    pub per_host: usize,
}

impl Default for DriveLimits {
    fn default() -> Self {
        DriveLimits {
            per_run: 4,
            per_host: 1,
        }
    }
}

/// A step the driver must act on after the claim committed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub step: StepRecord,
    pub actions: Vec<StepAction>,
}

impl Store {
    /// The driver's claim, in one transaction: unblock pending steps whose dependencies are done,
    /// then start ready steps within the concurrency limits and host locks. Returns the steps to
    /// act on and the earliest time a backed-off step may start. Which steps to unblock is
    /// answered from the indexes `steps_claim_scan` and `steps_status_by_id` alone: step rows
    /// carry kilobytes of spec, and this runs on every pass of the driver.
    pub async fn claim(
        &self,
        run_id: &str,
        limits: DriveLimits,
        now: Millis,
    ) -> Result<(Vec<Claimed>, Option<Millis>)> {
        let mut w = self.begin().await?;
        let run = load_run(&mut w.tx, run_id).await?;
        if !run.status.is_driving() {
            return Ok((Vec::new(), None));
        }
        let found = w.claim_ready(&run, limits, now).await?;
        self.commit(w).await?;
        Ok(found)
    }
}

impl WriteTx {
    /// The claim inside a transaction already open: the driver's pass opens its own, and the
    /// commit of a finished step runs it too (see `group.rs`), so the step's result and the start
    /// of the steps it releases become durable in one fsync.
    pub(super) async fn claim_ready(
        &mut self,
        run: &RunRecord,
        limits: DriveLimits,
        now: Millis,
    ) -> Result<(Vec<Claimed>, Option<Millis>)> {
        let w = self;
        let run_id = run.id.as_str();
        // The change window: nothing starts before it opens (the run is "scheduled"; wake
        // then). After its end, what is in flight finishes and the rest of the phase underway
        // may go on, but no step that stops services or starts a phase, until an approver
        // extends the window (`gating::held_at_window_end`). Undo is exempt: backing a change
        // out is what an overrun window calls for.
        let undoing = run.status == RunStatus::Undoing;
        let mut ended_at: Option<Millis> = None;
        if !undoing {
            if let Some(opens) = run.window_start.filter(|t| now < *t) {
                return Ok((Vec::new(), Some(opens)));
            }
            ended_at = gating::window_end(&run.state, run.window_end).filter(|e| now >= *e);
        }
        let unblocked: Vec<String> = sqlx::query(
            "SELECT s.id FROM steps s WHERE s.run_id = ? AND s.status = 'pending'
               AND (s.undo_of IS NOT NULL) = ?
               AND NOT EXISTS (SELECT 1 FROM step_deps d
                   CROSS JOIN steps p INDEXED BY steps_status_by_id
                     ON p.run_id = d.run_id AND p.id = d.depends_on
                   WHERE d.run_id = s.run_id AND d.step_id = s.id
                     AND p.status NOT IN ('succeeded', 'skipped'))
             ORDER BY s.seq",
        )
        .bind(run_id)
        .bind(undoing)
        .fetch_all(&mut *w.tx)
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
        for id in &unblocked {
            let s = load_step(&mut w.tx, run_id, id).await?;
            w.step_transition(run.state.requester_person(), &s, &StepEvent::Unblock, now)
                .await?;
        }
        // Only what the limits and the claim look at: steps in flight and steps ready to start.
        let steps = load_steps_in(
            &mut w.tx,
            run_id,
            &[
                StepStatus::Dispatched,
                StepStatus::Running,
                StepStatus::Verifying,
                StepStatus::Ready,
            ],
        )
        .await?;
        let steps: Vec<StepRecord> = steps
            .into_iter()
            .filter(|s| s.undo_of.is_some() == undoing)
            .collect();
        let mut in_flight = steps.iter().filter(|s| s.status.is_in_flight()).count();
        let mut per_host: HashMap<String, usize> = HashMap::new();
        for s in steps.iter().filter(|s| s.status.is_in_flight()) {
            if let Some(h) = &s.spec.host {
                *per_host.entry(h.clone()).or_default() += 1;
            }
        }
        let mut claimed = Vec::new();
        let mut next_wake: Option<Millis> = None;
        let mut held: Option<String> = None;
        for s in steps.iter().filter(|s| s.status == StepStatus::Ready) {
            if let Some(t) = s.state.not_before.filter(|t| *t > now) {
                next_wake = Some(next_wake.map_or(t, |w| w.min(t)));
                continue;
            }
            if ended_at.is_some() && w.held_at_window_end(s).await? {
                held.get_or_insert_with(|| s.id.clone());
                continue;
            }
            let dispatches = !matches!(
                s.spec.kind,
                crate::knowledge::plan::StepKind::Approval
                    | crate::knowledge::plan::StepKind::Manual
                    | crate::knowledge::plan::StepKind::Barrier
            ) && s.spec.gate.is_none();
            if dispatches {
                if in_flight >= limits.per_run {
                    continue;
                }
                if let Some(h) = &s.spec.host {
                    if per_host.get(h).copied().unwrap_or(0) >= limits.per_host {
                        continue;
                    }
                    if !w.lock_host(h, run_id).await? {
                        continue;
                    }
                }
            }
            let (state, actions) = w
                .step_transition(run.state.requester_person(), s, &StepEvent::Start, now)
                .await?;
            if state.status.is_in_flight() {
                in_flight += 1;
                if let Some(h) = &s.spec.host {
                    *per_host.entry(h.clone()).or_default() += 1;
                }
            }
            let mut step = s.clone();
            step.status = state.status;
            step.attempt = state.attempt;
            step.state = state;
            claimed.push(Claimed { step, actions });
        }
        if let (Some(end), Some(step_id)) = (ended_at, held) {
            // Recorded once per end (the machine refuses a second hold for the same end).
            if run.state.window_held.as_ref().map(|h| h.end) != Some(end)
                && run.status == RunStatus::Running
            {
                w.run_transition(run, &RunEvent::WindowHold { step_id, end }, now)
                    .await?;
            }
        }
        Ok((claimed, next_wake))
    }

    /// Whether the window's end holds this ready step: it stops services, or it starts a phase
    /// (none of its inputs is in its own phase). Asked only after the end, of ready steps.
    async fn held_at_window_end(&mut self, s: &StepRecord) -> Result<bool> {
        let same_phase: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM step_deps d
               JOIN steps p ON p.run_id = d.run_id AND p.id = d.depends_on
             WHERE d.run_id = ? AND d.step_id = ? AND json_extract(p.spec, '$.phase') = ?",
        )
        .bind(&s.run_id)
        .bind(&s.id)
        .bind(&s.spec.phase)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(gating::held_at_window_end(&s.spec, same_phase == 0))
    }
}

impl Store {
    /// The driver's end-of-run check: completes a run whose steps are all done, fails one that a
    /// failed step has stopped, and reports the earliest gate expiry to wake for.
    pub async fn settle(&self, run_id: &str, now: Millis) -> Result<Option<RunStatus>> {
        let mut w = self.begin().await?;
        let run = load_run(&mut w.tx, run_id).await?;
        if !run.status.is_driving() {
            return Ok(None);
        }
        let undoing = run.status == RunStatus::Undoing;
        let steps: Vec<StepRecord> = load_steps(&mut w.tx, run_id)
            .await?
            .into_iter()
            .filter(|s| s.undo_of.is_some() == undoing)
            .collect();
        let event = if steps.iter().all(|s| s.status.is_done()) {
            Some(RunEvent::Completed)
        } else if !steps
            .iter()
            .any(|s| s.status.is_in_flight() || matches!(s.status, StepStatus::Ready))
        {
            steps
                .iter()
                .find(|s| s.status == StepStatus::Failed)
                .map(|s| RunEvent::Stalled {
                    step_id: s.id.clone(),
                })
        } else {
            None
        };
        let Some(event) = event else {
            return Ok(None);
        };
        let (next, actions) = w.run_transition(&run, &event, now).await?;
        w.run_consequences(&run, &actions, now).await?;
        self.commit(w).await?;
        Ok(Some(next.status))
    }

    /// Steps of a run that are in flight or in doubt (for reconcile and abort).
    pub async fn unsettled_steps(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        Ok(self
            .steps(run_id)
            .await?
            .into_iter()
            .filter(|s| s.status.is_in_flight())
            .collect())
    }
}

impl WriteTx {
    /// Takes the host for this run unless another run holds it.
    async fn lock_host(&mut self, host: &str, run_id: &str) -> Result<bool> {
        sqlx::query("INSERT OR IGNORE INTO host_locks (host, run_id) VALUES (?, ?)")
            .bind(host)
            .bind(run_id)
            .execute(&mut *self.tx)
            .await?;
        let holder: String = sqlx::query("SELECT run_id FROM host_locks WHERE host = ?")
            .bind(host)
            .fetch_one(&mut *self.tx)
            .await?
            .get(0);
        Ok(holder == run_id)
    }
}

/// Who holds which host (for the dashboard).
impl Store {
    pub async fn host_locks(&self) -> Result<BTreeMap<String, String>> {
        let rows = sqlx::query("SELECT host, run_id FROM host_locks ORDER BY host")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Events of one run (oldest first), for the run page.
    pub async fn run_events(&self, run_id: &str) -> Result<Vec<AuditEvent>> {
        self.events_after(0, Some(run_id), u32::MAX).await
    }
}
