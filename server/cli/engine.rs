//! The hidden `lockstep engine` commands: drive a plan without the dashboard, on the journaling
//! test executor or on the registered agents. The crash tests kill these with SIGKILL.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::audit::DbArg;
use crate::engine::clock::TokioClock;
use crate::engine::journal::JournalExecutor;
use crate::engine::machine::{RunEvent, RunStatus, StepStatus};
use crate::engine::store::{DriveLimits, NewRun};
use crate::engine::testkit::{approver, operator};
use crate::engine::{Engine, EngineConfig, Router, Store};

#[derive(Debug, clap::Subcommand)]
pub enum EngineCmd {
    /// Drive a plan on the journaling test executor (or the registered agents) until it finishes
    /// or needs a person. Continues the run already in the database, if any.
    RunLocal {
        #[command(flatten)]
        db: DbArg,
        /// Plan JSON (as printed by `lockstep plan --json`).
        #[arg(long, value_name = "FILE")]
        plan_json: PathBuf,
        /// Journal file of the test executor (appended; fsynced per entry). Not with --agents.
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "agents",
            conflicts_with = "agents"
        )]
        journal: Option<PathBuf>,
        /// How long each action's side effect takes, in milliseconds.
        #[arg(long, default_value_t = 0)]
        effect_ms: u64,
        /// Steps of the run in flight at once.
        #[arg(long, default_value_t = 4)]
        per_run: usize,
        /// Send agent steps to the agents registered with `lockstep agent add` (over mutual TLS,
        /// with the orchestrator identity of the data folder) instead of the test executor.
        #[arg(long)]
        agents: bool,
        /// Print `event <id> <hash>` on standard output for every event once it has committed:
        /// the acknowledgements a crash test holds the database to.
        #[arg(long)]
        print_events: bool,
    },
}

pub async fn run_engine(cmd: EngineCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        EngineCmd::RunLocal {
            db,
            plan_json,
            journal,
            effect_ms,
            per_run,
            agents,
            print_events,
        } => {
            let options = LocalOptions {
                effect_ms,
                per_run,
                agents,
                print_events,
            };
            run_local(&db.db, &plan_json, journal.as_deref(), options).await
        }
    }
}

struct LocalOptions {
    effect_ms: u64,
    per_run: usize,
    agents: bool,
    print_events: bool,
}

/// The executors for `run-local`: every step on the journaling executor, or agent steps on the
/// registered agents (the other kinds then fail with "no executor", as in `lockstep serve`).
async fn executors(
    store: &Store,
    db: &Path,
    journal: Option<&Path>,
    options: &LocalOptions,
) -> anyhow::Result<Router> {
    if options.agents {
        let overrides = crate::config::Overrides {
            db: Some(db.to_path_buf()),
            ..Default::default()
        };
        let config = crate::config::Config::from_process(None, &overrides)?;
        let identity = crate::executors::agent::orchestrator_identity(&config.data_dir)?;
        let agents =
            crate::executors::agent::AgentExecutor::from_registry(store.writer(), identity).await?;
        return Ok(Router::new().route(crate::knowledge::plan::StepKind::Agent, Arc::new(agents)));
    }
    let journal = journal.context("--journal is needed without --agents")?;
    let journal = JournalExecutor::open(journal)
        .with_context(|| format!("cannot open the journal {}", journal.display()))?
        .with_effect(Duration::from_millis(options.effect_ms));
    Ok(Router::all(Arc::new(journal)))
}

/// Exit codes: 0 the run succeeded; 3 it waits for a person (failed or outcome-unknown steps).
async fn run_local(
    db: &Path,
    plan_json: &Path,
    journal: Option<&Path>,
    options: LocalOptions,
) -> anyhow::Result<ExitCode> {
    let plan_text = std::fs::read_to_string(plan_json)
        .with_context(|| format!("cannot read {}", plan_json.display()))?;
    let plan = serde_json::from_str(&plan_text)
        .with_context(|| format!("{} is not a plan", plan_json.display()))?;
    let store = Store::open(db).await?;
    if options.print_events {
        let mut committed = store.subscribe();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match committed.recv().await {
                    Ok(e) => println!("event {} {}", e.id, e.hash),
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }
    let config = EngineConfig {
        limits: DriveLimits {
            per_run: options.per_run,
            per_host: 1,
        },
        ..EngineConfig::default()
    };
    let engine = Engine::with(
        store.clone(),
        executors(&store, db, journal, &options).await?,
        Arc::new(TokioClock::new()),
        config,
    );
    let run = match store.runs().await?.into_iter().next() {
        Some(run) => run,
        None => {
            let new = NewRun {
                change_ticket: "LOCAL".into(),
                window_start: None,
                window_end: None,
                plan,
            };
            engine.create_run(new, &operator("local-operator")).await?
        }
    };
    let run = store.run(&run.id).await?;
    if run.status == RunStatus::Draft {
        engine
            .run_event(
                &run.id,
                RunEvent::Submit {
                    actor: operator("local-operator"),
                },
            )
            .await?;
    }
    if store.run(&run.id).await?.status == RunStatus::AwaitingStartApproval {
        let approve = RunEvent::ApproveStart {
            actor: approver("local-approver"),
            comment: "local run".into(),
        };
        engine.run_event(&run.id, approve).await?;
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let driver = tokio::spawn(engine.clone().drive(async {
        let _ = stop_rx.await;
    }));
    let code = wait_until_settled(&store, &run.id).await?;
    let _ = stop_tx.send(());
    driver.await.context("the driver task failed")??;
    let steps = store.steps(&run.id).await?;
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for s in &steps {
        *counts.entry(s.status.to_string()).or_default() += 1;
    }
    let run = store.run(&run.id).await?;
    println!(
        "{}",
        serde_json::json!({ "run_id": run.id, "status": run.status, "steps": counts })
    );
    Ok(code)
}

/// Waits until the run finished, or nothing moves without a person for half a second.
async fn wait_until_settled(store: &Store, run_id: &str) -> anyhow::Result<ExitCode> {
    let mut events = store.subscribe();
    loop {
        let run = store.run(run_id).await?;
        match run.status {
            RunStatus::Succeeded | RunStatus::Undone => return Ok(ExitCode::SUCCESS),
            RunStatus::Failed | RunStatus::Aborted => return Ok(ExitCode::from(3)),
            _ => {}
        }
        let steps = store.steps(run_id).await?;
        let moving = steps.iter().any(|s| {
            s.status.is_in_flight() || matches!(s.status, StepStatus::Ready | StepStatus::Pending)
        });
        let quiet = tokio::time::timeout(Duration::from_millis(500), events.recv())
            .await
            .is_err();
        if quiet && !moving {
            return Ok(ExitCode::from(3));
        }
        if quiet
            && steps
                .iter()
                .all(|s| !s.status.is_in_flight() && s.status != StepStatus::Ready)
            && steps.iter().any(|s| s.status == StepStatus::OutcomeUnknown)
        {
            // Only pending steps behind a step in doubt remain: a person must decide.
            return Ok(ExitCode::from(3));
        }
    }
}
