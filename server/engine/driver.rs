//! The driver: one scheduler task that moves every active run forward, and the [`Engine`] handle
//! that people's commands go through.
//!
//! Each tick, per run: claim ready steps (one transaction: unblock, start within the concurrency
//! limits and host locks), act on what the claim asked for *after* it committed, lapse expired
//! gates, verify post-conditions, ask executors about steps in doubt, and settle finished runs.
//! Every executor call carries the idempotency key (run, step, attempt). On start the driver
//! checks the database and reconciles every in-flight step with its executor before it dispatches
//! anything. Shutdown is passed in: the driver stops claiming, lets calls in flight finish within
//! a grace period, and leaves the rest to the next start's reconcile.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::clock::{Clock, TokioClock};
use super::executor::{ActionStatus, Dispatch, Executor, IdempotencyKey, Outcome};
use super::machine::{
    Actor, Millis, RunEvent, RunState, RunStatus, StepAction, StepEvent, StepState, StepStatus,
};
use super::router::Router;
use super::store::{DriveLimits, EngineError, NewRun, Result, RunRecord, StepRecord, Store};
use crate::knowledge::operation::{Operation, WaitCondition};
use crate::knowledge::plan::StepKind;

/// How the driver behaves.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub limits: DriveLimits,
    /// How long shutdown waits for calls in flight.
    pub grace: Duration,
    /// The longest the driver sleeps without a wake-up (a safety net; commits wake it anyway).
    pub idle_tick: Duration,
    /// While an action runs, how often the executor is asked for its status; a `running` answer
    /// is recorded as a heartbeat (dispatched → running).
    pub heartbeat: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            limits: DriveLimits::default(),
            grace: Duration::from_secs(10),
            idle_tick: Duration::from_secs(1),
            heartbeat: Duration::from_secs(15),
        }
    }
}

/// The engine handle: cheap to clone, for web handlers and the CLI. People's commands go through
/// here (roles and four-eyes are enforced by the state machines underneath) and wake the driver.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    router: Router,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    wake: Notify,
}

impl Engine {
    pub fn new(store: Store, router: Router) -> Engine {
        Engine::with(
            store,
            router,
            Arc::new(TokioClock::new()),
            EngineConfig::default(),
        )
    }

    pub fn with(
        store: Store,
        router: Router,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                store,
                router,
                clock,
                config,
                wake: Notify::new(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn now(&self) -> Millis {
        self.inner.clock.now()
    }

    /// Creates a run in `draft`; `actor` (an operator) is its requester.
    pub async fn create_run(&self, new: NewRun, actor: &Actor) -> Result<RunRecord> {
        self.inner.store.create_run(new, actor, self.now()).await
    }

    /// Submit, approve start, pause, resume, abort, undo.
    pub async fn run_event(&self, run_id: &str, event: RunEvent) -> Result<RunState> {
        let (state, _) = self
            .inner
            .store
            .apply_run_event(run_id, &event, self.now())
            .await?;
        self.inner.wake.notify_one();
        Ok(state)
    }

    /// Approve, reject, reopen a gate, claim, complete, retry, skip, mark done / failed.
    pub async fn step_event(
        &self,
        run_id: &str,
        step_id: &str,
        event: StepEvent,
    ) -> Result<StepState> {
        let (state, _) = self
            .inner
            .store
            .apply_step_event(run_id, step_id, &event, self.now())
            .await?;
        // Follow-up work (a post-condition check after a manual task) is the driver's.
        self.inner.wake.notify_one();
        Ok(state)
    }

    pub async fn comment(
        &self,
        run_id: &str,
        step_id: Option<&str>,
        actor: &Actor,
        text: &str,
    ) -> Result<()> {
        self.inner
            .store
            .comment(run_id, step_id, actor, text, self.now())
            .await?;
        Ok(())
    }

    /// Wakes the driver (e.g. after writing through the [`Store`] directly).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Runs the driver until `shutdown` resolves. Checks the database and reconciles in-flight
    /// steps first.
    pub async fn drive(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let mut driver = Driver {
            engine: self.clone(),
            tasks: JoinSet::new(),
            busy: Arc::new(Mutex::new(HashSet::new())),
            queried: HashSet::new(),
            cancelling: HashSet::new(),
        };
        self.inner.store.integrity_check().await?;
        let follow_ups = driver.reconcile().await?;
        for (run_id, step, actions) in follow_ups {
            driver.spawn(run_id, step, actions);
        }
        let mut events = self.inner.store.subscribe();
        tokio::pin!(shutdown);
        let mut next_wake: Option<Millis> = None;
        loop {
            next_wake = match driver.tick(next_wake).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(error = %e, "engine tick failed");
                    None
                }
            };
            let sleep_for = next_wake
                .map(|t| Duration::from_millis((t - self.now()).clamp(0, i64::MAX) as u64))
                .map_or(self.inner.config.idle_tick, |d| {
                    d.min(self.inner.config.idle_tick)
                });
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.inner.wake.notified() => {}
                _ = events.recv() => {
                    // Coalesce a burst of commits into one tick.
                    while events.try_recv().is_ok() {}
                }
                Some(_) = driver.tasks.join_next(), if !driver.tasks.is_empty() => {}
                _ = tokio::time::sleep(sleep_for) => {}
            }
        }
        // Graceful: no more claims; let calls in flight finish or leave them to reconcile.
        let grace = tokio::time::sleep(self.inner.config.grace);
        tokio::pin!(grace);
        while !driver.tasks.is_empty() {
            tokio::select! {
                _ = &mut grace => {
                    tracing::warn!(left = driver.tasks.len(), "shutdown grace elapsed; in-flight steps will be reconciled at next start");
                    driver.tasks.abort_all();
                    break;
                }
                _ = driver.tasks.join_next() => {}
            }
        }
        Ok(())
    }
}

type Busy = Arc<Mutex<HashSet<(String, String)>>>;

struct Driver {
    engine: Engine,
    tasks: JoinSet<()>,
    /// Steps a task is working on; nothing else touches them meanwhile.
    busy: Busy,
    /// Outcome-unknown attempts already asked about (asked once per driver life; then people).
    queried: HashSet<(String, String, u32)>,
    /// In-flight steps of aborted runs whose cancel was requested.
    cancelling: HashSet<(String, String, u32)>,
}

/// Removes a step from the busy set when its task ends, however it ends.
struct BusyGuard(Busy, (String, String));

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

    /// Starts a task that carries out `actions` for a step, then whatever they lead to.
    fn spawn(&mut self, run_id: String, step: StepRecord, actions: Vec<StepAction>) {
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
        self.tasks.spawn(async move {
            let _guard = guard;
            if let Err(e) = engine.carry_out(&run_id, step, work).await {
                tracing::warn!(run = %run_id, error = %e, "step work failed");
            }
        });
    }

    /// Asks executors about every step in flight or in doubt before anything is dispatched.
    async fn reconcile(&mut self) -> Result<Vec<(String, StepRecord, Vec<StepAction>)>> {
        let store = self.engine.store().clone();
        let mut follow_ups = Vec::new();
        for run_id in store.active_run_ids().await? {
            for step in store.steps(&run_id).await? {
                let actions = match step.status {
                    StepStatus::Dispatched | StepStatus::Running => {
                        let status = self.engine.status_of(&run_id, &step).await;
                        tracing::info!(run = %run_id, step = %step.id, ?status, "reconciled");
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
    async fn tick(&mut self, _previous: Option<Millis>) -> Result<Option<Millis>> {
        let store = self.engine.store().clone();
        let limits = self.engine.inner.config.limits;
        let mut next_wake: Option<Millis> = None;
        let earliest = |t: Millis, w: &mut Option<Millis>| *w = Some(w.map_or(t, |x| x.min(t)));
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
            let steps = store.steps(&run_id).await?;
            let mut lapses = Vec::new();
            let mut run_busy = false;
            for s in steps {
                if self.is_busy(&run_id, &s.id) {
                    run_busy = true;
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
                tracing::info!(run = %run_id, step = %step.id, error = %e, "cancel answer not applied");
            }
        });
    }
}

impl Engine {
    fn key(&self, run_id: &str, step: &StepRecord, attempt: u32) -> IdempotencyKey {
        IdempotencyKey {
            run_id: run_id.to_string(),
            step_id: step.id.clone(),
            attempt,
        }
    }

    fn dispatch_of(
        &self,
        run_id: &str,
        step: &StepRecord,
        attempt: u32,
        operation: Operation,
    ) -> Dispatch {
        Dispatch {
            key: self.key(run_id, step, attempt),
            host: step.spec.host.clone(),
            operation,
            timeout_secs: step.spec.timeout_secs,
        }
    }

    /// Applies a driver event; returns the follow-up actions.
    async fn apply(
        &self,
        run_id: &str,
        step_id: &str,
        event: StepEvent,
    ) -> Result<Vec<StepAction>> {
        let (_, actions) = self
            .inner
            .store
            .apply_step_event(run_id, step_id, &event, self.now())
            .await?;
        Ok(actions)
    }

    async fn status_of(&self, run_id: &str, step: &StepRecord) -> ActionStatus {
        if step.spec.kind == StepKind::Wait {
            // Polling changes nothing; a wait interrupted by a restart simply polls again.
            return ActionStatus::NotFound;
        }
        match self.inner.router.for_kind(step.spec.kind) {
            Some(ex) => {
                ex.status(
                    &self.key(run_id, step, step.attempt),
                    step.spec.host.as_deref(),
                )
                .await
            }
            None => ActionStatus::Unknown {
                reason: format!("no executor handles {} steps", step.spec.kind.as_str()),
            },
        }
    }

    /// Carries out a step's actions, and the actions their results lead to, until none is left.
    async fn carry_out(
        &self,
        run_id: &str,
        step: StepRecord,
        mut work: Vec<StepAction>,
    ) -> Result<()> {
        while let Some(action) = work.pop() {
            let current = self.inner.store.step(run_id, &step.id).await?;
            // The scan that asked for this may have read the step before another task moved it.
            let still_due = match &action {
                StepAction::Dispatch { attempt } => {
                    current.status.is_in_flight()
                        && current.status != StepStatus::Verifying
                        && current.attempt == *attempt
                }
                StepAction::Verify => current.status == StepStatus::Verifying,
                StepAction::QueryStatus => {
                    current.status == StepStatus::OutcomeUnknown
                        || matches!(current.status, StepStatus::Dispatched | StepStatus::Running)
                }
                StepAction::CancelInFlight | StepAction::NeedsPeople => false,
            };
            if !still_due {
                continue;
            }
            let event = match action {
                StepAction::Dispatch { attempt } => StepEvent::Finished {
                    outcome: self.execute(run_id, &current, attempt).await,
                },
                StepAction::Verify => self.verify(run_id, &current).await,
                StepAction::QueryStatus => {
                    let status = self.status_of(run_id, &current).await;
                    if matches!(status, ActionStatus::NotFound | ActionStatus::Running)
                        && current.status == StepStatus::OutcomeUnknown
                    {
                        continue; // nothing new: people decide
                    }
                    StepEvent::Reconciled { status }
                }
                StepAction::CancelInFlight | StepAction::NeedsPeople => continue,
            };
            let next = match self.apply(run_id, &step.id, event.clone()).await {
                Ok(next) => next,
                Err(EngineError::Refused(_)) => {
                    // The step moved meanwhile (aborted and answered by a cancel): record what
                    // the executor said if the step is in doubt, otherwise keep the answer in logs.
                    let now = self.inner.store.step(run_id, &step.id).await?;
                    match (now.status, event) {
                        (StepStatus::OutcomeUnknown, StepEvent::Finished { outcome }) => {
                            self.apply(
                                run_id,
                                &step.id,
                                StepEvent::Reconciled {
                                    status: ActionStatus::Finished { outcome },
                                },
                            )
                            .await?
                        }
                        (status, event) => {
                            tracing::info!(run = %run_id, step = %step.id, %status, event = event.name(), "late answer not applied");
                            Vec::new()
                        }
                    }
                }
                Err(e) => return Err(e),
            };
            work.extend(next);
        }
        Ok(())
    }

    async fn execute(&self, run_id: &str, step: &StepRecord, attempt: u32) -> Outcome {
        let Some(executor) = self.inner.router.for_kind(step.spec.kind) else {
            return Outcome::Failed {
                message: format!("no executor handles {} steps", step.spec.kind.as_str()),
                evidence: serde_json::Value::Null,
            };
        };
        let dispatch = self.dispatch_of(run_id, step, attempt, step.spec.operation.clone());
        if step.spec.kind == StepKind::Wait {
            return poll_until(executor.as_ref(), &dispatch).await;
        }
        let call = async {
            match &step.undo_of {
                Some(original) => {
                    let before = match self.inner.store.step(run_id, original).await {
                        Ok(s) => s.state.evidence.unwrap_or(serde_json::Value::Null),
                        Err(e) => {
                            return Outcome::Failed {
                                message: format!("cannot read what {original} captured: {e}"),
                                evidence: serde_json::Value::Null,
                            }
                        }
                    };
                    executor.undo(&dispatch, &before).await
                }
                None => executor.execute(&dispatch).await,
            }
        };
        let limit = Duration::from_secs(step.spec.timeout_secs.max(1));
        let deadline = tokio::time::sleep(limit);
        let every = self.inner.config.heartbeat;
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tokio::pin!(call, deadline);
        loop {
            tokio::select! {
                outcome = &mut call => return outcome,
                _ = &mut deadline => {
                    return Outcome::Unknown { reason: format!("no answer within {} s", limit.as_secs()) }
                }
                _ = beat.tick() => {
                    let status = executor.status(&dispatch.key, dispatch.host.as_deref()).await;
                    if status == ActionStatus::Running {
                        if let Err(e) = self.apply(run_id, &step.id, StepEvent::Heartbeat).await {
                            tracing::info!(run = %run_id, step = %step.id, error = %e, "heartbeat not recorded");
                        }
                    }
                }
            }
        }
    }

    async fn verify(&self, run_id: &str, step: &StepRecord) -> StepEvent {
        let Some(post) = step.spec.postcondition.clone() else {
            return StepEvent::Verified {
                ok: true,
                evidence: serde_json::Value::Null,
            };
        };
        let kind = match &post {
            Operation::Sql(_) => StepKind::Sql,
            Operation::Probe(_) => StepKind::Probe,
            _ if step.spec.kind == StepKind::Manual => StepKind::Agent,
            _ => step.spec.kind,
        };
        let Some(executor) = self.inner.router.for_kind(kind) else {
            return StepEvent::Verified {
                ok: false,
                evidence: serde_json::json!({ "error": format!("no executor handles {} checks", kind.as_str()) }),
            };
        };
        let dispatch = self.dispatch_of(run_id, step, step.attempt, post);
        let limit = Duration::from_secs(step.spec.timeout_secs.max(1));
        match tokio::time::timeout(limit, executor.check(&dispatch)).await {
            Ok(Outcome::Succeeded { evidence }) => StepEvent::Verified { ok: true, evidence },
            Ok(Outcome::Failed { message, evidence }) => StepEvent::Verified {
                ok: false,
                evidence: serde_json::json!({ "message": message, "evidence": evidence }),
            },
            Ok(Outcome::Unknown { reason }) => StepEvent::Verified {
                ok: false,
                evidence: serde_json::json!({ "message": reason }),
            },
            Err(_) => StepEvent::Verified {
                ok: false,
                evidence: serde_json::json!({ "message": format!("the check gave no answer within {} s", limit.as_secs()) }),
            },
        }
    }
}

/// Polls a wait step's condition every interval until it has held for its stable period, or the
/// timeout passes.
pub async fn poll_until(executor: &dyn Executor, dispatch: &Dispatch) -> Outcome {
    let Operation::Wait {
        condition,
        interval_secs,
        timeout_secs,
    } = &dispatch.operation
    else {
        return Outcome::Failed {
            message: "a wait step needs a wait operation".into(),
            evidence: serde_json::Value::Null,
        };
    };
    let stable = match condition {
        WaitCondition::BackupSessionsLow { stable_secs, .. } => Duration::from_secs(*stable_secs),
    };
    let interval = Duration::from_secs((*interval_secs).max(1));
    let timeout = Duration::from_secs(*timeout_secs);
    let started = tokio::time::Instant::now();
    let mut held_since: Option<tokio::time::Instant> = None;
    let mut polls = 0u32;
    loop {
        polls += 1;
        let now = tokio::time::Instant::now();
        match executor.check(dispatch).await {
            Outcome::Succeeded { evidence } => {
                let since = *held_since.get_or_insert(now);
                if now.duration_since(since) >= stable {
                    return Outcome::Succeeded {
                        evidence: serde_json::json!({ "polls": polls, "held_secs": now.duration_since(since).as_secs(), "last": evidence }),
                    };
                }
            }
            _ => held_since = None,
        }
        if now.duration_since(started) >= timeout {
            return Outcome::Failed {
                message: format!(
                    "the condition did not hold for {} s within {} s",
                    stable.as_secs(),
                    timeout.as_secs()
                ),
                evidence: serde_json::json!({ "polls": polls }),
            };
        }
        tokio::time::sleep(interval).await;
    }
}
