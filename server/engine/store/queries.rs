//! Reading runs, steps and events: the rows as typed records, for the driver and the web layer.

use std::collections::BTreeMap;

use const_format::concatcp;
use rusqlite::{Connection, Row};
use serde::Serialize;

use super::{EngineError, Result, Store};
use crate::engine::audit::AuditEvent;
use crate::engine::machine::{Millis, RunState, RunStatus, StepState, StepStatus};
use crate::knowledge::plan::{Plan, PlannedStep};

/// A run as stored (without its plan; see [`Store::plan`]).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunRecord {
    pub id: String,
    pub status: RunStatus,
    /// Compare-and-set guard; bumped by every run transition.
    pub version: i64,
    pub requester: String,
    pub change_ticket: String,
    pub window_start: Option<Millis>,
    pub window_end: Option<Millis>,
    pub runbook: String,
    pub inventory: String,
    pub params: BTreeMap<String, String>,
    /// The run's engine state (approvals, preflight, window, …).
    #[schema(value_type = Object)]
    pub state: RunState,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A step as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StepRecord {
    pub run_id: String,
    pub id: String,
    pub seq: i64,
    /// The planned step (`knowledge::plan::PlannedStep`).
    #[schema(value_type = Object)]
    pub spec: PlannedStep,
    /// For an undo step, the plan step it reverses.
    pub undo_of: Option<String>,
    /// The step's state word (`engine::machine::StepStatus`).
    #[schema(value_type = String)]
    pub status: StepStatus,
    pub attempt: u32,
    /// The step's engine state (claims, approvals, results, evidence).
    #[schema(value_type = Object)]
    pub state: StepState,
    /// What an approver must send back with an approval (content-bound approvals).
    pub content_hash: String,
    pub updated_at: Millis,
}

/// A step's id, status and last error (see [`Store::step_statuses`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepStatusRow {
    pub id: String,
    pub status: StepStatus,
    pub last_error: Option<String>,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Audit(format!("stored {what} cannot be read: {e}"))
}

const RUN_COLUMNS: &str =
    "id, status, version, requester, change_ticket, window_start, window_end, \
     runbook, inventory, params, state, created_at, updated_at";
const STEP_COLUMNS: &str = "s.run_id, s.id, s.seq, x.spec, s.undo_of, s.status, s.attempt, \
     s.state, s.content_hash, s.updated_at";
/// A step's row and its spec, kept in a table of its own so a transition does not rewrite it
/// (migration `20261207500001`).
const STEP_FROM: &str = "steps s JOIN step_specs x ON x.run_id = s.run_id AND x.id = s.id";

pub(super) fn run_from_row(row: &Row<'_>) -> Result<RunRecord> {
    let status: String = row.get("status")?;
    let status = RunStatus::parse(&status).ok_or_else(|| corrupt("run status", &status))?;
    let state: String = row.get("state")?;
    let mut state: RunState = serde_json::from_str(&state).map_err(|e| corrupt("run state", e))?;
    state.status = status;
    let params: String = row.get("params")?;
    Ok(RunRecord {
        id: row.get("id")?,
        status,
        version: row.get("version")?,
        requester: row.get("requester")?,
        change_ticket: row.get("change_ticket")?,
        window_start: row.get("window_start")?,
        window_end: row.get("window_end")?,
        runbook: row.get("runbook")?,
        inventory: row.get("inventory")?,
        params: serde_json::from_str(&params).map_err(|e| corrupt("run params", e))?,
        state,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

pub(super) fn step_from_row(row: &Row<'_>) -> Result<StepRecord> {
    let status: String = row.get("status")?;
    let status = StepStatus::parse(&status).ok_or_else(|| corrupt("step status", &status))?;
    let attempt: i64 = row.get("attempt")?;
    let attempt = u32::try_from(attempt).map_err(|e| corrupt("step attempt", e))?;
    let state: String = row.get("state")?;
    let mut state: StepState =
        serde_json::from_str(&state).map_err(|e| corrupt("step state", e))?;
    state.status = status;
    state.attempt = attempt;
    let spec: String = row.get("spec")?;
    Ok(StepRecord {
        run_id: row.get("run_id")?,
        id: row.get("id")?,
        seq: row.get("seq")?,
        spec: serde_json::from_str(&spec).map_err(|e| corrupt("step spec", e))?,
        undo_of: row.get("undo_of")?,
        status,
        attempt,
        state,
        content_hash: row.get("content_hash")?,
        updated_at: row.get("updated_at")?,
    })
}

/// The columns [`event_from_row`] reads.
pub(super) const EVENT_COLUMNS: &str =
    "id, run_id, step_id, actor, at, kind, payload, prev_hash, hash, sig";

pub(super) fn event_from_row(row: &Row<'_>) -> Result<AuditEvent> {
    let kind: String = row.get("kind")?;
    let payload: String = row.get("payload")?;
    Ok(AuditEvent {
        id: row.get("id")?,
        run_id: row.get("run_id")?,
        step_id: row.get("step_id")?,
        actor: row.get("actor")?,
        at: row.get("at")?,
        kind: kind.into(),
        payload: serde_json::from_str(&payload).map_err(|e| corrupt("event payload", e))?,
        prev_hash: row.get("prev_hash")?,
        hash: row.get("hash")?,
        sig: row.get("sig")?,
    })
}

/// Every row `sql` answers for `params`, each through `decode`.
pub(super) fn all<T>(
    db: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut st = db.prepare_cached(sql)?;
    let mut rows = st.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// The first row `sql` answers for `params`, through `decode`; `None` when there is none.
pub(super) fn first<T>(
    db: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut st = db.prepare_cached(sql)?;
    let mut rows = st.query(params)?;
    match rows.next()? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

pub(super) fn load_run(db: &Connection, run_id: &str) -> Result<RunRecord> {
    first(
        db,
        concatcp!("SELECT ", RUN_COLUMNS, " FROM runs WHERE id = ?"),
        [run_id],
        run_from_row,
    )?
    .ok_or_else(|| EngineError::NotFound(format!("run {run_id}")))
}

/// One step with its spec, by key.
pub(super) const LOAD_STEP: &str = concatcp!(
    "SELECT ",
    STEP_COLUMNS,
    " FROM ",
    STEP_FROM,
    " WHERE s.run_id = ? AND s.id = ?"
);

pub(super) fn load_step(db: &Connection, run_id: &str, step_id: &str) -> Result<StepRecord> {
    first(db, LOAD_STEP, [run_id, step_id], step_from_row)?
        .ok_or_else(|| EngineError::NotFound(format!("step {step_id} of run {run_id}")))
}

pub(super) fn load_steps(db: &Connection, run_id: &str) -> Result<Vec<StepRecord>> {
    all(
        db,
        concatcp!(
            "SELECT ",
            STEP_COLUMNS,
            " FROM ",
            STEP_FROM,
            " WHERE s.run_id = ? ORDER BY s.seq"
        ),
        [run_id],
        step_from_row,
    )
}

/// The run's steps in one of `statuses`, in plan order: the driver's passes look only at the
/// steps that can need it, not at every step of a long plan (index `steps_claim_scan`).
pub(super) fn load_steps_in(
    db: &Connection,
    run_id: &str,
    statuses: &[StepStatus],
) -> Result<Vec<StepRecord>> {
    let marks = vec!["?"; statuses.len()].join(", ");
    // Dynamic only in the number of `?` marks; the statuses are bound.
    let sql = format!(
        "SELECT {STEP_COLUMNS} FROM {STEP_FROM} WHERE s.run_id = ? AND s.status IN ({marks}) \
         ORDER BY s.seq"
    );
    let mut params: Vec<&str> = vec![run_id];
    params.extend(statuses.iter().map(|s| s.as_str()));
    all(db, &sql, rusqlite::params_from_iter(params), step_from_row)
}

impl Store {
    /// Every run, newest first.
    pub async fn runs(&self) -> Result<Vec<RunRecord>> {
        self.read(|db| {
            all(
                db,
                concatcp!(
                    "SELECT ",
                    RUN_COLUMNS,
                    " FROM runs ORDER BY created_at DESC, id"
                ),
                [],
                run_from_row,
            )
        })
        .await
    }

    /// Runs the driver works on or must reconcile: running, undoing, or aborted with steps in flight.
    pub async fn active_run_ids(&self) -> Result<Vec<String>> {
        self.read(|db| {
            all(
                db,
                "SELECT id FROM runs WHERE status IN ('running', 'undoing')
                 OR (status IN ('aborted', 'paused', 'failed') AND EXISTS (SELECT 1 FROM steps s
                     WHERE s.run_id = runs.id AND s.status IN ('dispatched', 'running', 'verifying')))
                 ORDER BY created_at, id",
                [],
                |r| Ok(r.get(0)?),
            )
        })
        .await
    }

    pub async fn run(&self, run_id: &str) -> Result<RunRecord> {
        self.read(|db| load_run(db, run_id)).await
    }

    /// The plan the run was created with.
    pub async fn plan(&self, run_id: &str) -> Result<Plan> {
        let plan: String = self
            .read(|db| {
                first(
                    db,
                    "SELECT plan FROM run_plans WHERE run_id = ?",
                    [run_id],
                    |r| Ok(r.get(0)?),
                )
            })
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("run {run_id}")))?;
        serde_json::from_str(&plan).map_err(|e| corrupt("plan", e))
    }

    /// The run's steps in plan order (undo steps last).
    pub async fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        self.read(|db| {
            load_run(db, run_id)?;
            load_steps(db, run_id)
        })
        .await
    }

    /// Every step's id, status and last error, in plan order, without reading specs or states
    /// into Rust: for loops that watch a long run (a 200-server plan has 1,500 steps).
    pub async fn step_statuses(&self, run_id: &str) -> Result<Vec<StepStatusRow>> {
        self.read(|db| {
            all(
                db,
                // A pending step has never run, so it has no error: its state is not read.
                "SELECT id, status, CASE WHEN status = 'pending' THEN NULL
                     ELSE json_extract(state, '$.last_error') END AS last_error
                 FROM steps WHERE run_id = ? ORDER BY seq",
                [run_id],
                |r| {
                    let status: String = r.get("status")?;
                    Ok(StepStatusRow {
                        id: r.get("id")?,
                        status: StepStatus::parse(&status)
                            .ok_or_else(|| corrupt("step status", &status))?,
                        last_error: r.get("last_error")?,
                    })
                },
            )
        })
        .await
    }

    /// The run's steps in one of `statuses`, in plan order.
    pub async fn steps_in(&self, run_id: &str, statuses: &[StepStatus]) -> Result<Vec<StepRecord>> {
        self.read(|db| load_steps_in(db, run_id, statuses)).await
    }

    /// The steps of a run the driver may have to act on: in flight, in doubt, or at a gate.
    pub async fn steps_for_driver(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        self.steps_in(
            run_id,
            &[
                StepStatus::Dispatched,
                StepStatus::Running,
                StepStatus::Verifying,
                StepStatus::OutcomeUnknown,
                StepStatus::AwaitingApproval,
            ],
        )
        .await
    }

    pub async fn step(&self, run_id: &str, step_id: &str) -> Result<StepRecord> {
        self.read(|db| load_step(db, run_id, step_id)).await
    }

    /// Events with id greater than `after_id` (0 for all), oldest first, at most `limit`;
    /// only one run's when `run_id` is given. SSE replays from here on Last-Event-ID.
    pub async fn events_after(
        &self,
        after_id: i64,
        run_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>> {
        self.read(|db| {
            all(
                db,
                concatcp!(
                    "SELECT ",
                    EVENT_COLUMNS,
                    " FROM events WHERE id > ?1 AND (?2 IS NULL OR run_id = ?2) ORDER BY id LIMIT ?3"
                ),
                rusqlite::params![after_id, run_id, i64::from(limit)],
                event_from_row,
            )
        })
        .await
    }

    /// The whole log in id order (verification and export).
    pub async fn all_events(&self) -> Result<Vec<AuditEvent>> {
        self.read(|db| {
            all(
                db,
                concatcp!("SELECT ", EVENT_COLUMNS, " FROM events ORDER BY id"),
                [],
                event_from_row,
            )
        })
        .await
    }
}

/// Reads the head file. The file is overwritten in place while a server commits; a read that
/// lands in the middle of a write sees a mixture that does not parse, so an unreadable record is
/// read again a few times before it is reported.
pub(super) async fn read_head_settled(
    path: &std::path::Path,
) -> Result<Option<crate::engine::audit::ChainHead>> {
    use crate::engine::audit;
    let mut tries = 0;
    loop {
        match audit::read_head(path) {
            Ok(head) => return Ok(head),
            Err(_) if tries < 3 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err(e) => return Err(EngineError::Audit(e.to_string())),
        }
    }
}
