//! Writing: creating runs and applying run and step events, each as a compare-and-set plus an
//! audit event in one transaction, with the consequences that belong in the same transaction
//! (cancelling steps on abort, planning the undo, releasing hosts). The driver's claim is in
//! `claim.rs`; every SQL statement of the engine stays in the store.

use std::collections::HashSet;

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

impl WriteTx {
    async fn insert_step(
        &mut self,
        run_id: &str,
        seq: i64,
        spec: &PlannedStep,
        undo_of: Option<&str>,
        now: Millis,
    ) -> Result<()> {
        let state = StepState::default();
        sqlx::query(
            "INSERT INTO steps (run_id, id, seq, kind, host, undo_of, status, attempt, state,
                 content_hash, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
        )
        .bind(run_id)
        .bind(&spec.id)
        .bind(seq)
        .bind(spec.kind.as_str())
        .bind(&spec.host)
        .bind(undo_of)
        .bind(json(&state)?)
        .bind(audit::content_hash(spec))
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query("INSERT INTO step_specs (run_id, id, spec) VALUES (?, ?, ?)")
            .bind(run_id)
            .bind(&spec.id)
            .bind(json(spec)?)
            .execute(&mut *self.tx)
            .await?;
        for d in &spec.depends_on {
            sqlx::query("INSERT INTO step_deps (run_id, step_id, depends_on) VALUES (?, ?, ?)")
                .bind(run_id)
                .bind(&spec.id)
                .bind(d)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// A new run's steps and their dependencies, many rows per statement: a 2,003-server plan
    /// has 18,000 steps and 30,000 dependencies, and one statement per row took most of the
    /// time its run took to create.
    async fn insert_plan_steps(
        &mut self,
        run_id: &str,
        steps: &[PlannedStep],
        now: Millis,
    ) -> Result<()> {
        // Twelve parameters a step, three a dependency: well under SQLite's 32,766 per statement.
        const STEPS_PER_INSERT: usize = 200;
        const DEPS_PER_INSERT: usize = 2_000;
        let state = json(&StepState::default())?;
        for (n, chunk) in steps.chunks(STEPS_PER_INSERT).enumerate() {
            let mut rows = Vec::with_capacity(chunk.len());
            for (i, spec) in chunk.iter().enumerate() {
                let seq = (n * STEPS_PER_INSERT + i) as i64;
                rows.push((seq, spec, json(spec)?, audit::content_hash(spec)));
            }
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO steps (run_id, id, seq, kind, host, undo_of, status, attempt, state,
                     content_hash, updated_at) ",
            );
            q.push_values(&rows, |mut b, (seq, spec, _, hash)| {
                b.push_bind(run_id)
                    .push_bind(&spec.id)
                    .push_bind(*seq)
                    .push_bind(spec.kind.as_str())
                    .push_bind(&spec.host)
                    .push_bind(None::<String>)
                    .push_bind("pending")
                    .push_bind(0i64)
                    .push_bind(&state)
                    .push_bind(hash)
                    .push_bind(now);
            });
            q.build().execute(&mut *self.tx).await?;
            // The specs beside the rows (see `insert_step`).
            let mut q = sqlx::QueryBuilder::new("INSERT INTO step_specs (run_id, id, spec) ");
            q.push_values(&rows, |mut b, (_, spec, spec_json, _)| {
                b.push_bind(run_id).push_bind(&spec.id).push_bind(spec_json);
            });
            q.build().execute(&mut *self.tx).await?;
        }
        let deps: Vec<(&str, &str)> = steps
            .iter()
            .flat_map(|s| s.depends_on.iter().map(|d| (s.id.as_str(), d.as_str())))
            .collect();
        for chunk in deps.chunks(DEPS_PER_INSERT) {
            let mut q =
                sqlx::QueryBuilder::new("INSERT INTO step_deps (run_id, step_id, depends_on) ");
            q.push_values(chunk, |mut b, (step, dep)| {
                b.push_bind(run_id).push_bind(*step).push_bind(*dep);
            });
            q.build().execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Applies a run event as a compare-and-set on (status, version), with its audit event.
    pub(super) async fn run_transition(
        &mut self,
        run: &RunRecord,
        event: &RunEvent,
        now: Millis,
    ) -> Result<(RunState, Vec<RunAction>)> {
        let (next, actions) = run::apply(&run.state, event, now)?;
        let done = sqlx::query(
            "UPDATE runs SET status = ?, version = version + 1, state = ?, updated_at = ?
             WHERE id = ? AND status = ? AND version = ?",
        )
        .bind(next.status.as_str())
        .bind(json(&next)?)
        .bind(now)
        .bind(&run.id)
        .bind(run.status.as_str())
        .bind(run.version)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
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
        )
        .await?;
        Ok((next, actions))
    }

    /// Applies a step event as a compare-and-set on (status, attempt), with its audit event.
    /// `requester` is the run requester's *person* (separation of duties compares people).
    pub(super) async fn step_transition(
        &mut self,
        requester: &str,
        step: &StepRecord,
        event: &StepEvent,
        now: Millis,
    ) -> Result<(StepState, Vec<StepAction>)> {
        let ctx = StepCtx::for_step(&step.spec, requester, step.content_hash.clone());
        let (next, actions) = step::apply(&step.state, &ctx, event, now)?;
        self.check_order(step, next.status).await?;
        let done = sqlx::query(
            "UPDATE steps SET status = ?, attempt = ?, state = ?, updated_at = ?
             WHERE run_id = ? AND id = ? AND status = ? AND attempt = ?",
        )
        .bind(next.status.as_str())
        .bind(i64::from(next.attempt))
        .bind(json(&next)?)
        .bind(now)
        .bind(&step.run_id)
        .bind(&step.id)
        .bind(step.status.as_str())
        .bind(i64::from(step.attempt))
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
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
        )
        .await?;
        Ok((next, actions))
    }

    /// The order invariant, for every transition by whatever door: a step leaves `pending` for
    /// `ready` or `skipped` only when every step it depends on is done (succeeded, or skipped —
    /// which by this same check happened only after *its* inputs were done). Cancelling is not
    /// progress and is always allowed. One indexed query, once in a step's life.
    async fn check_order(&mut self, step: &StepRecord, to: StepStatus) -> Result<()> {
        if step.status != StepStatus::Pending
            || !matches!(to, StepStatus::Ready | StepStatus::Skipped)
        {
            return Ok(());
        }
        let waiting: Option<String> = sqlx::query_scalar(
            "SELECT d.depends_on FROM step_deps d
               JOIN steps p ON p.run_id = d.run_id AND p.id = d.depends_on
             WHERE d.run_id = ? AND d.step_id = ? AND p.status NOT IN ('succeeded', 'skipped')
             ORDER BY p.seq LIMIT 1",
        )
        .bind(&step.run_id)
        .bind(&step.id)
        .fetch_optional(&mut *self.tx)
        .await?;
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
    pub(super) async fn run_consequences(
        &mut self,
        run: &RunRecord,
        actions: &[RunAction],
        now: Millis,
    ) -> Result<()> {
        for action in actions {
            match action {
                RunAction::CancelSteps => {
                    for s in load_steps(&mut self.tx, &run.id).await? {
                        if !s.status.is_terminal() && !s.status.is_in_flight() {
                            if s.status == StepStatus::OutcomeUnknown {
                                continue; // stays with people: nobody knows what happened
                            }
                            self.step_transition(
                                run.state.requester_person(),
                                &s,
                                &StepEvent::Cancel,
                                now,
                            )
                            .await?;
                        }
                    }
                }
                RunAction::ReleaseHosts => {
                    sqlx::query("DELETE FROM host_locks WHERE run_id = ?")
                        .bind(&run.id)
                        .execute(&mut *self.tx)
                        .await?;
                }
                RunAction::PlanUndo => self.plan_undo(run, now).await?,
            }
        }
        Ok(())
    }

    /// Adds one undo step per succeeded reversible plan step, chained in reverse order.
    async fn plan_undo(&mut self, run: &RunRecord, now: Millis) -> Result<()> {
        let steps = load_steps(&mut self.tx, &run.id).await?;
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
            self.insert_step(&run.id, max_seq + 1 + i as i64, &spec, Some(&s.id), now)
                .await?;
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

impl WriteTx {
    /// Inserts a run checked by [`check_new_run`] in `draft`, with its plan, steps and the
    /// `run.created` event, inside this transaction (a campaign's stage links it in the same one).
    pub(super) async fn insert_run(
        &mut self,
        new: &NewRun,
        actor: &Actor,
        now: Millis,
    ) -> Result<RunRecord> {
        let id = uuid::Uuid::new_v4().to_string();
        let state = RunState::requested_by(actor);
        sqlx::query(
            "INSERT INTO runs (id, status, version, requester, change_ticket, window_start, window_end,
                 runbook, inventory, params, state, created_at, updated_at)
             VALUES (?, 'draft', 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(&actor.name)
        .bind(&new.change_ticket)
        .bind(new.window_start)
        .bind(new.window_end)
        .bind(&new.plan.runbook)
        .bind(&new.plan.inventory)
        .bind(json(&new.plan.params)?)
        .bind(json(&state)?)
        .bind(now)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        // Beside the run, not in its row: the row is read by every claim and transition.
        sqlx::query("INSERT INTO run_plans (run_id, plan) VALUES (?, ?)")
            .bind(&id)
            .bind(json(&new.plan)?)
            .execute(&mut *self.tx)
            .await?;
        self.insert_plan_steps(&id, &new.plan.steps, now).await?;
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
        )
        .await?;
        load_run(&mut self.tx, &id).await
    }
}

impl Store {
    /// Creates a run in `draft` from a plan; `actor` is its requester.
    pub async fn create_run(&self, new: NewRun, actor: &Actor, now: Millis) -> Result<RunRecord> {
        check_new_run(&new, actor)?;
        let mut w = self.begin().await?;
        let run = w.insert_run(&new, actor, now).await?;
        self.commit(w).await?;
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
        let mut w = self.begin().await?;
        let mut run = load_run(&mut w.tx, run_id).await?;
        if matches!(event, RunEvent::ApproveStart { .. }) {
            // Campaign order, in the transaction that starts the run (see `campaigns.rs`).
            w.check_campaign_order(run_id).await?;
        }
        if let Some(preflight) = fresh {
            w.run_transition(&run, &RunEvent::Preflight { preflight }, now)
                .await?;
            run = load_run(&mut w.tx, run_id).await?;
        }
        match w.run_transition(&run, event, now).await {
            Ok((next, actions)) => {
                w.run_consequences(&run, &actions, now).await?;
                self.commit(w).await?;
                Ok((next, actions))
            }
            Err(e @ EngineError::Refused(Refusal::PreflightBlocks { .. })) => {
                // The start stays refused, but the preflight that refused it is kept: the
                // approver sees (and may override) exactly the findings named.
                self.commit(w).await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
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
        let mut w = self.begin().await?;
        let run = load_run(&mut w.tx, run_id).await?;
        let step = load_step(&mut w.tx, run_id, step_id).await?;
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
        let result = w
            .step_transition(run.state.requester_person(), &step, event, now)
            .await?;
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
            )
            .await?;
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
                )
                .await?;
            }
        }
        self.commit(w).await?;
        Ok(result)
    }

    /// Applies many driver events to steps of one run in one transaction. Refusals and conflicts
    /// are reported per item (they wrote nothing); database errors fail the whole batch.
    pub async fn apply_step_events(
        &self,
        run_id: &str,
        events: &[(String, StepEvent)],
        now: Millis,
    ) -> Result<Vec<StepBatchResult>> {
        let mut w = self.begin().await?;
        let run = load_run(&mut w.tx, run_id).await?;
        let mut results = Vec::with_capacity(events.len());
        for (step_id, event) in events {
            let step = load_step(&mut w.tx, run_id, step_id).await?;
            match w
                .step_transition(run.state.requester_person(), &step, event, now)
                .await
            {
                Ok(r) => results.push(Ok(r)),
                Err(e @ (EngineError::Refused(_) | EngineError::Conflict(_))) => {
                    results.push(Err(e))
                }
                Err(e) => return Err(e),
            }
        }
        self.commit(w).await?;
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
        let mut w = self.begin().await?;
        let run = load_run(&mut w.tx, run_id).await?;
        let step = load_step(&mut w.tx, run_id, &spec.id).await?;
        if spec.depends_on != step.spec.depends_on {
            return Err(EngineError::Invalid(
                "depends_on: an amendment cannot change dependencies".into(),
            ));
        }
        let new_hash = audit::content_hash(spec);
        let mut amended = step.clone();
        amended.spec = spec.clone();
        amended.content_hash = new_hash.clone();
        let (next, _) = w
            .step_transition(
                run.state.requester_person(),
                &amended,
                &StepEvent::ContentChanged,
                now,
            )
            .await?;
        sqlx::query(
            "UPDATE steps SET kind = ?, host = ?, content_hash = ? WHERE run_id = ? AND id = ?",
        )
        .bind(spec.kind.as_str())
        .bind(&spec.host)
        .bind(&new_hash)
        .bind(run_id)
        .bind(&spec.id)
        .execute(&mut *w.tx)
        .await?;
        sqlx::query("UPDATE step_specs SET spec = ? WHERE run_id = ? AND id = ?")
            .bind(json(spec)?)
            .bind(run_id)
            .bind(&spec.id)
            .execute(&mut *w.tx)
            .await?;
        w.append(
            Some(run_id),
            Some(&spec.id),
            &actor.name,
            now,
            "step.amended",
            serde_json::json!({ "old_content_hash": step.content_hash, "new_content_hash": new_hash, "spec": spec }),
        )
        .await?;
        self.commit(w).await?;
        Ok(next)
    }
}
