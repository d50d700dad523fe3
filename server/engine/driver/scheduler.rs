//! The scheduler behind [`Engine::drive`](super::Engine::drive): one pass per wake-up over the
//! active runs (claim, lapse gates, verify, ask about doubts, settle), the reconcile at start, and
//! the set of steps a task is working on.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::task::JoinSet;
use tracing::Instrument;

use crate::engine::machine::{Millis, RunStatus, StepAction, StepEvent, StepStatus};
use crate::engine::store::{Result, StepRecord};

use super::Engine;
pub(super) type Busy = Arc<Mutex<HashSet<(String, String)>>>;

pub(super) struct Driver {
    pub(super) engine: Engine,
    pub(super) tasks: JoinSet<()>,
    /// Steps a task is working on; nothing else touches them meanwhile.
    pub(super) busy: Busy,
    /// Outcome-unknown attempts already asked about (asked once per driver life; then people).
    pub(super) queried: HashSet<(String, String, u32)>,
    /// In-flight steps of aborted runs whose cancel was requested.
    pub(super) cancelling: HashSet<(String, String, u32)>,
    /// When each run's forecast was last compared with its window's end.
    pub(super) window_watched: std::collections::HashMap<String, Millis>,
}

/// How often the driver compares a run's forecast finish with its window's end.
pub(super) const WINDOW_WATCH_MS: Millis = 10_000;

/// Removes a step from the busy set when its task ends, however it ends.
pub(super) struct BusyGuard(Busy, (String, String));

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.1);
    }
}

impl Driver {
    fn is_busy(&self, run_id: &str, step_id: &str) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(run_id.to_string(), step_id.to_string()))
    }

    /// A task is working on one of the run's steps.
    fn run_is_busy(&self, run_id: &str) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|(r, _)| r == run_id)
    }

    /// Starts a task that carries out `actions` for a step, then whatever they lead to.
    pub(super) fn spawn(&mut self, run_id: String, step: StepRecord, actions: Vec<StepAction>) {
        let work: Vec<StepAction> = actions
            .into_iter()
            .filter(|a| !matches!(a, StepAction::NeedsPeople))
            .collect();
        if work.is_empty() {
            return;
        }
        let key = (run_id.clone(), step.id.clone());
        if !self
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone())
        {
            return;
        }
        let guard = BusyGuard(self.busy.clone(), key);
        let engine = self.engine.clone();
        // Everything logged while carrying out the step (executors included) names the run and
        // step, the same `run_id` field the dashboard's request spans use.
        let span = tracing::info_span!("step", run_id = %run_id, step_id = %step.id);
        self.tasks.spawn(
            async move {
                let _guard = guard;
                if let Err(e) = engine.carry_out(&run_id, step, work).await {
                    tracing::warn!(error = %e, "step work failed");
                }
            }
            .instrument(span),
        );
    }

    /// Asks executors about every step in flight or in doubt before anything is dispatched.
    pub(super) async fn reconcile(&mut self) -> Result<Vec<(String, StepRecord, Vec<StepAction>)>> {
        let store = self.engine.store().clone();
        let mut follow_ups = Vec::new();
        for run_id in store.active_run_ids().await? {
            for step in store.steps(&run_id).await? {
                let actions = match step.status {
                    StepStatus::Dispatched | StepStatus::Running => {
                        let status = self.engine.status_of(&run_id, &step).await;
                        tracing::info!(run_id = %run_id, step_id = %step.id, ?status, "reconciled");
                        self.engine
                            .apply(&run_id, &step.id, StepEvent::Reconciled { status })
                            .await?
                    }
                    StepStatus::Verifying => vec![StepAction::Verify],
                    _ => continue,
                };
                follow_ups.push((run_id.clone(), step, actions));
            }
        }
        Ok(follow_ups)
    }

    /// One pass over the active runs; returns the earliest time something becomes due.
    pub(super) async fn tick(&mut self, _previous: Option<Millis>) -> Result<Option<Millis>> {
        let store = self.engine.store().clone();
        let limits = self.engine.inner.config.limits;
        let mut next_wake: Option<Millis> = None;
        let earliest = |t: Millis, w: &mut Option<Millis>| *w = Some(w.map_or(t, |x| x.min(t)));
        // Steps a finished step's commit already started (the claim folded into that commit):
        // carried out first, before this pass reads them as dispatched-but-idle.
        for (run_id, c) in store.take_claimed() {
            self.spawn(run_id, c.step, c.actions);
        }
        for run_id in store.active_run_ids().await? {
            let now = self.engine.now();
            let (claimed, wake_at) = store.claim(&run_id, limits, now).await?;
            if let Some(t) = wake_at {
                earliest(t, &mut next_wake);
            }
            let claimed_any = !claimed.is_empty();
            for c in claimed {
                self.spawn(run_id.clone(), c.step, c.actions);
            }
            let run = store.run(&run_id).await?;
            // Only steps in flight, in doubt or at a gate: a pass costs what is active, not the
            // length of the plan (a 200-server plan has 1,500 steps).
            let steps = store.steps_for_driver(&run_id).await?;
            let mut lapses = Vec::new();
            let mut run_busy = self.run_is_busy(&run_id);
            for s in steps {
                if self.is_busy(&run_id, &s.id) {
                    if run.status == RunStatus::Aborted && s.status.is_in_flight() {
                        self.cancel(&run_id, &s);
                    }
                    continue;
                }
                match s.status {
                    StepStatus::Dispatched | StepStatus::Running
                        if run.status == RunStatus::Aborted =>
                    {
                        self.cancel(&run_id, &s);
                    }
                    StepStatus::Dispatched | StepStatus::Running => {
                        // Only after a reconcile answer "never seen": send the same key again.
                        self.spawn(
                            run_id.clone(),
                            s.clone(),
                            vec![StepAction::Dispatch { attempt: s.attempt }],
                        );
                        run_busy = true;
                    }
                    StepStatus::Verifying => {
                        self.spawn(run_id.clone(), s.clone(), vec![StepAction::Verify]);
                        run_busy = true;
                    }
                    StepStatus::OutcomeUnknown
                        if self
                            .queried
                            .insert((run_id.clone(), s.id.clone(), s.attempt)) =>
                    {
                        self.spawn(run_id.clone(), s.clone(), vec![StepAction::QueryStatus]);
                    }
                    StepStatus::AwaitingApproval if !s.state.gate_lapsed => {
                        let expiry = s
                            .spec
                            .gate
                            .as_ref()
                            .and_then(|g| g.expires_after_secs)
                            .zip(s.state.gate_opened_at)
                            .map(|(secs, at)| {
                                at.saturating_add((secs as i64).saturating_mul(1000))
                            });
                        match expiry {
                            Some(e) if e <= now => lapses.push((s.id.clone(), StepEvent::Lapse)),
                            Some(e) => earliest(e, &mut next_wake),
                            None => {}
                        }
                    }
                    _ => {}
                }
            }
            if !lapses.is_empty() {
                store.apply_step_events(&run_id, &lapses, now).await?;
            }
            if !run_busy && !claimed_any {
                store.settle(&run_id, self.engine.now()).await?;
            }
            // The forecast against the window's end, at most every WINDOW_WATCH_MS per run: it
            // reads every step's estimate, and a warning is recorded only once per end anyway.
            let due = self
                .window_watched
                .get(&run_id)
                .is_none_or(|t| now - *t >= WINDOW_WATCH_MS);
            if due && (run.window_end.is_some() || run.state.window_extended_to.is_some()) {
                self.window_watched.insert(run_id.clone(), now);
                if let Err(e) = store.watch_window(&run_id, now).await {
                    tracing::warn!(run_id = %run_id, error = %e, "window forecast not recorded");
                }
            }
        }
        Ok(next_wake)
    }

    fn cancel(&mut self, run_id: &str, step: &StepRecord) {
        if !self
            .cancelling
            .insert((run_id.to_string(), step.id.clone(), step.attempt))
        {
            return;
        }
        let engine = self.engine.clone();
        let run_id = run_id.to_string();
        let step = step.clone();
        self.tasks.spawn(async move {
            let key = engine.key(&run_id, &step, step.attempt);
            let cancelled = match engine.inner.router.for_kind(step.spec.kind) {
                Some(ex) => ex.cancel(&key, step.spec.host.as_deref()).await,
                None => false,
            };
            if let Err(e) = engine
                .apply(&run_id, &step.id, StepEvent::CancelAnswered { cancelled })
                .await
            {
                tracing::info!(run_id = %run_id, step_id = %step.id, error = %e, "cancel answer not applied");
            }
        });
    }
}
