//! Writing: creating runs and applying run and step events, each as a compare-and-set plus an
//! audit event in one transaction, with the consequences that belong in the same transaction
//! (cancelling steps on abort, planning the undo, releasing hosts). The driver's claim is in
//! `claim.rs`; every SQL statement of the engine stays in the store.

use std::collections::HashSet;

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::queries::{load_run, load_step, load_steps, RunRecord, StepRecord};
use super::{EngineError, Result, Store, WriteTx};
use crate::engine::audit;
use crate::engine::machine::{
    self, run, step, Actor, Millis, Refusal, RunAction, RunEvent, RunState, RunStatus, StepAction,
    StepCtx, StepEvent, StepState, StepStatus,
};
use crate::knowledge::plan::{Plan, PlannedStep, RetryPolicy};

/// What a person provides to create a run; the requester is the acting person.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub change_ticket: String,
    pub window_start: Option<Millis>,
    pub window_end: Option<Millis>,
    pub plan: Plan,
}

/// One item of a batch of step events: its result, refusals kept per item.
pub type StepBatchResult = Result<(StepState, Vec<StepAction>)>;

#[derive(Serialize)]
struct Transition<'a, E: Serialize> {
    event: &'a E,
    from: &'a str,
    to: &'a str,
    attempt: u32,
}

fn statuses_are_person_actionable(status: RunStatus) -> bool {
    matches!(
        status,
        RunStatus::Running | RunStatus::Paused | RunStatus::Failed | RunStatus::Undoing
    )
}

/// Checks a plan holds together: ids unique and non-empty, dependencies known and earlier.
fn validate_plan(plan: &Plan) -> Result<()> {
    let mut seen = HashSet::new();
    for (i, s) in plan.steps.iter().enumerate() {
        if s.id.trim().is_empty() {
            return Err(EngineError::Invalid(format!(
                "plan step {} has an empty id",
                i + 1
            )));
        }
        if s.id.starts_with("undo:") {
            return Err(EngineError::Invalid(format!(
                "plan step id `{}` uses the reserved prefix `undo:`",
                s.id
            )));
        }
        for d in &s.depends_on {
            if !seen.contains(d.as_str()) {
                return Err(EngineError::Invalid(format!(
                    "plan step `{}` depends on `{d}`, which is not an earlier step of the plan",
                    s.id
                )));
            }
        }
        if !seen.insert(s.id.as_str()) {
            return Err(EngineError::Invalid(format!(
                "plan step id `{}` appears twice",
                s.id
            )));
        }
        if let Some(g) = &s.gate {
            if g.quorum == 0 {
                return Err(EngineError::Invalid(format!(
                    "plan step `{}`: gate quorum must be at least 1",
                    s.id
                )));
            }
        }
    }
    Ok(())
}

/// The order check's question: the first of a step's dependencies not done. CROSS JOIN keeps
/// this order, the step's own dependencies first; left to itself, SQLite 3.54's planner walks
/// every step of the run instead (issue 19: a transition cost grew with the plan). Its plan is
/// checked in `plans.rs`.
pub(super) const ORDER_CHECK: &str = "SELECT d.depends_on FROM step_deps d
       CROSS JOIN steps p ON p.run_id = d.run_id AND p.id = d.depends_on
     WHERE d.run_id = ? AND d.step_id = ? AND p.status NOT IN ('succeeded', 'skipped')
     ORDER BY p.seq LIMIT 1";

impl WriteTx<'_> {
    fn insert_step(
        &mut self,
        run_id: &str,
        seq: i64,
        spec: &PlannedStep,
        undo_of: Option<&str>,
        now: Millis,
    ) -> Result<()> {
        let state = StepState::default();
        self.db
            .prepare_cached(
                "INSERT INTO steps (run_id, id, seq, kind, host, undo_of, status, attempt, state,
                     content_hash, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
            )?
            .execute(params![
                run_id,
                spec.id,
                seq,
                spec.kind.as_str(),
                spec.host,
                undo_of,
                json(&state)?,
                audit::content_hash(spec),
                now,
            ])?;
        self.db
            .prepare_cached("INSERT INTO step_specs (run_id, id, spec) VALUES (?, ?, ?)")?
            .execute(params![run_id, spec.id, json(spec)?])?;
        for d in &spec.depends_on {
            self.db
                .prepare_cached(
                    "INSERT INTO step_deps (run_id, step_id, depends_on) VALUES (?, ?, ?)",
                )?
                .execute(params![run_id, spec.id, d])?;
        }
        Ok(())
    }

    /// A new run's steps and their dependencies, many rows per statement: a 2,003-server plan
    /// has 18,000 steps and 30,000 dependencies, and one statement per row took most of the
    /// time its run took to create.
    fn insert_plan_steps(
        &mut self,
        run_id: &str,
        steps: &[PlannedStep],
        now: Millis,
    ) -> Result<()> {
        // The statements are prepared once and run per row: with no hand-off per statement a
        // row costs a few microseconds, and there is no SQL to build per chunk.
        let state = json(&StepState::default())?;
        let mut step = self.db.prepare_cached(
            "INSERT INTO steps (run_id, id, seq, kind, host, undo_of, status, attempt, state,
                 content_hash, updated_at) VALUES (?, ?, ?, ?, ?, NULL, 'pending', 0, ?, ?, ?)",
        )?;
        let mut spec_row = self
            .db
            .prepare_cached("INSERT INTO step_specs (run_id, id, spec) VALUES (?, ?, ?)")?;
        let mut dep = self.db.prepare_cached(
            "INSERT INTO step_deps (run_id, step_id, depends_on) VALUES (?, ?, ?)",
        )?;
        for (seq, spec) in steps.iter().enumerate() {
            step.execute(params![
                run_id,
                spec.id,
                seq as i64,
                spec.kind.as_str(),
                spec.host,
                state,
                audit::content_hash(spec),
                now,
            ])?;
            spec_row.execute(params![run_id, spec.id, json(spec)?])?;
        }
        for spec in steps {
            for d in &spec.depends_on {
                dep.execute(params![run_id, spec.id, d])?;
            }
        }
        Ok(())
    }

    /// Applies a run event as a compare-and-set on (status, version), with its audit event.
    pub(super) fn run_transition(
        &mut self,
        run: &RunRecord,
        event: &RunEvent,
        now: Millis,
    ) -> Result<(RunState, Vec<RunAction>)> {
        let (next, actions) = run::apply(&run.state, event, now)?;
        let done = self
            .db
            .prepare_cached(
                "UPDATE runs SET status = ?, version = version + 1, state = ?, updated_at = ?
                 WHERE id = ? AND status = ? AND version = ?",
            )?
            .execute(params![
                next.status.as_str(),
                json(&next)?,
                now,
                run.id,
                run.status.as_str(),
                run.version,
            ])?;
        if done == 0 {
            return Err(EngineError::Conflict(format!("run {}", run.id)));
        }
        let actor = event
            .actor()
            .map(|a| a.name.clone())
            .unwrap_or_else(|| Actor::engine().name);
        let payload = serde_json::to_value(Transition {
            event,
            from: run.status.as_str(),
            to: next.status.as_str(),
            attempt: 0,
        })
        .map_err(|e| EngineError::Audit(e.to_string()))?;
        self.append(
            Some(&run.id),
            None,
            &actor,
            now,
            audit::EventKind::from(event).as_str(),
            payload,
        )?;
        Ok((next, actions))
    }

    /// Applies a step event as a compare-and-set on (status, attempt), with its audit event.
    /// `requester` is the run requester's *person* (separation of duties compares people).
    pub(super) fn step_transition(
        &mut self,
        requester: &str,
        step: &StepRecord,
        event: &StepEvent,
        now: Millis,
    ) -> Result<(StepState, Vec<StepAction>)> {
        let ctx = StepCtx::for_step(&step.spec, requester, step.content_hash.clone());
        let (next, actions) = step::apply(&step.state, &ctx, event, now)?;
        self.check_order(step, next.status)?;
        let done = self
            .db
            .prepare_cached(
                "UPDATE steps SET status = ?, attempt = ?, state = ?, updated_at = ?
                 WHERE run_id = ? AND id = ? AND status = ? AND attempt = ?",
            )?
            .execute(params![
                next.status.as_str(),
                i64::from(next.attempt),
                json(&next)?,
                now,
                step.run_id,
                step.id,
                step.status.as_str(),
                i64::from(step.attempt),
            ])?;
        if done == 0 {
            return Err(EngineError::Conflict(format!(
                "step {} of run {}",
                step.id, step.run_id
            )));
        }
        let actor = event
            .actor()
            .map(|a| a.name.clone())
            .unwrap_or_else(|| Actor::engine().name);
        let payload = serde_json::to_value(Transition {
            event,
            from: step.status.as_str(),
            to: next.status.as_str(),
            attempt: next.attempt,
        })
        .map_err(|e| EngineError::Audit(e.to_string()))?;
        self.append(
            Some(&step.run_id),
            Some(&step.id),
            &actor,
            now,
            audit::EventKind::from(event).as_str(),
            payload,
        )?;
        Ok((next, actions))
    }

    /// The order invariant, for every transition by whatever door: a step leaves `pending` for
    /// `ready` or `skipped` only when every step it depends on is done (succeeded, or skipped —
    /// which by this same check happened only after *its* inputs were done). Cancelling is not
    /// progress and is always allowed. One indexed query, once in a step's life.
    fn check_order(&mut self, step: &StepRecord, to: StepStatus) -> Result<()> {
        if step.status != StepStatus::Pending
            || !matches!(to, StepStatus::Ready | StepStatus::Skipped)
        {
            return Ok(());
        }
        let waiting: Option<String> = self
            .db
            .prepare_cached(ORDER_CHECK)?
            .query_row([&step.run_id, &step.id], |r| r.get(0))
            .optional()?;
        match waiting {
            Some(waiting_on) => Err(Refusal::InputsNotDone {
                step: step.id.clone(),
                waiting_on,
            }
            .into()),
            None => Ok(()),
        }
    }

    /// The run-level consequences of a run transition that belong in the same transaction.
    pub(super) fn run_consequences(
        &mut self,
        run: &RunRecord,
        actions: &[RunAction],
        now: Millis,
    ) -> Result<()> {
        for action in actions {
            match action {
                RunAction::CancelSteps => {
                    for s in load_steps(self.db, &run.id)? {
                        if !s.status.is_terminal() && !s.status.is_in_flight() {
                            if s.status == StepStatus::OutcomeUnknown {
                                continue; // stays with people: nobody knows what happened
                            }
                            self.step_transition(
                                run.state.requester_person(),
                                &s,
                                &StepEvent::Cancel,
                                now,
                            )?;
                        }
                    }
                }
                RunAction::ReleaseHosts => {
                    self.db
                        .prepare_cached("DELETE FROM host_locks WHERE run_id = ?")?
                        .execute([&run.id])?;
                }
                RunAction::PlanUndo => self.plan_undo(run, now)?,
            }
        }
        Ok(())
    }

    /// Adds one undo step per succeeded reversible plan step, chained in reverse order.
    fn plan_undo(&mut self, run: &RunRecord, now: Millis) -> Result<()> {
        let steps = load_steps(self.db, &run.id)?;
        if steps.iter().any(|s| s.undo_of.is_some()) {
            return Err(EngineError::Invalid(
                "this run already has an undo plan; retry or resolve its steps instead".into(),
            ));
        }
        let max_seq = steps.iter().map(|s| s.seq).max().unwrap_or(0);
        let mut previous: Option<String> = None;
        let reversible = steps
            .iter()
            .rev()
            .filter(|s| s.status == StepStatus::Succeeded)
            .filter_map(|s| s.spec.undo.clone().map(|op| (s, op)));
        for (i, (s, op)) in reversible.enumerate() {
            let spec = PlannedStep {
                id: format!("undo:{}", s.id),
                title: format!("Undo: {}", s.spec.title),
                section: s.spec.section.clone(),
                phase: "Undo".into(),
                kind: s.spec.kind,
                host: s.spec.host.clone(),
                depends_on: previous.iter().cloned().collect(),
                instructions: format!(
                    "Restore what `{}` changed, from the values it captured.",
                    s.id
                ),
                operation: op,
                postcondition: None,
                undo: None,
                gate: None,
                retry: RetryPolicy::default(),
                timeout_secs: s.spec.timeout_secs,
                estimate_secs: s.spec.estimate_secs,
            };
            self.insert_step(&run.id, max_seq + 1 + i as i64, &spec, Some(&s.id), now)?;
            previous = Some(spec.id);
        }
        Ok(())
    }
}

fn json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| EngineError::Invalid(e.to_string()))
}

/// What every new run must be: asked for by an operator, with a change ticket, a window that
/// ends after it starts and a plan that holds together.
pub(super) fn check_new_run(new: &NewRun, actor: &Actor) -> Result<()> {
    if !actor.has_role(machine::Role::Operator) {
        return Err(Refusal::MissingRole {
            actor: actor.name.clone(),
            role: machine::Role::Operator,
        }
        .into());
    }
    if new.change_ticket.trim().is_empty() {
        return Err(EngineError::Invalid(
            "change_ticket: a change ticket reference is required".into(),
        ));
    }
    if let (Some(a), Some(b)) = (new.window_start, new.window_end) {
        if b <= a {
            return Err(EngineError::Invalid(
                "maintenance window: the end must be after the start".into(),
            ));
        }
    }
    validate_plan(&new.plan)
}

impl WriteTx<'_> {
    /// Inserts a run checked by [`check_new_run`] in `draft`, with its plan, steps and the
    /// `run.created` event, inside this transaction (a campaign's stage links it in the same one).
    pub(super) fn insert_run(
        &mut self,
        new: &NewRun,
        actor: &Actor,
        now: Millis,
    ) -> Result<RunRecord> {
        let id = uuid::Uuid::new_v4().to_string();
        let state = RunState::requested_by(actor);
        self.db
            .prepare_cached(
                "INSERT INTO runs (id, status, version, requester, change_ticket, window_start,
                     window_end, runbook, inventory, params, state, created_at, updated_at)
                 VALUES (?, 'draft', 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                id,
                actor.name,
                new.change_ticket,
                new.window_start,
                new.window_end,
                new.plan.runbook,
                new.plan.inventory,
                json(&new.plan.params)?,
                json(&state)?,
                now,
                now,
            ])?;
        // Beside the run, not in its row: the row is read by every claim and transition.
        self.db
            .prepare_cached("INSERT INTO run_plans (run_id, plan) VALUES (?, ?)")?
            .execute(params![id, json(&new.plan)?])?;
        self.insert_plan_steps(&id, &new.plan.steps, now)?;
        self.append(
            Some(&id),
            None,
            &actor.name,
            now,
            "run.created",
            serde_json::json!({
                "change_ticket": new.change_ticket,
                "window_start": new.window_start,
                "window_end": new.window_end,
                "runbook": new.plan.runbook,
                "inventory": new.plan.inventory,
                "params": new.plan.params,
                "steps": new.plan.steps.len(),
                "plan_sha256": audit::sha256_hex(audit::canonical_json(&serde_json::to_value(&new.plan).map_err(|e| EngineError::Invalid(e.to_string()))?).as_bytes()),
            }),
        )?;
        load_run(self.db, &id)
    }
}

impl Store {
    /// Creates a run in `draft` from a plan; `actor` is its requester.
    pub async fn create_run(&self, new: NewRun, actor: &Actor, now: Millis) -> Result<RunRecord> {
        check_new_run(&new, actor)?;
        let (run, _) = self.transact(|w| w.insert_run(&new, actor, now)).await?;
        Ok(run)
    }

    /// Applies a run event (submit, approve start, pause, resume, abort, undo, …).
    pub async fn apply_run_event(
        &self,
        run_id: &str,
        event: &RunEvent,
        now: Millis,
    ) -> Result<(RunState, Vec<RunAction>)> {
        let gated = matches!(
            event,
            RunEvent::Submit { .. } | RunEvent::ApproveStart { .. }
        );
        let mut fresh = None;
        if gated {
            // Everything but preflight first, on the stored state: a refusal for any other
            // reason (role, four-eyes, state, no comment) changes nothing.
            let run = self.run(run_id).await?;
            match run::apply(&run.state, event, now) {
                Ok(_) | Err(Refusal::PreflightBlocks { .. }) => {}
                Err(r) => return Err(r.into()),
            }
            fresh = self.fresh_preflight(&run, now).await?;
        }
        let (result, _) = self
            .transact(|w| {
                let mut run = load_run(w.db, run_id)?;
                if matches!(event, RunEvent::ApproveStart { .. }) {
                    // Campaign order, in the transaction that starts the run (see `campaigns.rs`).
                    w.check_campaign_order(run_id)?;
                }
                if let Some(preflight) = fresh {
                    w.run_transition(&run, &RunEvent::Preflight { preflight }, now)?;
                    run = load_run(w.db, run_id)?;
                }
                match w.run_transition(&run, event, now) {
                    Ok((next, actions)) => {
                        w.run_consequences(&run, &actions, now)?;
                        Ok(Ok((next, actions)))
                    }
                    // The start stays refused, but the preflight that refused it is kept (the
                    // transaction commits): the approver sees (and may override) exactly the
                    // findings named.
                    Err(e @ EngineError::Refused(Refusal::PreflightBlocks { .. })) => Ok(Err(e)),
                    Err(e) => Err(e),
                }
            })
            .await?;
        result
    }

    /// Applies a person's (or the driver's) event to one step. A step decision that lets a failed
    /// run go on (retry, skip, mark done) reopens the run in the same transaction.
    pub async fn apply_step_event(
        &self,
        run_id: &str,
        step_id: &str,
        event: &StepEvent,
        now: Millis,
    ) -> Result<(StepState, Vec<StepAction>)> {
        let (result, _) = self
            .transact(|w| w.step_event(run_id, step_id, event, now))
            .await?;
        Ok(result)
    }
}

impl WriteTx<'_> {
    /// [`Store::apply_step_event`] inside this transaction.
    fn step_event(
        &mut self,
        run_id: &str,
        step_id: &str,
        event: &StepEvent,
        now: Millis,
    ) -> Result<(StepState, Vec<StepAction>)> {
        let w = self;
        let run = load_run(w.db, run_id)?;
        let step = load_step(w.db, run_id, step_id)?;
        if event.actor().is_some() && !statuses_are_person_actionable(run.status) {
            // The role before the run's state, as the machine does it (403 before 409).
            let ctx = StepCtx::for_step(
                &step.spec,
                run.state.requester_person(),
                step.content_hash.clone(),
            );
            step::check_role(&ctx, event)?;
            return Err(Refusal::NotAllowed {
                what: "the run".into(),
                from: run.status.to_string(),
                event: event.name().into(),
            }
            .into());
        }
        let result = w.step_transition(run.state.requester_person(), &step, event, now)?;
        if run.status == RunStatus::Running
            && result.0.denied_by.is_some()
            && matches!(event, StepEvent::Reject { .. })
        {
            // A denied gate puts the run on hold (not "failed"): someone asks again, aborts or
            // undoes. In the same transaction as the denial.
            let reason = format!(
                "on hold: the gate `{}` was denied ({})",
                step_id,
                result.0.last_error.clone().unwrap_or_default()
            );
            w.run_transition(
                &run,
                &RunEvent::Hold {
                    step_id: step_id.to_string(),
                    reason,
                },
                now,
            )?;
        }
        let held_here = run.status == RunStatus::Paused
            && run.state.on_hold.as_deref() == Some(step_id)
            && matches!(
                result.0.status,
                StepStatus::AwaitingApproval | StepStatus::Ready
            );
        let reopens_failed = run.status == RunStatus::Failed
            && matches!(
                result.0.status,
                StepStatus::Ready
                    | StepStatus::Skipped
                    | StepStatus::Succeeded
                    | StepStatus::AwaitingApproval
            );
        if held_here || reopens_failed {
            if let Some(actor) = event.actor() {
                w.run_transition(
                    &run,
                    &RunEvent::Reopen {
                        actor: actor.clone(),
                    },
                    now,
                )?;
            }
        }
        Ok(result)
    }
}

impl Store {
    /// Applies many driver events to steps of one run in one transaction. Refusals and conflicts
    /// are reported per item (they wrote nothing); database errors fail the whole batch.
    pub async fn apply_step_events(
        &self,
        run_id: &str,
        events: &[(String, StepEvent)],
        now: Millis,
    ) -> Result<Vec<StepBatchResult>> {
        let (results, _) = self
            .transact(|w| {
                let run = load_run(w.db, run_id)?;
                let mut results = Vec::with_capacity(events.len());
                for (step_id, event) in events {
                    let step = load_step(w.db, run_id, step_id)?;
                    match w.step_transition(run.state.requester_person(), &step, event, now) {
                        Ok(r) => results.push(Ok(r)),
                        Err(e @ (EngineError::Refused(_) | EngineError::Conflict(_))) => {
                            results.push(Err(e))
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(results)
            })
            .await?;
        Ok(results)
    }

    /// Replaces a step's resolved inputs (e.g. the plan was expanded again). Approvals given for
    /// the old content stop counting.
    pub async fn amend_step(
        &self,
        run_id: &str,
        spec: &PlannedStep,
        actor: &Actor,
        now: Millis,
    ) -> Result<StepState> {
        if !actor.has_role(machine::Role::Operator) {
            return Err(Refusal::MissingRole {
                actor: actor.name.clone(),
                role: machine::Role::Operator,
            }
            .into());
        }
        let (next, _) = self
            .transact(|w| {
                let run = load_run(w.db, run_id)?;
                let step = load_step(w.db, run_id, &spec.id)?;
                if spec.depends_on != step.spec.depends_on {
                    return Err(EngineError::Invalid(
                        "depends_on: an amendment cannot change dependencies".into(),
                    ));
                }
                let new_hash = audit::content_hash(spec);
                let mut amended = step.clone();
                amended.spec = spec.clone();
                amended.content_hash = new_hash.clone();
                let (next, _) = w.step_transition(
                    run.state.requester_person(),
                    &amended,
                    &StepEvent::ContentChanged,
                    now,
                )?;
                w.db.prepare_cached(
                    "UPDATE steps SET kind = ?, host = ?, content_hash = ? WHERE run_id = ? AND id = ?",
                )?
                .execute(params![spec.kind.as_str(), spec.host, new_hash, run_id, spec.id])?;
                w.db.prepare_cached("UPDATE step_specs SET spec = ? WHERE run_id = ? AND id = ?")?
                    .execute(params![json(spec)?, run_id, spec.id])?;
                w.append(
                    Some(run_id),
                    Some(&spec.id),
                    &actor.name,
                    now,
                    "step.amended",
                    serde_json::json!({ "old_content_hash": step.content_hash, "new_content_hash": new_hash, "spec": spec }),
                )?;
                Ok(next)
            })
            .await?;
        Ok(next)
    }
}
