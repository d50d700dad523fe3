//! `lockstep audit verify|export`, `lockstep backup`, and the hidden `lockstep engine` commands
//! (driving a plan on the journaling executor without the dashboard; the crash test uses them).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::engine::audit;
use crate::engine::clock::TokioClock;
use crate::engine::journal::JournalExecutor;
use crate::engine::machine::{RunEvent, RunStatus, StepStatus};
use crate::engine::store::{DriveLimits, NewRun};
use crate::engine::testkit::{approver, operator};
use crate::engine::{Engine, EngineConfig, Router, Store};

/// The database, as in `lockstep serve`.
#[derive(Debug, clap::Args)]
pub struct DbArg {
    /// SQLite database file.
    #[arg(
        long,
        value_name = "FILE",
        env = "LOCKSTEP_DB",
        default_value = "lockstep-data/lockstep.db"
    )]
    pub db: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCmd {
    /// Verify the audit chain and its head file; names the first bad event and exits 1 if any.
    Verify {
        #[command(flatten)]
        db: DbArg,
    },
    /// Write the audit log to standard output (or --out), oldest event first.
    Export {
        /// jsonl (one event object per line, exactly as stored) or csv (header row, then one
        /// row per event; every cell quoted, leading `= + - @` neutralised for spreadsheets).
        #[arg(long, value_name = "FORMAT", value_parser = audit::ExportFormat::parse)]
        format: audit::ExportFormat,
        /// Only this run's events.
        #[arg(long, value_name = "RUN_ID")]
        run: Option<String>,
        /// Write here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to write the copy (must not exist). Its audit head file is written beside it.
    pub file: PathBuf,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Debug, clap::Subcommand)]
pub enum EngineCmd {
    /// Drive a plan on the journaling test executor until it finishes or needs a person.
    /// Continues the run already in the database, if any.
    RunLocal {
        #[command(flatten)]
        db: DbArg,
        /// Plan JSON (as printed by `lockstep plan --json`).
        #[arg(long, value_name = "FILE")]
        plan_json: PathBuf,
        /// Journal file of the test executor (appended; fsynced per entry).
        #[arg(long, value_name = "FILE")]
        journal: PathBuf,
        /// How long each action's side effect takes, in milliseconds.
        #[arg(long, default_value_t = 0)]
        effect_ms: u64,
        /// Steps of the run in flight at once.
        #[arg(long, default_value_t = 4)]
        per_run: usize,
    },
}

pub async fn run_audit(cmd: AuditCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCmd::Verify { db } => {
            let store = Store::open_read_only(&db.db).await?;
            store.integrity_check().await?;
            let report = store.verify_audit().await?;
            match (&report.problem, &report.last) {
                (None, Some(last)) => {
                    println!(
                        "audit log ok: {} events, head #{} {}",
                        report.events, last.id, last.hash
                    );
                    Ok(ExitCode::SUCCESS)
                }
                (None, None) => {
                    println!("audit log ok: empty");
                    Ok(ExitCode::SUCCESS)
                }
                (Some(p), _) => {
                    println!("audit log BROKEN at event {}: {}", p.event_id, p.what);
                    Ok(ExitCode::from(1))
                }
            }
        }
        AuditCmd::Export {
            format,
            run,
            out,
            db,
        } => {
            let store = Store::open_read_only(&db.db).await?;
            let events = match &run {
                Some(r) => store.events_after(0, Some(r), u32::MAX).await?,
                None => store.all_events().await?,
            };
            let mut sink: Box<dyn Write> = match &out {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            audit::export(&events, format, &mut sink)?;
            sink.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn run_backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(&args.db.db).await?;
    let head = store.backup(&args.file).await?;
    println!(
        "backup written to {} (audit head #{} {})",
        args.file.display(),
        head.id,
        head.hash
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn run_engine(cmd: EngineCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        EngineCmd::RunLocal {
            db,
            plan_json,
            journal,
            effect_ms,
            per_run,
        } => run_local(&db.db, &plan_json, &journal, effect_ms, per_run).await,
    }
}

/// Exit codes: 0 the run succeeded; 3 it waits for a person (failed or outcome-unknown steps).
async fn run_local(
    db: &Path,
    plan_json: &Path,
    journal: &Path,
    effect_ms: u64,
    per_run: usize,
) -> anyhow::Result<ExitCode> {
    let plan_text = std::fs::read_to_string(plan_json)
        .with_context(|| format!("cannot read {}", plan_json.display()))?;
    let plan = serde_json::from_str(&plan_text)
        .with_context(|| format!("{} is not a plan", plan_json.display()))?;
    let store = Store::open(db).await?;
    let journal = JournalExecutor::open(journal)
        .with_context(|| format!("cannot open the journal {}", journal.display()))?
        .with_effect(Duration::from_millis(effect_ms));
    let config = EngineConfig {
        limits: DriveLimits {
            per_run,
            per_host: 1,
        },
        ..EngineConfig::default()
    };
    let engine = Engine::with(
        store.clone(),
        Router::all(Arc::new(journal)),
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
