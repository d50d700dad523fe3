//! Campaigns (issue 21): a Data Center, a target and the ordered stages the planner chose, each
//! stage one runbook whose run is created later, re-planned against the estate as found.
//!
//! Two rules live here, inside the transactions that could break them, so every door (page, API,
//! CLI) meets them: a stage's run is created only once every earlier stage's run has succeeded,
//! and started (its start approval) only then too ([`WriteTx::check_campaign_order`], called by
//! `apply_run_event`) — an earlier stage can be undone between the two. The rule's words are in
//! [`crate::engine::policy::campaign_order`].

use std::collections::BTreeMap;

use const_format::concatcp;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::queries::{all, first, RunRecord};
use super::transitions::{check_new_run, NewRun};
use super::{raw, EngineError, Result, Store, WriteTx};
use crate::engine::machine::{self, Actor, Millis, Refusal, RunStatus};
use crate::engine::policy::{self, EarlierStage};

/// Most stages a campaign may hold (the guide's procedures, one release at a time, need far
/// fewer; the bound keeps a hostile request's cost small).
pub const MAX_STAGES: usize = 64;

/// One server's versions, as the planner projects them or the agents report them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServerVersions {
    pub name: String,
    /// The Connected version.
    pub version: String,
    pub windows: Option<String>,
    pub sql_server: Option<String>,
}

/// A campaign's target: each part left out (`None`) is not changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CampaignTarget {
    pub connected: Option<String>,
    pub windows: Option<String>,
    pub sql_server: Option<String>,
}

/// A stage as planned: what the planner's `Stage` says, in the store's own words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewStage {
    pub runbook: String,
    pub params: BTreeMap<String, String>,
    pub servers: Vec<String>,
    pub reason: String,
    pub section: String,
    pub estimate_secs: u64,
    pub estate_after: Vec<ServerVersions>,
}

/// What an operator asks for: a campaign on `data_center` reaching `target` by `stages`.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub data_center: String,
    pub target: CampaignTarget,
    pub stages: Vec<NewStage>,
}

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CampaignRecord {
    pub id: String,
    pub data_center: String,
    pub target: CampaignTarget,
    pub created_by: String,
    /// Milliseconds since the epoch.
    #[schema(value_type = i64)]
    pub created_at: Millis,
    /// `open`, or `done` once every stage's run has succeeded.
    pub state: String,
}

/// A stage as stored, with its run's status when it has one.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StageRecord {
    pub ordinal: i64,
    #[serde(flatten)]
    pub plan: NewStage,
    pub run_id: Option<String>,
    pub run_status: Option<RunStatus>,
    /// The estate found when the next stage's run was created: what this stage left behind.
    pub actual_after: Option<Vec<ServerVersions>>,
}

/// A campaign with its stages in order.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CampaignDetail {
    pub campaign: CampaignRecord,
    pub stages: Vec<StageRecord>,
}

impl CampaignDetail {
    /// The first stage whose run has not succeeded: the one an operator may work on now.
    pub fn next_stage(&self) -> Option<&StageRecord> {
        self.stages
            .iter()
            .find(|s| s.run_status != Some(RunStatus::Succeeded))
    }
}

fn json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| EngineError::Invalid(e.to_string()))
}

fn parse<T: for<'de> Deserialize<'de>>(what: &str, text: String) -> Result<T> {
    serde_json::from_str(&text)
        .map_err(|e| EngineError::Invalid(format!("stored campaign {what} does not parse: {e}")))
}

fn campaign_from_row(r: &Row<'_>) -> Result<CampaignRecord> {
    Ok(CampaignRecord {
        id: r.get("id")?,
        data_center: r.get("data_center")?,
        target: parse("target", r.get("target")?)?,
        created_by: r.get("created_by")?,
        created_at: r.get("created_at")?,
        state: r.get("state")?,
    })
}

fn stage_from_row(r: &Row<'_>) -> Result<StageRecord> {
    let actual: Option<String> = r.get("actual_after")?;
    let status: Option<String> = r.get("run_status")?;
    Ok(StageRecord {
        ordinal: r.get("ordinal")?,
        plan: NewStage {
            runbook: r.get("runbook")?,
            params: parse("params", r.get("params")?)?,
            servers: parse("servers", r.get("servers")?)?,
            reason: r.get("reason")?,
            section: r.get("section")?,
            estimate_secs: u64::try_from(r.get::<_, i64>("estimate_secs")?).unwrap_or(0),
            estate_after: parse("estate_after", r.get("estate_after")?)?,
        },
        run_id: r.get("run_id")?,
        run_status: status.as_deref().and_then(RunStatus::parse),
        actual_after: actual.map(|a| parse("actual_after", a)).transpose()?,
    })
}

const STAGE_SELECT: &str = "SELECT s.ordinal, s.runbook, s.params, s.servers, s.reason, s.section,
    s.estimate_secs, s.estate_after, s.run_id, s.actual_after, r.status AS run_status
    FROM campaign_stages s LEFT JOIN runs r ON r.id = s.run_id";

fn check_new_campaign(new: &NewCampaign, actor: &Actor) -> Result<()> {
    if !actor.has_role(machine::Role::Operator) {
        return Err(Refusal::MissingRole {
            actor: actor.name.clone(),
            role: machine::Role::Operator,
        }
        .into());
    }
    if new.data_center.trim().is_empty() {
        return Err(EngineError::Invalid(
            "datacenter: choose a Data Center".into(),
        ));
    }
    if new.stages.is_empty() {
        return Err(EngineError::Invalid(
            "stages: the estate is already at the target; there is nothing to plan".into(),
        ));
    }
    if new.stages.len() > MAX_STAGES {
        return Err(EngineError::Invalid(format!(
            "stages: {} stages, at most {MAX_STAGES}",
            new.stages.len()
        )));
    }
    Ok(())
}

/// The stages of `campaign` before `ordinal`, with their runs' statuses.
fn stages_before(db: &Connection, campaign: &str, ordinal: i64) -> Result<Vec<EarlierStage>> {
    all(
        db,
        "SELECT s.ordinal, s.runbook, s.run_id, r.status FROM campaign_stages s
         LEFT JOIN runs r ON r.id = s.run_id
         WHERE s.campaign_id = ? AND s.ordinal < ? ORDER BY s.ordinal",
        params![campaign, ordinal],
        |r| {
            let run: Option<String> = r.get(2)?;
            let status: Option<String> = r.get(3)?;
            Ok(EarlierStage {
                ordinal: r.get(0)?,
                runbook: r.get(1)?,
                run: run.zip(status.as_deref().and_then(RunStatus::parse)),
            })
        },
    )
}

impl WriteTx<'_> {
    /// The earlier stages of the campaign `run_id` is a stage of, with their runs' statuses
    /// (`None` when the run belongs to no campaign).
    fn earlier_stages(&mut self, run_id: &str) -> Result<Option<(String, i64, Vec<EarlierStage>)>> {
        let Some((campaign, ordinal)) = self
            .db
            .prepare_cached("SELECT campaign_id, ordinal FROM campaign_stages WHERE run_id = ?")?
            .query_row([run_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()?
        else {
            return Ok(None);
        };
        let earlier = stages_before(self.db, &campaign, ordinal)?;
        Ok(Some((campaign, ordinal, earlier)))
    }

    /// Refuses to start `run_id` while an earlier stage of its campaign has not succeeded.
    pub(super) fn check_campaign_order(&mut self, run_id: &str) -> Result<()> {
        if let Some((campaign, ordinal, earlier)) = self.earlier_stages(run_id)? {
            policy::campaign_order(&campaign, ordinal, &earlier)?;
        }
        Ok(())
    }
}

impl Store {
    /// The order check alone, on what is committed now: lets a caller refuse with the engine's
    /// words before doing expensive work (re-planning). [`Store::create_stage_run`] checks again
    /// in its own transaction.
    pub async fn check_stage_order(&self, campaign: &str, ordinal: i64) -> Result<()> {
        let earlier = self.read(|db| stages_before(db, campaign, ordinal)).await?;
        Ok(policy::campaign_order(campaign, ordinal, &earlier)?)
    }

    /// Records a planned campaign and its stages, with one `campaign.created` event.
    pub async fn create_campaign(
        &self,
        new: NewCampaign,
        actor: &Actor,
        now: Millis,
    ) -> Result<CampaignRecord> {
        check_new_campaign(&new, actor)?;
        let id = format!("c-{}", uuid::Uuid::new_v4().simple());
        self.transact(|w| {
        w.db.prepare_cached(
            "INSERT INTO campaigns (id, data_center, target, created_by, created_at, state)
             VALUES (?, ?, ?, ?, ?, 'open')",
        )?
        .execute(params![id, new.data_center, json(&new.target)?, actor.name, now])?;
        for (i, s) in new.stages.iter().enumerate() {
            w.db.prepare_cached(
                "INSERT INTO campaign_stages (campaign_id, ordinal, runbook, params, servers, reason,
                     section, estimate_secs, estate_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                id,
                i as i64 + 1,
                s.runbook,
                json(&s.params)?,
                json(&s.servers)?,
                s.reason,
                s.section,
                i64::try_from(s.estimate_secs).unwrap_or(i64::MAX),
                json(&s.estate_after)?,
            ])?;
        }
        w.append(
            None,
            None,
            &actor.name,
            now,
            "campaign.created",
            serde_json::json!({
                "campaign": id,
                "data_center": new.data_center,
                "target": new.target,
                "stages": new.stages.iter().map(|s| serde_json::json!({
                    "runbook": s.runbook, "params": s.params, "servers": s.servers,
                })).collect::<Vec<_>>(),
            }),
        )
        })
        .await?;
        self.campaign(&id).await.map(|c| c.campaign)
    }

    /// Every campaign, newest first; only `data_center`'s when given.
    pub async fn campaigns(&self, data_center: Option<&str>) -> Result<Vec<CampaignRecord>> {
        self.read(|db| {
            all(
                db,
                "SELECT id, data_center, target, created_by, created_at, state FROM campaigns
                 WHERE ?1 IS NULL OR data_center = ?1 ORDER BY created_at DESC, id",
                [data_center],
                campaign_from_row,
            )
        })
        .await
    }

    /// A campaign with its stages in order and each stage's run status.
    pub async fn campaign(&self, id: &str) -> Result<CampaignDetail> {
        self.read(|db| {
            raw::snapshot(db, || {
                let campaign = first(
                    db,
                    "SELECT id, data_center, target, created_by, created_at, state
                     FROM campaigns WHERE id = ?",
                    [id],
                    campaign_from_row,
                )?
                .ok_or_else(|| EngineError::NotFound(format!("campaign {id}")))?;
                let stages = all(
                    db,
                    concatcp!(STAGE_SELECT, " WHERE s.campaign_id = ? ORDER BY s.ordinal"),
                    [id],
                    stage_from_row,
                )?;
                Ok(CampaignDetail { campaign, stages })
            })
        })
        .await
    }

    /// Creates and links the run of stage `ordinal`, re-planned as `new` against the estate
    /// `found`, in one transaction: refused unless every earlier stage's run has succeeded and
    /// the stage has no run, or only one that ended without succeeding (failed, aborted, undone).
    /// `found` is kept as what the previous stage left behind. The run is left in `draft`.
    pub async fn create_stage_run(
        &self,
        campaign: &str,
        ordinal: i64,
        new: StageRun,
        actor: &Actor,
        now: Millis,
    ) -> Result<RunRecord> {
        check_new_run(&new.run, actor)?;
        let (run, _) = self
            .transact(|w| {
                let current: Option<(Option<String>, Option<String>)> = first(
                    w.db,
                    "SELECT s.run_id, r.status FROM campaign_stages s
                     LEFT JOIN runs r ON r.id = s.run_id
                     WHERE s.campaign_id = ? AND s.ordinal = ?",
                    params![campaign, ordinal],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let (run_id, status) = current.ok_or_else(|| {
                    EngineError::NotFound(format!("stage {ordinal} of campaign {campaign}"))
                })?;
                let status = status.as_deref().and_then(RunStatus::parse);
                if let (Some(run), Some(status)) = (&run_id, status) {
                    if !matches!(
                        status,
                        RunStatus::Failed | RunStatus::Aborted | RunStatus::Undone
                    ) {
                        return Err(EngineError::Conflict(format!(
                            "stage {ordinal} of campaign {campaign} already has run {run} ({}); open it instead",
                            status.as_str().replace('_', " ")
                        )));
                    }
                }
                let earlier = stages_before(w.db, campaign, ordinal)?;
                policy::campaign_order(campaign, ordinal, &earlier)?;
                let run = w.insert_run(&new.run, actor, now)?;
                w.db.prepare_cached(
                    "UPDATE campaign_stages SET run_id = ?, params = ?, servers = ?
                     WHERE campaign_id = ? AND ordinal = ?",
                )?
                .execute(params![
                    run.id,
                    json(&new.run.plan.params)?,
                    json(&new.servers)?,
                    campaign,
                    ordinal,
                ])?;
                if ordinal > 1 {
                    w.db.prepare_cached(
                        "UPDATE campaign_stages SET actual_after = ? WHERE campaign_id = ? AND ordinal = ?",
                    )?
                    .execute(params![json(&new.found)?, campaign, ordinal - 1])?;
                }
                w.append(
                    Some(&run.id),
                    None,
                    &actor.name,
                    now,
                    "campaign.stage_run",
                    serde_json::json!({
                        "campaign": campaign,
                        "stage": ordinal,
                        "runbook": new.run.plan.runbook,
                        "params": new.run.plan.params,
                        "servers": new.servers,
                        "replaces": run_id,
                        "estate_found": new.found,
                    }),
                )?;
                Ok(run)
            })
            .await?;
        Ok(run)
    }

    /// Marks the campaign `done` once every stage's run has succeeded (compare-and-set: only an
    /// `open` campaign changes), with one `campaign.done` event. Returns whether it changed now.
    /// The engine does this itself in the transaction that completes a stage's run
    /// ([`WriteTx::close_campaign_of_run`]); this door is for a campaign recorded before that.
    pub async fn close_campaign_if_done(&self, id: &str, now: Millis) -> Result<bool> {
        let (done, _) = self.transact(|w| w.close_campaign(id, now)).await?;
        Ok(done)
    }
}

impl WriteTx<'_> {
    /// In the transaction that completes `run_id`: closes its campaign when this was the last
    /// stage to succeed, so "done" is committed with the run's success, whoever settled it.
    pub(super) fn close_campaign_of_run(&mut self, run_id: &str, now: Millis) -> Result<()> {
        let campaign: Option<String> = self
            .db
            .prepare_cached("SELECT campaign_id FROM campaign_stages WHERE run_id = ?")?
            .query_row([run_id], |r| r.get(0))
            .optional()?;
        if let Some(campaign) = campaign {
            self.close_campaign(&campaign, now)?;
        }
        Ok(())
    }

    /// Closes an `open` campaign whose every stage's run has succeeded (a transaction that
    /// closes nothing writes nothing, and then commits nothing either).
    fn close_campaign(&mut self, id: &str, now: Millis) -> Result<bool> {
        let done = self
            .db
            .prepare_cached(
                "UPDATE campaigns SET state = 'done' WHERE id = ?1 AND state = 'open'
                 AND NOT EXISTS (SELECT 1 FROM campaign_stages s LEFT JOIN runs r ON r.id = s.run_id
                     WHERE s.campaign_id = ?1 AND (r.status IS NULL OR r.status != 'succeeded'))",
            )?
            .execute([id])?;
        if done != 1 {
            return Ok(false);
        }
        self.append(
            None,
            None,
            machine::ENGINE_ACTOR,
            now,
            "campaign.done",
            serde_json::json!({ "campaign": id }),
        )?;
        Ok(true)
    }
}

/// The run of a stage as re-planned when it is created: the run itself, the servers it
/// changes, and the estate the re-plan was made against.
#[derive(Debug, Clone)]
pub struct StageRun {
    pub run: NewRun,
    pub servers: Vec<String>,
    pub found: Vec<ServerVersions>,
}
