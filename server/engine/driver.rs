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

mod scheduler;
mod work;

use scheduler::Driver;
pub use work::poll_until;

use crate::engine::clock::{Clock, TokioClock};
use crate::engine::machine::{Actor, Millis, RunEvent, RunState, StepEvent, StepState};
use crate::engine::router::Router;
use crate::engine::store::{DriveLimits, NewRun, Result, RunRecord, Store};

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
    /// A step leaving flight claims its run's next steps in the same commit (one fsync per step;
    /// see `store/group.rs`). Off, the driver's pass claims in a commit of its own, as before
    /// issue 19: kept only so a benchmark can measure both in one invocation.
    pub claim_in_commit: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            limits: DriveLimits::default(),
            grace: Duration::from_secs(10),
            idle_tick: Duration::from_secs(1),
            heartbeat: Duration::from_secs(15),
            claim_in_commit: true,
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
            window_watched: std::collections::HashMap::new(),
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
