//! Rehearsals: a runbook run end to end against a simulated copy of a Data Center, with the real
//! engine and the real executors (agents over mutual TLS, SQL over TDS, probes over HTTPS).
//!
//! People are stood in for by two clearly labelled rehearsal identities: the *rehearsal
//! operator* requests the run and performs manual tasks on the simulated hosts, the *rehearsal
//! approver* (a different identity, so four-eyes still holds) approves the start and every gate.
//! Both names and every comment say "rehearsal", so the audit log can never be mistaken for a real
//! change's. Waits for backup sessions to drain are shortened (stable period 0 s, polled every
//! second): the simulated sessions are already at zero, and a rehearsal should not sit out real
//! five-minute windows.

pub mod campaign;
pub mod demo;
pub mod faults;
mod follow;
pub mod manual;
pub mod report;
pub mod site;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use lockstep_protocol::tls::Identity;
use lockstep_simulator::SimulatedDataCenter;

use crate::engine::clock::TokioClock;
use crate::engine::machine::{RunEvent, RunStatus, StepEvent, StepStatus};
use crate::engine::store::NewRun;
use crate::engine::{Actor, Engine, EngineConfig, Store};
use crate::knowledge::expand::expand;
use crate::knowledge::inventory::Inventory;
use crate::knowledge::plan::Plan;
use crate::knowledge::role::Role;
use crate::knowledge::runbook::Catalog;

pub use faults::Fault;
pub use report::Report;

/// The identity that requests rehearsal runs and performs their manual tasks.
pub const REHEARSAL_OPERATOR: &str = "rehearsal-operator (simulated, not a person)";
/// The identities that approve rehearsal gates (two, for gates that need a quorum of two).
pub const REHEARSAL_APPROVERS: [&str; 2] = [
    "rehearsal-approver (simulated, not a person)",
    "rehearsal-approver-2 (simulated, not a person)",
];

pub fn operator() -> Actor {
    Actor::new(REHEARSAL_OPERATOR, &[Role::Operator])
}

fn approver(i: usize) -> Actor {
    Actor::new(REHEARSAL_APPROVERS[i], &[Role::Approver])
}

/// What to rehearse.
#[derive(Debug, Clone)]
pub struct Options {
    pub inventory: PathBuf,
    pub runbook: String,
    pub params: BTreeMap<String, String>,
    pub faults: Vec<Fault>,
    /// The orchestrator database the run is recorded in (kept afterwards).
    pub db: PathBuf,
    /// The simulated hosts' state, agents' identities and journals.
    pub sim_dir: PathBuf,
    /// A directory of site runbooks added to the built-in ones.
    pub runbooks_dir: Option<PathBuf>,
}

/// One line of progress: a step changed status.
#[derive(Debug, Clone)]
pub struct Progress {
    pub elapsed: Duration,
    pub step: String,
    pub status: StepStatus,
    pub detail: Option<String>,
}

/// A rehearsal in progress: the simulated Data Center, the engine driving it, and the run.
pub struct Rehearsal {
    pub dc: SimulatedDataCenter,
    pub engine: Engine,
    pub store: Store,
    pub run_id: String,
    pub plan: Plan,
    pub options: Options,
    started: Instant,
    /// Registry values of every simulated host before the run, to report what it changed.
    registry_before: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>,
    stop_driver: Option<tokio::sync::oneshot::Sender<()>>,
    driver: Option<tokio::task::JoinHandle<crate::engine::store::Result<()>>>,
}

/// Expands the runbook over the inventory; rehearsal waits are shortened (see the module doc).
pub fn plan_for(options: &Options) -> anyhow::Result<Plan> {
    let joined = |errs: Vec<crate::knowledge::runbook::RunbookError>| {
        anyhow!(
            "invalid runbook: {}",
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    let mut catalog = Catalog::builtin().map_err(joined)?;
    if let Some(dir) = &options.runbooks_dir {
        catalog.load_dir(dir).map_err(joined)?;
    }
    let runbook = catalog.get(&options.runbook).ok_or_else(|| {
        anyhow!(
            "no runbook `{}`; known: {}",
            options.runbook,
            catalog.ids().join(", ")
        )
    })?;
    let inventory = Inventory::load(&options.inventory).map_err(|e| anyhow!("{e}"))?;
    let mut plan = expand(runbook, &inventory, &options.params).map_err(|e| {
        anyhow!(
            "cannot plan `{}` for {}: {e}",
            options.runbook,
            options.inventory.display()
        )
    })?;
    plan.for_simulated_site();
    Ok(plan)
}

/// Creates a run of `plan`, submits it and approves its start as the rehearsal identities.
async fn create_and_approve(
    engine: &Engine,
    runbook: &str,
    plan: &Plan,
) -> anyhow::Result<crate::engine::store::RunRecord> {
    let new = NewRun {
        change_ticket: format!("REHEARSAL of {runbook}"),
        window_start: None,
        window_end: None,
        plan: plan.clone(),
    };
    let run = engine.create_run(new, &operator()).await?;
    engine
        .run_event(&run.id, RunEvent::Submit { actor: operator() })
        .await?;
    engine
        .run_event(
            &run.id,
            RunEvent::ApproveStart {
                actor: approver(0),
                comment: "Rehearsal: start approved by the rehearsal identity, not by a person"
                    .into(),
            },
        )
        .await?;
    Ok(run)
}

impl Rehearsal {
    /// Starts a second run on the same simulated Data Center and store — e.g.
    /// `recover-failed-upgrade` after a failed upgrade — and makes it the run this rehearsal
    /// drives and reports on. Faults stay as they are; clear them first if the site was fixed.
    pub async fn follow_with(
        &mut self,
        runbook: &str,
        params: BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let options = Options {
            runbook: runbook.to_string(),
            params,
            ..self.options.clone()
        };
        let plan = plan_for(&options)?;
        let run = create_and_approve(&self.engine, runbook, &plan).await?;
        self.run_id = run.id;
        self.plan = plan;
        self.options = options;
        Ok(())
    }

    /// Plans, starts the simulated Data Center, injects the faults, creates the run (requested by
    /// the rehearsal operator, start approved by the rehearsal approver) and starts the driver.
    pub async fn start(options: Options) -> anyhow::Result<Rehearsal> {
        let plan = plan_for(&options)?;
        let inventory = Inventory::load(&options.inventory).map_err(|e| anyhow!("{e}"))?;
        for f in &options.faults {
            if !inventory
                .servers
                .iter()
                .any(|s| s.name.eq_ignore_ascii_case(&f.server))
            {
                anyhow::bail!(
                    "--fault {}:{}: the inventory has no server {}",
                    f.server,
                    f.kind,
                    f.server
                );
            }
        }
        let identity = Identity::generate("lockstep-rehearsal")?;
        if let Some(parent) = options.db.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let store = Store::open(&options.db)
            .await
            .map_err(|e| anyhow!("opening {}: {e}", options.db.display()))?;
        let (dc, router) =
            site::start(&options.inventory, &options.sim_dir, identity, 10, &store).await?;
        for f in &options.faults {
            f.inject(&dc)?;
        }
        let config = EngineConfig {
            idle_tick: Duration::from_millis(200),
            ..EngineConfig::default()
        };
        let engine = Engine::with(store.clone(), router, Arc::new(TokioClock::new()), config);
        let mut registry_before = BTreeMap::new();
        for s in &dc.servers {
            registry_before.insert(s.description.name.clone(), s.host.read()?.registry);
        }
        let run = create_and_approve(&engine, &options.runbook, &plan).await?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let driver = tokio::spawn(engine.clone().drive(async {
            let _ = stop_rx.await;
        }));
        Ok(Rehearsal {
            dc,
            engine,
            store,
            run_id: run.id,
            plan,
            options,
            started: Instant::now(),
            registry_before,
            stop_driver: Some(stop_tx),
            driver: Some(driver),
        })
    }

    /// Stands in for people until the run finishes or stops where only a person could go on
    /// (a failed step, an outcome in doubt). Returns the run's status.
    pub async fn drive(&self, progress: &mut dyn FnMut(&Progress)) -> anyhow::Result<RunStatus> {
        // Subscribe before the first read: nothing committed after it is missed (see follow.rs).
        let mut events = self.store.subscribe();
        let mut view = follow::StepView::default();
        let mut changes = view.reload(&self.store, &self.run_id).await?;
        let mut quiet_rounds = 0u32;
        loop {
            for c in changes.drain(..) {
                progress(&Progress {
                    elapsed: self.started.elapsed(),
                    step: c.step,
                    status: c.status,
                    detail: c.detail,
                });
            }
            let run = self.store.run(&self.run_id).await?;
            if run.status.is_terminal() {
                return Ok(run.status);
            }
            let mut acted = false;
            if run.status.is_driving() {
                for id in view.waiting.clone() {
                    let s = self.store.step(&self.run_id, &id).await?;
                    acted |= self.act_as_people(&s).await?;
                }
            }
            // Steps waiting for people only move while the run is driven (we act on them).
            let moving = view.any(&[
                StepStatus::Dispatched,
                StepStatus::Running,
                StepStatus::Verifying,
            ]) || (run.status.is_driving()
                && view.any(&[
                    StepStatus::Ready,
                    StepStatus::AwaitingApproval,
                    StepStatus::AwaitingOperator,
                ]));
            let runnable = run.status.is_driving()
                && view.any(&[StepStatus::Pending])
                && !view.any(&[StepStatus::Failed, StepStatus::OutcomeUnknown]);
            if !acted && !moving && !runnable {
                quiet_rounds += 1;
                if run.status == RunStatus::Failed || quiet_rounds >= 10 {
                    return Ok(run.status);
                }
            } else {
                quiet_rounds = 0;
            }
            // Every event of the burst moves the picture; the run is looked at once per burst.
            let first = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
            let mut next = first.ok();
            while let Some(received) = next.take() {
                match received {
                    Ok(ev) => {
                        if let Some(c) = view.apply(&self.store, &self.run_id, &ev).await? {
                            changes.push(c);
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => view.stale = true,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
                next = match events.try_recv() {
                    Ok(ev) => Some(Ok(ev)),
                    Err(tokio::sync::broadcast::error::TryRecvError::Lagged(k)) => {
                        Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(k)))
                    }
                    Err(_) => None,
                };
            }
            if view.stale {
                changes.extend(view.reload(&self.store, &self.run_id).await?);
            }
        }
    }

    /// Approves an open gate or performs a waiting manual task. True when it did something.
    async fn act_as_people(&self, s: &crate::engine::store::StepRecord) -> anyhow::Result<bool> {
        match s.status {
            StepStatus::AwaitingApproval if !s.state.gate_lapsed => {
                let given = s.state.approvals.len().min(REHEARSAL_APPROVERS.len() - 1);
                let event = StepEvent::Approve {
                    actor: approver(given),
                    comment: "Rehearsal: approved by the rehearsal identity, not by a person"
                        .into(),
                    content_hash: s.content_hash.clone(),
                };
                self.engine
                    .step_event(&self.run_id, &s.id, event)
                    .await
                    .with_context(|| format!("approving {}", s.id))?;
                Ok(true)
            }
            StepStatus::AwaitingOperator => {
                let note = match s.spec.host.as_deref() {
                    Some(h) => match self.dc.host(h) {
                        Some(host) => manual::perform(host, self.dc.sql(h), &s.spec)?,
                        None => format!("{h} is not part of the simulated Data Center"),
                    },
                    None => "confirmed by the rehearsal operator".into(),
                };
                let actor = operator();
                if s.state.claimed_by.is_none() {
                    self.engine
                        .step_event(
                            &self.run_id,
                            &s.id,
                            StepEvent::Claim {
                                actor: actor.clone(),
                            },
                        )
                        .await?;
                }
                let note = format!("Rehearsal: {note}");
                self.engine
                    .step_event(&self.run_id, &s.id, StepEvent::Complete { actor, note })
                    .await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Clears every injected fault (the site fixed the problem).
    pub fn clear_faults(&self) -> anyhow::Result<()> {
        for f in &self.options.faults {
            f.clear(&self.dc)?;
        }
        Ok(())
    }

    /// Retries every failed or in-doubt step and lets the run go on, as the operator would.
    pub async fn retry(&self) -> anyhow::Result<()> {
        for s in self.store.steps(&self.run_id).await? {
            if matches!(s.status, StepStatus::Failed | StepStatus::OutcomeUnknown) {
                self.engine
                    .step_event(&self.run_id, &s.id, StepEvent::Retry { actor: operator() })
                    .await?;
            }
        }
        if self.store.run(&self.run_id).await?.status == RunStatus::Failed {
            self.engine
                .run_event(&self.run_id, RunEvent::Reopen { actor: operator() })
                .await?;
        }
        Ok(())
    }

    /// Asks for the run to be undone (reversible steps that succeeded, in reverse order).
    pub async fn undo(&self, reason: &str) -> anyhow::Result<()> {
        self.engine
            .run_event(
                &self.run_id,
                RunEvent::Undo {
                    actor: operator(),
                    reason: format!("Rehearsal: {reason}"),
                },
            )
            .await?;
        Ok(())
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub async fn report(&self) -> anyhow::Result<Report> {
        report::build(self).await
    }

    /// Stops the driver and the simulated Data Center.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop_driver.take() {
            let _ = tx.send(());
        }
        if let Some(d) = self.driver.take() {
            d.await.context("the driver task failed")??;
        }
        self.dc.stop().await
    }
}

/// A fresh scratch directory under the system temporary folder.
pub fn scratch_dir(label: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lockstep-{label}-{}", uuid::Uuid::new_v4()))
}

/// The example inventory for a topology name, relative to the repository root.
pub fn example_inventory(root: &Path, topology: &str) -> PathBuf {
    root.join("examples").join(format!("{topology}.toml"))
}
