//! Shared by the engine tests: a fresh store on disk, a running driver, and waiting for a state.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use lockstep::engine::journal::JournalExecutor;
use lockstep::engine::machine::{RunEvent, RunStatus, StepStatus};
use lockstep::engine::store::{NewRun, RunRecord};
use lockstep::engine::testkit::{approver, operator};
use lockstep::engine::{Engine, EngineConfig, Router, Store};
use lockstep::knowledge::plan::Plan;

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub engine: Engine,
    pub journal: Arc<JournalExecutor>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    driver: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::with_journal(JournalExecutor::in_memory(), EngineConfig::default()).await
    }

    /// Test settings: a short shutdown grace (hanging test actions are left to reconcile).
    pub fn config() -> EngineConfig {
        EngineConfig {
            grace: Duration::from_millis(300),
            ..EngineConfig::default()
        }
    }

    pub async fn with_journal(journal: JournalExecutor, config: EngineConfig) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("lockstep.db"))
            .await
            .expect("open store");
        let journal = Arc::new(journal);
        let engine = Engine::with(
            store.clone(),
            Router::all(journal.clone()),
            Arc::new(lockstep::engine::clock::TokioClock::new()),
            EngineConfig {
                grace: Duration::from_millis(300),
                ..config
            },
        );
        Harness {
            dir,
            store,
            engine,
            journal,
            stop: None,
            driver: None,
        }
    }

    /// Starts the driver in the background.
    pub fn start(&mut self) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let engine = self.engine.clone();
        self.driver = Some(tokio::spawn(async move {
            engine
                .drive(async {
                    let _ = rx.await;
                })
                .await
                .expect("driver");
        }));
        self.stop = Some(tx);
    }

    /// Stops the driver gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.driver.take() {
            h.await.expect("driver task");
        }
    }

    /// Creates a run requested by olga and approved to start by carl.
    pub async fn started_run(&self, plan: Plan) -> RunRecord {
        let run = self
            .engine
            .create_run(
                NewRun {
                    change_ticket: "CHG-42".into(),
                    window_start: None,
                    window_end: None,
                    plan,
                },
                &operator("olga"),
            )
            .await
            .expect("create run");
        self.engine
            .run_event(
                &run.id,
                RunEvent::Submit {
                    actor: operator("olga"),
                },
            )
            .await
            .expect("submit");
        self.engine
            .run_event(
                &run.id,
                RunEvent::ApproveStart {
                    actor: approver("carl"),
                    comment: "go".into(),
                },
            )
            .await
            .expect("approve start");
        run
    }

    /// Waits (up to 60 s of tokio time) until the run has `status`.
    pub async fn run_reaches(&self, run_id: &str, status: RunStatus) -> RunRecord {
        self.until(
            || async {
                let run = self.store.run(run_id).await.expect("run");
                (run.status == status).then_some(run)
            },
            &format!("run {run_id} to be {status}"),
        )
        .await
    }

    /// Waits until the step has `status`.
    pub async fn step_reaches(&self, run_id: &str, step_id: &str, status: StepStatus) {
        self.until(
            || async {
                let s = self.store.step(run_id, step_id).await.expect("step");
                (s.status == status).then_some(())
            },
            &format!("step {step_id} to be {status}"),
        )
        .await
    }

    async fn until<T, F, Fut>(&self, mut probe: F, what: &str) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let mut events = self.store.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = probe().await {
                return v;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                let steps = self.store.runs().await.expect("runs");
                panic!("timed out waiting for {what}; runs: {steps:?}");
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), events.recv()).await;
        }
    }
}
