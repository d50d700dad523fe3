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
use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::queries::RunRecord;
use super::transitions::{check_new_run, NewRun};
use super::{EngineError, Result, Store, WriteTx};
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

fn parse<T: for<'de> Deserialize<'de>>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| EngineError::Invalid(format!("stored campaign {what} does not parse: {e}")))
}

fn campaign_from_row(r: &SqliteRow) -> Result<CampaignRecord> {
    Ok(CampaignRecord {
        id: r.try_get("id")?,
        data_center: r.try_get("data_center")?,
        target: parse("target", r.try_get("target")?)?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        state: r.try_get("state")?,
    })
}

fn stage_from_row(r: &SqliteRow) -> Result<StageRecord> {
    let actual: Option<String> = r.try_get("actual_after")?;
    let status: Option<String> = r.try_get("run_status")?;
    Ok(StageRecord {
        ordinal: r.try_get("ordinal")?,
        plan: NewStage {
            runbook: r.try_get("runbook")?,
            params: parse("params", r.try_get("params")?)?,
            servers: parse("servers", r.try_get("servers")?)?,
            reason: r.try_get("reason")?,
            section: r.try_get("section")?,
            estimate_secs: u64::try_from(r.try_get::<i64, _>("estimate_secs")?).unwrap_or(0),
            estate_after: parse("estate_after", r.try_get("estate_after")?)?,
        },
        run_id: r.try_get("run_id")?,
        run_status: status.as_deref().and_then(RunStatus::parse),
        actual_after: actual
            .as_deref()
            .map(|a| parse("actual_after", a))
            .transpose()?,
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
async fn stages_before(
    conn: &mut SqliteConnection,
    campaign: &str,
    ordinal: i64,
) -> Result<Vec<EarlierStage>> {
    let rows = sqlx::query(
        "SELECT s.ordinal, s.runbook, s.run_id, r.status FROM campaign_stages s
         LEFT JOIN runs r ON r.id = s.run_id
         WHERE s.campaign_id = ? AND s.ordinal < ? ORDER BY s.ordinal",
    )
    .bind(campaign)
    .bind(ordinal)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let run: Option<String> = r.try_get(2)?;
            let status: Option<String> = r.try_get(3)?;
            Ok(EarlierStage {
                ordinal: r.try_get(0)?,
                runbook: r.try_get(1)?,
                run: run.zip(status.as_deref().and_then(RunStatus::parse)),
            })
        })
        .collect()
}

impl WriteTx {
    /// The earlier stages of the campaign `run_id` is a stage of, with their runs' statuses
    /// (`None` when the run belongs to no campaign).
    async fn earlier_stages(
        &mut self,
        run_id: &str,
    ) -> Result<Option<(String, i64, Vec<EarlierStage>)>> {
        let Some(row) =
            sqlx::query("SELECT campaign_id, ordinal FROM campaign_stages WHERE run_id = ?")
                .bind(run_id)
                .fetch_optional(&mut *self.tx)
                .await?
        else {
            return Ok(None);
        };
        let campaign: String = row.try_get(0)?;
        let ordinal: i64 = row.try_get(1)?;
        let earlier = stages_before(&mut self.tx, &campaign, ordinal).await?;
        Ok(Some((campaign, ordinal, earlier)))
    }

    /// Refuses to start `run_id` while an earlier stage of its campaign has not succeeded.
    pub(super) async fn check_campaign_order(&mut self, run_id: &str) -> Result<()> {
        if let Some((campaign, ordinal, earlier)) = self.earlier_stages(run_id).await? {
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
        let mut conn = self.pool.acquire().await?;
        let earlier = stages_before(&mut conn, campaign, ordinal).await?;
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
        let mut w = self.begin().await?;
        sqlx::query(
            "INSERT INTO campaigns (id, data_center, target, created_by, created_at, state)
             VALUES (?, ?, ?, ?, ?, 'open')",
        )
        .bind(&id)
        .bind(&new.data_center)
        .bind(json(&new.target)?)
        .bind(&actor.name)
        .bind(now)
        .execute(&mut *w.tx)
        .await?;
        for (i, s) in new.stages.iter().enumerate() {
            sqlx::query(
                "INSERT INTO campaign_stages (campaign_id, ordinal, runbook, params, servers, reason,
                     section, estimate_secs, estate_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&id)
            .bind(i as i64 + 1)
            .bind(&s.runbook)
            .bind(json(&s.params)?)
            .bind(json(&s.servers)?)
            .bind(&s.reason)
            .bind(&s.section)
            .bind(i64::try_from(s.estimate_secs).unwrap_or(i64::MAX))
            .bind(json(&s.estate_after)?)
            .execute(&mut *w.tx)
            .await?;
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
        .await?;
        self.commit(w).await?;
        self.campaign(&id).await.map(|c| c.campaign)
    }

    /// Every campaign, newest first; only `data_center`'s when given.
    pub async fn campaigns(&self, data_center: Option<&str>) -> Result<Vec<CampaignRecord>> {
        let rows = sqlx::query(
            "SELECT id, data_center, target, created_by, created_at, state FROM campaigns
             WHERE ?1 IS NULL OR data_center = ?1 ORDER BY created_at DESC, id",
        )
        .bind(data_center)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(campaign_from_row).collect()
    }

    /// A campaign with its stages in order and each stage's run status.
    pub async fn campaign(&self, id: &str) -> Result<CampaignDetail> {
        let row = sqlx::query(
            "SELECT id, data_center, target, created_by, created_at, state FROM campaigns WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("campaign {id}")))?;
        let campaign = campaign_from_row(&row)?;
        let stages = sqlx::query(concatcp!(
            STAGE_SELECT,
            " WHERE s.campaign_id = ? ORDER BY s.ordinal"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let stages = stages
            .iter()
            .map(stage_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(CampaignDetail { campaign, stages })
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
        let mut w = self.begin().await?;
        let current = sqlx::query(
            "SELECT s.run_id, r.status FROM campaign_stages s LEFT JOIN runs r ON r.id = s.run_id
             WHERE s.campaign_id = ? AND s.ordinal = ?",
        )
        .bind(campaign)
        .bind(ordinal)
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("stage {ordinal} of campaign {campaign}")))?;
        let (run_id, status): (Option<String>, Option<String>) =
            (current.try_get(0)?, current.try_get(1)?);
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
        let earlier = stages_before(&mut w.tx, campaign, ordinal).await?;
        policy::campaign_order(campaign, ordinal, &earlier)?;
        let run = w.insert_run(&new.run, actor, now).await?;
        sqlx::query(
            "UPDATE campaign_stages SET run_id = ?, params = ?, servers = ?
             WHERE campaign_id = ? AND ordinal = ?",
        )
        .bind(&run.id)
        .bind(json(&new.run.plan.params)?)
        .bind(json(&new.servers)?)
        .bind(campaign)
        .bind(ordinal)
        .execute(&mut *w.tx)
        .await?;
        if ordinal > 1 {
            sqlx::query(
                "UPDATE campaign_stages SET actual_after = ? WHERE campaign_id = ? AND ordinal = ?",
            )
            .bind(json(&new.found)?)
            .bind(campaign)
            .bind(ordinal - 1)
            .execute(&mut *w.tx)
            .await?;
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
        )
        .await?;
        self.commit(w).await?;
        Ok(run)
    }

    /// Marks the campaign `done` once every stage's run has succeeded (compare-and-set: only an
    /// `open` campaign changes), with one `campaign.done` event. Returns whether it changed now.
    /// The engine does this itself in the transaction that completes a stage's run
    /// ([`WriteTx::close_campaign_of_run`]); this door is for a campaign recorded before that.
    pub async fn close_campaign_if_done(&self, id: &str, now: Millis) -> Result<bool> {
        let mut w = self.begin().await?;
        let done = w.close_campaign(id, now).await?;
        if done {
            self.commit(w).await?;
        }
        Ok(done)
    }
}

impl WriteTx {
    /// In the transaction that completes `run_id`: closes its campaign when this was the last
    /// stage to succeed, so "done" is committed with the run's success, whoever settled it.
    pub(super) async fn close_campaign_of_run(&mut self, run_id: &str, now: Millis) -> Result<()> {
        let campaign: Option<String> =
            sqlx::query_scalar("SELECT campaign_id FROM campaign_stages WHERE run_id = ?")
                .bind(run_id)
                .fetch_optional(&mut *self.tx)
                .await?;
        if let Some(campaign) = campaign {
            self.close_campaign(&campaign, now).await?;
        }
        Ok(())
    }

    async fn close_campaign(&mut self, id: &str, now: Millis) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE campaigns SET state = 'done' WHERE id = ?1 AND state = 'open'
             AND NOT EXISTS (SELECT 1 FROM campaign_stages s LEFT JOIN runs r ON r.id = s.run_id
                 WHERE s.campaign_id = ?1 AND (r.status IS NULL OR r.status != 'succeeded'))",
        )
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.append(
            None,
            None,
            machine::ENGINE_ACTOR,
            now,
            "campaign.done",
            serde_json::json!({ "campaign": id }),
        )
        .await?;
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
