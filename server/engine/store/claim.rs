//! The driver's side of the store: claiming ready steps within the concurrency limits and host
//! locks, settling runs whose steps are all done or stopped, and who holds which host.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use const_format::concatcp;
use rusqlite::Connection;

use super::queries::{all, load_run, load_step, RunRecord, StepRecord};
use super::{raw, Result, Store, WriteTx};
use crate::engine::audit::AuditEvent;
use crate::engine::machine::gating;
use crate::engine::machine::{Millis, RunEvent, RunStatus, StepAction, StepEvent, StepStatus};

/// Concurrency limits the driver claims within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriveLimits {
    /// Steps of one run in flight at once.
    pub per_run: usize,
    /// Steps of one run in flight on one host at once.
    pub per_host: usize,
}

impl Default for DriveLimits {
    fn default() -> Self {
        DriveLimits {
            per_run: 4,
            per_host: 1,
        }
    }
}

/// A step the driver must act on after the claim committed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub step: StepRecord,
    pub actions: Vec<StepAction>,
}

impl Store {
    /// The driver's claim, in one transaction: unblock pending steps whose dependencies are done,
    /// then start ready steps within the concurrency limits and host locks. Returns the steps to
    /// act on and the earliest time a backed-off step may start. It runs on every pass of the
    /// driver and with every finished step, so it looks only at what changed since its last
    /// look (see [`Scans`]) and at the steps in flight or ready, never at the whole plan.
    pub async fn claim(
        &self,
        run_id: &str,
        limits: DriveLimits,
        now: Millis,
    ) -> Result<(Vec<Claimed>, Option<Millis>)> {
        if let Some(wake) = self.nothing_to_claim(run_id, limits, now).await? {
            return Ok((Vec::new(), wake));
        }
        let (found, _) = self
            .transact(|w| {
                let run = load_run(w.db, run_id)?;
                if !run.status.is_driving() {
                    return Ok((Vec::new(), None));
                }
                w.claim_ready(&self.scans, &run, limits, now)
            })
            .await?;
        Ok(found)
    }

    /// The claim's question asked on the read side first: `Some(wake)` when a claim now would
    /// change nothing (no step became done since the last look, no run event, nothing ready that
    /// the limits let start). Most passes of the driver find exactly that — a finished step's
    /// commit already claimed what it released — and then they leave the single writer to the
    /// commits that need it. `None`: take the writer and claim. Read in one transaction, so the
    /// answer is about one moment; anything committed after it wakes the driver again.
    async fn nothing_to_claim(
        &self,
        run_id: &str,
        limits: DriveLimits,
        now: Millis,
    ) -> Result<Option<Option<Millis>>> {
        let Some(since) = self.scans.since(run_id) else {
            return Ok(None);
        };
        self.read(|db| {
            raw::snapshot(db, || {
                let run = load_run(db, run_id)?;
                if !run.status.is_driving() {
                    return Ok(Some(None));
                }
                if let Some(opens) = before_window(&run, now) {
                    return Ok(Some(Some(opens)));
                }
                if done_since(db, run_id, since)?.is_none_or(|done| !done.is_empty()) {
                    return Ok(None);
                }
                let steps = candidates(db, run_id, run.status == RunStatus::Undoing)?;
                let (startable, wake) = may_start(&steps, limits, now);
                Ok((!startable).then_some(wake))
            })
        })
        .await
    }
}

/// The change window's opening: nothing starts before it (`Some(opens)`: wake then). Undo is
/// exempt: backing a change out is what an overrun window calls for. What its end holds is
/// decided step by step in the claim (`gating::held_at_window_end`).
fn before_window(run: &RunRecord, now: Millis) -> Option<Millis> {
    if run.status == RunStatus::Undoing {
        return None;
    }
    run.window_start.filter(|t| now < *t)
}

/// Steps in flight (they count against the limits) and steps ready to start, in plan order, as
/// a few columns each (plan steps, or undo steps while undoing). A burst of unblocked steps can
/// leave hundreds ready behind the limits, and this is read for every step that finishes.
/// The query of [`candidates`] (its plan is checked in `plans.rs`).
pub(super) const CANDIDATES: &str = "SELECT s.id, s.status, s.host,
             CASE WHEN s.status = 'ready' THEN json_extract(s.state, '$.not_before') END
                 AS not_before,
             CASE WHEN s.status = 'ready' THEN s.kind NOT IN ('approval', 'manual', 'barrier')
                 AND json_extract(x.spec, '$.gate') IS NULL END AS dispatches
         FROM steps s INDEXED BY steps_claim_scan
           JOIN step_specs x ON x.run_id = s.run_id AND x.id = s.id
         WHERE s.run_id = ? AND s.status IN ('dispatched', 'running', 'verifying', 'ready')
           AND (s.undo_of IS NOT NULL) = ?
         ORDER BY s.seq";

fn candidates(db: &Connection, run_id: &str, undoing: bool) -> Result<Vec<Candidate>> {
    all(
        db,
        CANDIDATES,
        rusqlite::params![run_id, undoing],
        Candidate::from_row,
    )
}

/// Whether the claim would try to start a ready step (host locks held by other runs aside: the
/// claim itself finds out), and the earliest time a backed-off ready step may start.
fn may_start(steps: &[Candidate], limits: DriveLimits, now: Millis) -> (bool, Option<Millis>) {
    let in_flight: Vec<&Candidate> = steps.iter().filter(|s| s.status.is_in_flight()).collect();
    let mut wake: Option<Millis> = None;
    let mut startable = false;
    for s in steps.iter().filter(|s| s.status == StepStatus::Ready) {
        if let Some(t) = s.not_before.filter(|t| *t > now) {
            wake = Some(wake.map_or(t, |w| w.min(t)));
            continue;
        }
        let host_busy = |h: &String| {
            in_flight
                .iter()
                .filter(|f| f.host.as_ref() == Some(h))
                .count()
                >= limits.per_host
        };
        startable |= !s.dispatches
            || (in_flight.len() < limits.per_run && !s.host.as_ref().is_some_and(host_busy));
    }
    (startable, wake)
}

impl WriteTx<'_> {
    /// The claim inside a transaction already open: the driver's pass opens its own, and the
    /// commit of a finished step runs it too (see `group.rs`), so the step's result and the start
    /// of the steps it releases become durable in one fsync.
    pub(super) fn claim_ready(
        &mut self,
        scans: &Scans,
        run: &RunRecord,
        limits: DriveLimits,
        now: Millis,
    ) -> Result<(Vec<Claimed>, Option<Millis>)> {
        let w = self;
        let run_id = run.id.as_str();
        // The change window: nothing starts before it opens (the run is "scheduled"; wake
        // then). After its end, what is in flight finishes and the rest of the phase underway
        // may go on, but no step that stops services or starts a phase, until an approver
        // extends the window (`gating::held_at_window_end`). Undo is exempt: backing a change
        // out is what an overrun window calls for.
        let undoing = run.status == RunStatus::Undoing;
        if let Some(opens) = before_window(run, now) {
            return Ok((Vec::new(), Some(opens)));
        }
        let ended_at = (!undoing)
            .then(|| gating::window_end(&run.state, run.window_end).filter(|e| now >= *e))
            .flatten();
        let unblocked = w.unblockable(run_id, undoing, scans)?;
        for id in &unblocked {
            let s = load_step(w.db, run_id, id)?;
            w.step_transition(run.state.requester_person(), &s, &StepEvent::Unblock, now)?;
        }
        let steps = candidates(w.db, run_id, undoing)?;
        let mut in_flight = steps.iter().filter(|s| s.status.is_in_flight()).count();
        let mut per_host: HashMap<String, usize> = HashMap::new();
        for s in steps.iter().filter(|s| s.status.is_in_flight()) {
            if let Some(h) = &s.host {
                *per_host.entry(h.clone()).or_default() += 1;
            }
        }
        let mut claimed = Vec::new();
        let mut next_wake: Option<Millis> = None;
        let mut held: Option<String> = None;
        for s in steps.iter().filter(|s| s.status == StepStatus::Ready) {
            if let Some(t) = s.not_before.filter(|t| *t > now) {
                next_wake = Some(next_wake.map_or(t, |w| w.min(t)));
                continue;
            }
            if ended_at.is_some() && w.held_at_window_end(run_id, &s.id)? {
                held.get_or_insert_with(|| s.id.clone());
                continue;
            }
            if s.dispatches {
                if in_flight >= limits.per_run {
                    continue;
                }
                if let Some(h) = &s.host {
                    if per_host.get(h).copied().unwrap_or(0) >= limits.per_host {
                        continue;
                    }
                    if !w.lock_host(h, run_id)? {
                        continue;
                    }
                }
            }
            let record = load_step(w.db, run_id, &s.id)?;
            let (state, actions) = w.step_transition(
                run.state.requester_person(),
                &record,
                &StepEvent::Start,
                now,
            )?;
            if state.status.is_in_flight() {
                in_flight += 1;
                if let Some(h) = &record.spec.host {
                    *per_host.entry(h.clone()).or_default() += 1;
                }
            }
            let mut step = record;
            step.status = state.status;
            step.attempt = state.attempt;
            step.state = state;
            claimed.push(Claimed { step, actions });
        }
        if let (Some(end), Some(step_id)) = (ended_at, held) {
            // Recorded once per end (the machine refuses a second hold for the same end).
            if run.state.window_held.as_ref().map(|h| h.end) != Some(end)
                && run.status == RunStatus::Running
            {
                w.run_transition(run, &RunEvent::WindowHold { step_id, end }, now)?;
            }
        }
        Ok((claimed, next_wake))
    }

    /// Whether the window's end holds this ready step: it stops services, or it starts a phase
    /// (none of its inputs is in its own phase). Asked only after the end, of ready steps.
    fn held_at_window_end(&mut self, run_id: &str, step_id: &str) -> Result<bool> {
        let s = load_step(self.db, run_id, step_id)?;
        let same_phase: i64 = self
            .db
            .prepare_cached(HELD_SAME_PHASE)?
            .query_row([run_id, step_id, s.spec.phase.as_str()], |r| r.get(0))?;
        Ok(gating::held_at_window_end(&s.spec, same_phase == 0))
    }
}

impl Store {
    /// The driver's end-of-run check: completes a run whose steps are all done, fails one that a
    /// failed step has stopped, and reports the earliest gate expiry to wake for.
    pub async fn settle(&self, run_id: &str, now: Millis) -> Result<Option<RunStatus>> {
        // Asked on the read side first: most passes find nothing to settle, and then they take
        // neither the writer nor the run's steps.
        let quiet = self
            .read(|db| {
                let run = load_run(db, run_id)?;
                Ok(!run.status.is_driving()
                    || settling_event(db, run_id, run.status == RunStatus::Undoing)?.is_none())
            })
            .await?;
        if quiet {
            return Ok(None);
        }
        let (settled, _) = self
            .transact(|w| {
                let run = load_run(w.db, run_id)?;
                if !run.status.is_driving() {
                    return Ok(None);
                }
                let undoing = run.status == RunStatus::Undoing;
                let Some(event) = settling_event(w.db, run_id, undoing)? else {
                    return Ok(None);
                };
                let (next, actions) = w.run_transition(&run, &event, now)?;
                w.run_consequences(&run, &actions, now)?;
                if next.status == RunStatus::Succeeded {
                    w.close_campaign_of_run(run_id, now)?;
                }
                Ok(Some(next.status))
            })
            .await?;
        Ok(settled)
    }

    /// Steps of a run that are in flight or in doubt (for reconcile and abort).
    pub async fn unsettled_steps(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        Ok(self
            .steps(run_id)
            .await?
            .into_iter()
            .filter(|s| s.status.is_in_flight())
            .collect())
    }
}

impl WriteTx<'_> {
    /// Takes the host for this run unless another run holds it.
    fn lock_host(&mut self, host: &str, run_id: &str) -> Result<bool> {
        self.db
            .prepare_cached("INSERT OR IGNORE INTO host_locks (host, run_id) VALUES (?, ?)")?
            .execute([host, run_id])?;
        let holder: String = self
            .db
            .prepare_cached("SELECT run_id FROM host_locks WHERE host = ?")?
            .query_row([host], |r| r.get(0))?;
        Ok(holder == run_id)
    }
}

/// Who holds which host (for the dashboard).
impl Store {
    pub async fn host_locks(&self) -> Result<BTreeMap<String, String>> {
        let rows = self
            .read(|db| {
                all(
                    db,
                    "SELECT host, run_id FROM host_locks ORDER BY host",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// Events of one run (oldest first), for the run page.
    pub async fn run_events(&self, run_id: &str) -> Result<Vec<AuditEvent>> {
        self.events_after(0, Some(run_id), u32::MAX).await
    }
}

/// What the end-of-run check decides from the run's step statuses (plan steps, or undo steps
/// while undoing): completed when every one is done, stalled on the first failed step when
/// nothing is in flight or ready, otherwise nothing. Three seeks into the index
/// `steps_claim_scan` (one per status asked about), never a scan of the plan: this runs on every
/// quiet pass of the driver.
fn settling_event(db: &Connection, run_id: &str, undoing: bool) -> Result<Option<RunEvent>> {
    // Every status that is not done, from the machine's own list (a status added there is
    // counted here too).
    let open = StepStatus::ALL
        .iter()
        .filter(|s| !s.is_done())
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    // `open` holds only the machine's own status words, quoted; the run and flag are bound.
    let sql = format!(
        "SELECT
             EXISTS (SELECT 1 FROM steps INDEXED BY steps_claim_scan
                 WHERE run_id = ?1 AND (undo_of IS NOT NULL) = ?2
                   AND status IN ({open})) AS open,
             EXISTS (SELECT 1 FROM steps INDEXED BY steps_claim_scan
                 WHERE run_id = ?1 AND (undo_of IS NOT NULL) = ?2
                   AND status IN ('ready', 'dispatched', 'running', 'verifying')) AS moving,
             (SELECT id FROM steps INDEXED BY steps_claim_scan
                 WHERE run_id = ?1 AND status = 'failed' AND (undo_of IS NOT NULL) = ?2
                 ORDER BY seq LIMIT 1) AS failed"
    );
    let (open, moving, failed): (bool, bool, Option<String>) = db
        .prepare_cached(&sql)?
        .query_row(rusqlite::params![run_id, undoing], |r| {
            Ok((r.get("open")?, r.get("moving")?, r.get("failed")?))
        })?;
    if !open {
        return Ok(Some(RunEvent::Completed));
    }
    if moving {
        return Ok(None);
    }
    Ok(failed.map(|step_id| RunEvent::Stalled { step_id }))
}

/// A step the claim looks at: in flight (it counts against the limits) or ready (it may start).
struct Candidate {
    id: String,
    status: StepStatus,
    host: Option<String>,
    /// Backoff of a ready step: not before this time.
    not_before: Option<Millis>,
    /// A ready step that goes to an executor (counts against the limits) rather than to people.
    dispatches: bool,
}

impl Candidate {
    fn from_row(row: &rusqlite::Row<'_>) -> Result<Candidate> {
        let status: String = row.get("status")?;
        Ok(Candidate {
            status: StepStatus::parse(&status).ok_or_else(|| {
                super::EngineError::Audit(format!("stored step status cannot be read: {status}"))
            })?,
            id: row.get("id")?,
            host: row.get("host")?,
            not_before: row.get("not_before")?,
            dispatches: row.get::<_, Option<bool>>("dispatches")?.unwrap_or(false),
        })
    }
}

/// Per run, the newest audit event the claim has looked at for steps to unblock.
///
/// A pending step can become unblocked only when one of its dependencies becomes done, and
/// every such change is an audit event (`step.*` with `"to": "succeeded"` or `"skipped"`). So
/// after one full look at the run's pending steps, a claim need only look at the dependents of
/// the steps that became done in the events since the last look: a claim costs what changed,
/// not the length of the plan (it runs for every step that finishes; a 200-server plan has
/// 1,566 steps). The full look is taken again whenever this store has not seen the run yet
/// (after a start, for writes of another process), and after any run event in between (an
/// undo plan adds new steps; resume and reopen change what may start). A look is remembered
/// only once its transaction has committed, so a rolled-back claim is simply done again.
/// Everything read is in the database, so writes by another process are seen too.
#[derive(Default)]
pub(super) struct Scans {
    upto: Mutex<HashMap<String, i64>>,
}

impl Scans {
    fn since(&self, run_id: &str) -> Option<i64> {
        self.upto
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(run_id)
            .copied()
    }

    /// After a commit: the claims in it looked at every event up to these ids.
    pub(super) fn record(&self, scanned: &[(String, i64)]) {
        if scanned.is_empty() {
            return;
        }
        let mut upto = self.upto.lock().unwrap_or_else(|p| p.into_inner());
        for (run_id, id) in scanned {
            let seen = upto.entry(run_id.clone()).or_insert(*id);
            *seen = (*seen).max(*id);
        }
    }
}

/// Both unblock queries answer the same question: the run's pending steps whose dependencies
/// are all done; the second asks it only of the dependents of steps that became done (a JSON
/// array bound first). A dependency's status is read from its row through the primary key (rows
/// are small since specs moved to `step_specs`). Their plans are checked in `plans.rs`.
const ALL_DONE: &str = "NOT EXISTS (SELECT 1 FROM step_deps d
       CROSS JOIN steps p ON p.run_id = d.run_id AND p.id = d.depends_on
       WHERE d.run_id = s.run_id AND d.step_id = s.id
         AND p.status NOT IN ('succeeded', 'skipped'))";

pub(super) const UNBLOCK_ALL: &str = concatcp!(
    "SELECT s.id FROM steps s WHERE s.run_id = ? AND s.status = 'pending'
       AND (s.undo_of IS NOT NULL) = ? AND ",
    ALL_DONE,
    " ORDER BY s.seq"
);

pub(super) const UNBLOCK_SINCE: &str = concatcp!(
    "SELECT s.id FROM (SELECT DISTINCT d.step_id AS id FROM json_each(?) j
         CROSS JOIN step_deps d INDEXED BY step_deps_by_dependency
           ON d.run_id = ? AND d.depends_on = j.value) c
       CROSS JOIN steps s ON s.run_id = ? AND s.id = c.id
     WHERE s.status = 'pending' AND (s.undo_of IS NOT NULL) = ? AND ",
    ALL_DONE,
    " ORDER BY s.seq"
);

/// Whether a ready step's inputs include one of its own phase (the window's end holds a step
/// that starts a phase). CROSS JOIN: the step's own dependencies first.
pub(super) const HELD_SAME_PHASE: &str = "SELECT COUNT(*) FROM step_deps d
       CROSS JOIN step_specs p ON p.run_id = d.run_id AND p.id = d.depends_on
     WHERE d.run_id = ? AND d.step_id = ? AND json_extract(p.spec, '$.phase') = ?";

/// The events after a look, for [`done_since`].
pub(super) const DONE_SINCE: &str = "SELECT kind, step_id,
         CASE WHEN kind LIKE 'step.%' THEN json_extract(payload, '$.to') END AS to_status
     FROM events WHERE run_id = ? AND id > ? ORDER BY id";

impl WriteTx<'_> {
    /// The run's pending steps (plan steps, or undo steps while undoing) whose dependencies are
    /// all done, in plan order: all of them on a full look, otherwise only dependents of steps
    /// that became done since the last look (see [`Scans`]).
    fn unblockable(&mut self, run_id: &str, undoing: bool, scans: &Scans) -> Result<Vec<String>> {
        // Newest event, including those this transaction appended (a finished step's own).
        let upto = self.last.0;
        let done_since = match scans.since(run_id) {
            Some(since) if since >= upto => Some(Vec::new()),
            Some(since) => done_since(self.db, run_id, since)?,
            None => None,
        };
        let ids: Vec<String> = match done_since {
            Some(done) if done.is_empty() => Vec::new(),
            Some(done) => all(
                self.db,
                UNBLOCK_SINCE,
                rusqlite::params![
                    serde_json::to_string(&done)
                        .map_err(|e| super::EngineError::Invalid(e.to_string()))?,
                    run_id,
                    run_id,
                    undoing,
                ],
                |r| Ok(r.get(0)?),
            )?,
            None => all(
                self.db,
                UNBLOCK_ALL,
                rusqlite::params![run_id, undoing],
                |r| Ok(r.get(0)?),
            )?,
        };
        self.scanned.push((run_id.to_string(), upto));
        Ok(ids)
    }
}

/// Steps of the run that became done in events after `since` (in this connection's view, which
/// inside a write transaction includes what it appended); `None` when a run event came in
/// between (look at everything again).
fn done_since(db: &Connection, run_id: &str, since: i64) -> Result<Option<Vec<String>>> {
    let rows: Vec<(String, Option<String>, Option<String>)> =
        all(db, DONE_SINCE, rusqlite::params![run_id, since], |r| {
            Ok((r.get("kind")?, r.get("step_id")?, r.get("to_status")?))
        })?;
    let mut done = Vec::new();
    for (kind, step, to) in rows {
        if crate::engine::audit::EventKind::from(kind).is_run() {
            return Ok(None);
        }
        if let (Some(step), Some("succeeded" | "skipped")) = (step, to.as_deref()) {
            done.push(step);
        }
    }
    Ok(Some(done))
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::engine::executor::Outcome;
    use crate::engine::testkit::{approver, noop_plan};
    use crate::knowledge::plan::Plan;

    async fn started(store: &Store, plan: Plan) -> String {
        crate::engine::testkit::started_run(store, plan, "CHG-19").await
    }

    /// What a full look would find: a pending step none of whose dependencies is still undone.
    async fn left_unblockable(store: &Store, run_id: &str) -> Vec<String> {
        let steps = store.steps(run_id).await.unwrap();
        let status: HashMap<&str, StepStatus> =
            steps.iter().map(|s| (s.id.as_str(), s.status)).collect();
        steps
            .iter()
            .filter(|s| s.status == StepStatus::Pending)
            .filter(|s| {
                s.spec
                    .depends_on
                    .iter()
                    .all(|d| status[d.as_str()].is_done())
            })
            .map(|s| s.id.clone())
            .collect()
    }

    fn finished() -> StepEvent {
        StepEvent::Finished {
            outcome: Outcome::Succeeded {
                evidence: serde_json::Value::Null,
            },
        }
    }

    /// A random plan of 80 steps, each depending on up to three earlier ones, driven to its end
    /// by claims that look only at what changed, with steps finished by the driver, skipped by
    /// a person, and some of both done by a second store on the same file (another process).
    /// After every claim nothing is left that a full look would unblock.
    #[tokio::test]
    async fn claims_that_look_only_at_what_changed_leave_nothing_unblockable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let store = Store::open(&path).await.unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(19);
        let mut plan = noop_plan(80, false, &[]);
        for i in 1..plan.steps.len() {
            let deps: std::collections::BTreeSet<String> = (0..rng.gen_range(0..=3))
                .map(|_| format!("s{:04}", rng.gen_range(0..i)))
                .collect();
            plan.steps[i].depends_on = deps.into_iter().collect();
        }
        let run_id = started(&store, plan).await;
        let other = Store::open(&path).await.unwrap();
        let limits = DriveLimits {
            per_run: 3,
            per_host: 1,
        };
        let mut now = 1;
        for _ in 0..1000 {
            now += 1;
            store.claim(&run_id, limits, now).await.unwrap();
            assert_eq!(
                left_unblockable(&store, &run_id).await,
                Vec::<String>::new()
            );
            if store.settle(&run_id, now).await.unwrap() == Some(RunStatus::Succeeded) {
                break;
            }
            for s in store.steps(&run_id).await.unwrap() {
                let by = if rng.gen_bool(0.3) { &other } else { &store };
                match s.status {
                    StepStatus::Dispatched if rng.gen_bool(0.7) => {
                        by.apply_step_event(&run_id, &s.id, &finished(), now)
                            .await
                            .unwrap();
                    }
                    StepStatus::Ready if rng.gen_bool(0.2) => {
                        let skip = StepEvent::Skip {
                            actor: approver("carl"),
                            justification: "not needed on this site".into(),
                        };
                        by.apply_step_event(&run_id, &s.id, &skip, now)
                            .await
                            .unwrap();
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(
            store.run(&run_id).await.unwrap().status,
            RunStatus::Succeeded
        );
        assert_eq!(store.verify_audit().await.unwrap().problem, None);
    }

    /// The end-of-run check from counted statuses: nothing while a step can still move, the first
    /// failed step (in plan order) once nothing can.
    #[tokio::test]
    async fn settle_stalls_on_the_first_failed_step_only_when_nothing_can_move() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        let run_id = started(&store, noop_plan(4, false, &[])).await;
        let limits = DriveLimits {
            per_run: 4,
            per_host: 1,
        };
        store.claim(&run_id, limits, 1).await.unwrap();
        let failed = StepEvent::Finished {
            outcome: Outcome::Failed {
                message: "boom".into(),
                evidence: serde_json::Value::Null,
            },
        };
        for id in ["s0002", "s0001"] {
            store
                .apply_step_event(&run_id, id, &failed, 2)
                .await
                .unwrap();
        }
        store
            .apply_step_event(&run_id, "s0000", &finished(), 2)
            .await
            .unwrap();
        assert_eq!(
            store.settle(&run_id, 3).await.unwrap(),
            None,
            "s0003 is in flight"
        );
        store
            .apply_step_event(&run_id, "s0003", &finished(), 4)
            .await
            .unwrap();
        assert_eq!(
            store.settle(&run_id, 5).await.unwrap(),
            Some(RunStatus::Failed)
        );
        let stalled = store.run_events(&run_id).await.unwrap().pop().unwrap();
        assert_eq!(stalled.kind, "run.stalled");
        assert_eq!(
            stalled.payload["event"]["step_id"], "s0001",
            "{}",
            stalled.payload
        );
    }
}
