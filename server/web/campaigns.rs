//! Campaigns in the dashboard (issue 21, item 2): a campaign is created from a Data Center and a
//! target, planned by the knowledge layer ([`crate::knowledge::campaign::plan`]) against the
//! estate as found, and kept by the store; each stage becomes a run with its own window,
//! approvals and change record when an operator asks for it.
//!
//! A stage's run is re-planned when it is created: the planner runs again on the estate as found
//! then (the stored inventory with every version the agents' fresh facts contradict replaced,
//! [`estate_found`]). If stage k is no longer the next stage the estate needs, the run is refused
//! with the planner's reason; otherwise the re-planned stage's parameters and servers are used.
//! That the stages start in order is not checked here but by the engine, whatever door is used
//! (`engine::store::campaigns`). The pages are in `pages.rs`, the JSON API in `api.rs`.

pub mod api;
pub mod guide;
pub mod pages;

use std::collections::BTreeMap;

use crate::engine::machine::RunEvent;
use crate::engine::store::campaigns::{
    CampaignRecord, CampaignTarget, NewCampaign, NewStage, ServerVersions, StageRecord, StageRun,
};
use crate::engine::store::NewRun;
use crate::knowledge::campaign::{self, ServerState, Stage, Target};
use crate::knowledge::expand::expand;
use crate::knowledge::inventory::Inventory;
use crate::web::auth::CurrentUser;
use crate::web::pages::newrun::ticket_and_window;
use crate::web::pages::runbooks::runbook;
use crate::web::{datacenters, estate, AppError, Core, Site};

/// What a person asks for, as typed (re-shown on an error): the Data Center and each part of
/// the target, empty for "leave as it is".
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct CampaignRequest {
    #[serde(default)]
    pub datacenter: String,
    #[serde(default)]
    pub connected: String,
    #[serde(default)]
    pub windows: String,
    #[serde(default)]
    pub sql: String,
}

impl CampaignRequest {
    /// The target items the planner parses (`connected=8.11`, …), the empty parts left out.
    fn items(&self) -> Vec<String> {
        [
            ("connected", &self.connected),
            ("windows", &self.windows),
            ("sql", &self.sql),
        ]
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", v.trim()))
        .collect()
    }
}

/// What an operator gives to create a stage's run: the change ticket and the window.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct StageRunRequest {
    #[serde(default)]
    pub change_ticket: String,
    #[serde(default)]
    pub window_start: Option<String>,
    #[serde(default)]
    pub window_end: Option<String>,
}

fn versions(estate: &[ServerState]) -> Vec<ServerVersions> {
    estate
        .iter()
        .map(|s| ServerVersions {
            name: s.name.clone(),
            version: s.version.to_string(),
            windows: Some(s.windows.as_str().to_string()),
            sql_server: s.sql_server.map(|q| q.as_str().to_string()),
        })
        .collect()
}

fn stored_stage(s: &Stage) -> NewStage {
    NewStage {
        runbook: s.runbook.clone(),
        params: s.params.clone(),
        servers: s.servers.clone(),
        reason: s.reason.clone(),
        section: s.section.clone(),
        estimate_secs: s.estimate_secs,
        estate_after: versions(&s.estate_after),
    }
}

fn stored_target(t: &Target) -> CampaignTarget {
    CampaignTarget {
        connected: t.connected.as_ref().map(|v| v.to_string()),
        windows: t.windows.map(|w| w.as_str().to_string()),
        sql_server: t.sql_server.map(|q| q.as_str().to_string()),
    }
}

/// The stored target as the planner takes it again (it was parsed when stored).
fn planner_target(t: &CampaignTarget) -> Result<Target, AppError> {
    let items: Vec<String> = [
        ("connected", &t.connected),
        ("windows", &t.windows),
        ("sql", &t.sql_server),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect();
    campaign::parse_target(&items)
        .map_err(|e| AppError::Conflict(format!("the campaign's stored target: {e}")))
}

/// The Data Center's estate as found: its stored inventory with each version (Connected,
/// Windows Server, SQL Server) that an agent's fresh facts contradict replaced by the reported
/// one; a server without fresh facts keeps what the inventory says.
pub async fn estate_found(core: &Core, site: &Site, dc: &str) -> Result<Inventory, AppError> {
    let stored = datacenters::current(&core.pool, dc)
        .await?
        .ok_or_else(|| AppError::BadRequest(format!("datacenter: no Data Center named `{dc}`")))?;
    let inv = stored.inventory().map_err(|e| {
        AppError::Conflict(format!(
            "datacenter: the stored inventory no longer parses: {e}"
        ))
    })?;
    let facts = crate::executors::agent::registry::all_facts(&core.pool).await?;
    let changes = estate::changes(&inv, &facts, core.clock.now_secs(), site.facts_stale_secs);
    if changes.is_empty() {
        return Ok(inv);
    }
    let mut toml = stored.toml.clone();
    for c in &changes {
        // A value the inventory cannot hold (the block or the field) leaves the record as it was.
        if let Some(next) = estate::set_server_field(&toml, &c.server, c.field, &c.new) {
            toml = next;
        }
    }
    // Facts a newer agent words differently may not parse: the record as stored is then the
    // estate, and the stage's preflight reads the facts again anyway.
    Ok(Inventory::from_toml(&toml, &stored.name).unwrap_or(inv))
}

/// Plans and records a campaign for `req`; the planner's refusal names its rule (422).
pub async fn create(
    core: &Core,
    site: &Site,
    me: &CurrentUser,
    req: &CampaignRequest,
) -> Result<CampaignRecord, AppError> {
    let dc = req.datacenter.trim();
    if dc.is_empty() {
        return Err(AppError::BadRequest(
            "datacenter: choose a Data Center".into(),
        ));
    }
    let target = campaign::parse_target(&req.items())
        .map_err(|e| AppError::BadRequest(format!("target: {e}")))?;
    let inv = estate_found(core, site, dc).await?;
    let planned =
        campaign::plan(&inv, &target).map_err(|e| AppError::BadRequest(format!("target: {e}")))?;
    let new = NewCampaign {
        data_center: inv.name.clone(),
        target: stored_target(&target),
        stages: planned.stages.iter().map(stored_stage).collect(),
    };
    let record = core
        .store
        .create_campaign(new, &me.actor(), core.clock.now())
        .await?;
    tracing::info!(campaign = %record.id, actor = %me.name(), stages = planned.stages.len(), "campaign planned");
    Ok(record)
}

/// Whether the re-planned first stage is the stored stage `stage` (same runbook and parameters).
fn same_stage(stage: &StageRecord, next: &Stage) -> bool {
    stage.plan.runbook == next.runbook && stage.plan.params == next.params
}

/// Re-plans stage `ordinal` of `campaign_id` against the estate as found, creates its run through
/// the engine (which refuses it unless every earlier stage succeeded) and submits it for start
/// approval, like every run. Returns the run's id.
pub async fn create_stage_run(
    core: &Core,
    site: &Site,
    me: &CurrentUser,
    campaign_id: &str,
    ordinal: i64,
    req: &StageRunRequest,
) -> Result<String, AppError> {
    let ticket = req.change_ticket.trim();
    let (window_start, window_end) = ticket_and_window(
        ticket,
        req.window_start.as_deref().unwrap_or("").trim(),
        req.window_end.as_deref().unwrap_or("").trim(),
    )?;
    let detail = core.store.campaign(campaign_id).await?;
    let stage = detail
        .stages
        .iter()
        .find(|s| s.ordinal == ordinal)
        .ok_or_else(|| {
            AppError::NotFound(format!("campaign {campaign_id} has no stage {ordinal}"))
        })?;
    // The engine's order first: "stage 1 has not succeeded" says more than a re-plan would.
    core.store.check_stage_order(campaign_id, ordinal).await?;
    let target = planner_target(&detail.campaign.target)?;
    let inv = estate_found(core, site, &detail.campaign.data_center).await?;
    let replanned = campaign::plan(&inv, &target).map_err(|e| {
        AppError::Conflict(format!(
            "stage {ordinal}: the estate as found cannot be planned to the target any more: {e}"
        ))
    })?;
    let next = replanned.stages.first().ok_or_else(|| {
        AppError::Conflict(format!(
            "stage {ordinal} is no longer needed: the estate as found is already at the target"
        ))
    })?;
    if !same_stage(stage, next) {
        return Err(AppError::Conflict(format!(
            "stage {ordinal} ({}) is no longer the next stage the estate needs: as found, {} comes first — {}",
            stage_label(&stage.plan.runbook, &stage.plan.params),
            stage_label(&next.runbook, &next.params),
            next.reason
        )));
    }
    let rb = runbook(&next.runbook)
        .map_err(|_| AppError::Conflict(format!("runbook: no runbook `{}`", next.runbook)))?;
    let mut plan =
        expand(rb, &inv, &next.params).map_err(|e| AppError::BadRequest(format!("plan: {e}")))?;
    if site.simulated {
        plan.for_simulated_site();
    }
    let actor = me.actor();
    let now = core.clock.now();
    let run = core
        .store
        .create_stage_run(
            campaign_id,
            ordinal,
            StageRun {
                run: NewRun {
                    change_ticket: ticket.to_string(),
                    window_start,
                    window_end,
                    plan,
                },
                servers: next.servers.clone(),
                found: versions(&campaign::estate_of(&inv)),
            },
            &actor,
            now,
        )
        .await?;
    core.store
        .apply_run_event(&run.id, &RunEvent::Submit { actor }, now)
        .await?;
    core.wake();
    tracing::info!(campaign = %campaign_id, stage = ordinal, run = %run.id, actor = %me.name(), "stage run created and submitted for start approval");
    Ok(run.id)
}

/// A stage in a few words: the runbook's title and the release it goes to, e.g. "Upgrade SQL
/// Server → 2016" (the other parameters, such as the backup folder, are on the run's page).
pub fn stage_label(runbook_id: &str, params: &BTreeMap<String, String>) -> String {
    let title = runbook(runbook_id)
        .map(|r| r.title.clone())
        .unwrap_or_else(|_| runbook_id.to_string());
    match params.get("target") {
        Some(t) => format!("{title} → {t}"),
        None => title,
    }
}
