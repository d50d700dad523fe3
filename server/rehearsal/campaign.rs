//! Campaign rehearsals: every stage of a campaign run, in order, against ONE simulated Data
//! Center, the simulated estate carrying over from stage to stage.
//!
//! Each stage is planned against the estate as found: after a stage, the releases are read back
//! from the simulated hosts (not taken from the campaign's projection), written out as the
//! inventory the next stage expands over, and the campaign is planned again from there — as a
//! real campaign re-plans when a stage's run is created. The report's end state is read from the
//! simulator too, so "every server at the target" is the simulator's word, not the plan's.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use serde::Serialize;

use super::report::Stopped;
use super::{Options, Progress, Rehearsal};
use crate::engine::machine::RunStatus;
use crate::knowledge::campaign::{self, project, Refusal, ServerState, Target};
use crate::knowledge::inventory::{Inventory, SqlServerVersion, Version, WindowsVersion};

/// What to rehearse.
#[derive(Debug, Clone)]
pub struct CampaignOptions {
    pub inventory: PathBuf,
    pub target: Target,
    /// The orchestrator database every stage's run is recorded in.
    pub db: PathBuf,
    /// The simulated hosts, and the estate as found after each stage (`estate-after-N.toml`).
    pub sim_dir: PathBuf,
    pub runbooks_dir: Option<PathBuf>,
}

/// Why a campaign rehearsal did not run at all.
#[derive(Debug)]
pub enum CampaignError {
    /// The campaign cannot be planned (the rule is named).
    Refused(Refusal),
    /// The rehearsal could not start or was interrupted (IO, the simulator, the store).
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for CampaignError {
    fn from(e: anyhow::Error) -> Self {
        CampaignError::Failed(e)
    }
}

/// One stage as rehearsed.
#[derive(Debug, Clone, Serialize)]
pub struct StageRun {
    pub runbook: String,
    pub params: std::collections::BTreeMap<String, String>,
    pub run_id: String,
    /// The run's status at the end.
    pub status: RunStatus,
    /// Where the run stopped and why, when it did not succeed.
    pub stopped_at: Option<Stopped>,
    /// How long the stage took on the simulated site, in milliseconds.
    pub elapsed_ms: u128,
}

/// One server's end state, read from the simulated host (as `lockstep rehearse` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct ServerRelease {
    pub name: String,
    pub version: Option<String>,
    pub windows: String,
    pub sql_server: Option<String>,
}

/// What the campaign rehearsal found.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignReport {
    /// `succeeded` (every stage succeeded and every server is at the target) or `stopped`.
    pub status: &'static str,
    pub inventory: String,
    pub target: Target,
    pub stages: Vec<StageRun>,
    pub servers: Vec<ServerRelease>,
    /// Servers short of the target at the end, with what is missing (empty on success).
    pub short_of_target: Vec<String>,
    /// Why planning again from the estate as found after a stage was refused, if it was.
    pub replan_refused: Option<Refusal>,
    pub db: String,
}

impl CampaignReport {
    pub fn succeeded(&self) -> bool {
        self.status == "succeeded"
    }
}

/// Plans the campaign and rehearses every stage on one simulated Data Center.
pub async fn rehearse(
    options: CampaignOptions,
    progress: &mut dyn FnMut(usize, &str, &Progress),
) -> Result<CampaignReport, CampaignError> {
    let inventory =
        Inventory::load(&options.inventory).map_err(|e| CampaignError::Failed(anyhow!("{e}")))?;
    let planned = campaign::plan(&inventory, &options.target).map_err(CampaignError::Refused)?;
    // Bounded: a re-plan can add a stage where the site differs from the projection, never loop.
    let most = planned.stages.len() + 2;
    let mut next = planned.stages.first().cloned();
    let mut stages = Vec::new();
    let mut rehearsal: Option<Rehearsal> = None;
    let mut found = inventory.clone();
    let mut replan_refused = None;
    while let Some(stage) = next.take() {
        let n = stages.len() + 1;
        let file = options.sim_dir.join(format!("estate-before-{n}.toml"));
        write_inventory(&found, &file)?;
        let r = match rehearsal.as_mut() {
            None => {
                let o = Options {
                    inventory: file,
                    runbook: stage.runbook.clone(),
                    params: stage.params.clone(),
                    faults: Vec::new(),
                    db: options.db.clone(),
                    sim_dir: options.sim_dir.join("site"),
                    runbooks_dir: options.runbooks_dir.clone(),
                };
                rehearsal.insert(Rehearsal::start(o).await?)
            }
            Some(r) => {
                r.options.inventory = file;
                r.follow_with(&stage.runbook, stage.params.clone()).await?;
                r
            }
        };
        let started = r.elapsed();
        let status = r.drive(&mut |p| progress(n, &stage.runbook, p)).await?;
        let report = r.report().await?;
        stages.push(StageRun {
            runbook: stage.runbook.clone(),
            params: stage.params.clone(),
            run_id: r.run_id.clone(),
            status,
            stopped_at: report.stopped_at.clone(),
            elapsed_ms: r.elapsed().saturating_sub(started).as_millis(),
        });
        if status != RunStatus::Succeeded {
            break;
        }
        found = estate_found(r, &inventory)?;
        if stages.len() >= most {
            break;
        }
        // The estate as found decides what comes next (a real campaign re-plans each stage).
        match campaign::plan(&found, &options.target) {
            Ok(c) => next = c.stages.into_iter().next(),
            Err(r) => replan_refused = Some(r),
        }
    }
    let servers = match &rehearsal {
        Some(r) => releases(r)?,
        None => inventory
            .servers
            .iter()
            .map(|s| ServerRelease {
                name: s.name.clone(),
                version: Some(s.connected_version.to_string()),
                windows: s.windows.as_str().to_owned(),
                sql_server: s.sql_server.map(|q| q.as_str().to_owned()),
            })
            .collect(),
    };
    let end = match &rehearsal {
        Some(r) => states(r, &inventory)?,
        None => Some(campaign::estate_of(&inventory)),
    };
    let short_of_target = match &end {
        Some(estate) => campaign::short_of(&inventory, estate, &options.target),
        None => vec!["a simulated host reports no Connected Backup version".into()],
    };
    let all_ran = stages.iter().all(|s| s.status == RunStatus::Succeeded);
    if let Some(r) = rehearsal {
        r.stop().await?;
    }
    Ok(CampaignReport {
        status: if all_ran && short_of_target.is_empty() {
            "succeeded"
        } else {
            "stopped"
        },
        inventory: options.inventory.display().to_string(),
        target: options.target,
        stages,
        servers,
        short_of_target,
        replan_refused,
        db: options.db.display().to_string(),
    })
}

/// Every simulated server's releases, as its host reports them.
fn releases(r: &Rehearsal) -> anyhow::Result<Vec<ServerRelease>> {
    let mut out = Vec::new();
    for s in &r.dc.servers {
        let st = s.host.read()?;
        out.push(ServerRelease {
            name: s.description.name.clone(),
            version: st.product_version.clone(),
            windows: st.windows.clone(),
            sql_server: st.sql_server.clone(),
        });
    }
    Ok(out)
}

/// The simulated estate as typed releases, in inventory order; `None` when a host has no
/// Connected Backup version (a Setup stopped half-way).
fn states(r: &Rehearsal, inventory: &Inventory) -> anyhow::Result<Option<Vec<ServerState>>> {
    let found = releases(r)?;
    let mut out = Vec::new();
    for s in &inventory.servers {
        let Some(f) = found.iter().find(|f| f.name.eq_ignore_ascii_case(&s.name)) else {
            anyhow::bail!("the simulated Data Center has no server {}", s.name);
        };
        let Some(version) = f.version.as_deref() else {
            return Ok(None);
        };
        let version: Version = version
            .parse()
            .map_err(|e: String| anyhow!("{}: {e}", s.name))?;
        let windows: WindowsVersion = release(&f.windows)
            .with_context(|| format!("{} reports Windows Server {}", s.name, f.windows))?;
        let sql_server: Option<SqlServerVersion> = match &f.sql_server {
            Some(q) => {
                Some(release(q).with_context(|| format!("{} reports SQL Server {q}", s.name))?)
            }
            None => None,
        };
        out.push(ServerState {
            name: s.name.clone(),
            version,
            windows,
            sql_server,
        });
    }
    Ok(Some(out))
}

/// The inventory with the releases the simulated hosts report.
fn estate_found(r: &Rehearsal, inventory: &Inventory) -> anyhow::Result<Inventory> {
    match states(r, inventory)? {
        Some(estate) => Ok(project(inventory, &estate)),
        None => Err(anyhow!(
            "a simulated host reports no Connected Backup version after the stage"
        )),
    }
}

/// A release as the inventory spells it (`2012 R2`, `2014 SP2`).
fn release<T: serde::de::DeserializeOwned>(s: &str) -> anyhow::Result<T> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|e| anyhow!("not a release the guide names: {e}"))
}

/// Writes `inv` in the inventory file format, for the next stage's plan to read.
fn write_inventory(inv: &Inventory, file: &Path) -> anyhow::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = toml::to_string(inv).context("the estate as found cannot be written as TOML")?;
    std::fs::write(file, text).with_context(|| format!("cannot write {}", file.display()))
}
