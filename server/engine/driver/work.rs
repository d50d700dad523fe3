//! Doing a step's work after the transition that asked for it committed: dispatching with the
//! idempotency key, timeouts and heartbeats, post-condition checks, status questions about steps
//! in doubt, polling wait steps.

use std::time::Duration;

use crate::engine::executor::{ActionStatus, Dispatch, Executor, IdempotencyKey, Outcome};
use crate::engine::machine::{StepAction, StepEvent, StepStatus};
use crate::engine::steplog::Unwritten;
use crate::engine::store::{EngineError, Result, StepRecord};
use crate::knowledge::operation::{Operation, WaitCondition};
use crate::knowledge::plan::StepKind;

use super::Engine;
impl Engine {
    pub(super) fn key(&self, run_id: &str, step: &StepRecord, attempt: u32) -> IdempotencyKey {
        IdempotencyKey {
            run_id: run_id.to_string(),
            step_id: step.id.clone(),
            attempt,
        }
    }

    fn dispatch_of(
        &self,
        run_id: &str,
        step: &StepRecord,
        attempt: u32,
        operation: Operation,
    ) -> Dispatch {
        Dispatch {
            key: self.key(run_id, step, attempt),
            host: step.spec.host.clone(),
            operation,
            timeout_secs: step.spec.timeout_secs,
        }
    }

    /// Applies a driver event; returns the follow-up actions. Events of steps finishing at the
    /// same moment share one commit, and a step leaving flight claims the run's next steps in
    /// that commit (see [`crate::engine::store::Store::apply_driver_event_and_claim`]); the
    /// driver picks those up on the pass the commit wakes it for.
    pub(super) async fn apply(
        &self,
        run_id: &str,
        step_id: &str,
        event: StepEvent,
    ) -> Result<Vec<StepAction>> {
        let store = &self.inner.store;
        let (_, actions) = if self.inner.config.claim_in_commit {
            store
                .apply_driver_event_and_claim(
                    run_id,
                    step_id,
                    &event,
                    self.now(),
                    self.inner.config.limits,
                )
                .await?
        } else {
            store
                .apply_driver_event(run_id, step_id, &event, self.now())
                .await?
        };
        Ok(actions)
    }

    /// [`Engine::apply`] with the lines the executor said on the way to `event`, committed
    /// together with it (see [`crate::engine::steplog`]).
    async fn apply_logged(
        &self,
        run_id: &str,
        step_id: &str,
        event: StepEvent,
        lines: Unwritten,
    ) -> Result<Vec<StepAction>> {
        let limits = Some(self.inner.config.limits).filter(|_| self.inner.config.claim_in_commit);
        let (_, actions) = self
            .inner
            .store
            .apply_driver_event_logged(run_id, step_id, &event, self.now(), limits, lines)
            .await?;
        Ok(actions)
    }

    pub(super) async fn status_of(&self, run_id: &str, step: &StepRecord) -> ActionStatus {
        if step.spec.kind == StepKind::Wait {
            // Polling changes nothing; a wait interrupted by a restart simply polls again.
            return ActionStatus::NotFound;
        }
        match self.inner.router.for_kind(step.spec.kind) {
            Some(ex) => {
                ex.status(
                    &self.key(run_id, step, step.attempt),
                    step.spec.host.as_deref(),
                )
                .await
            }
            None => ActionStatus::Unknown {
                reason: format!("no executor handles {} steps", step.spec.kind.as_str()),
            },
        }
    }

    /// Carries out a step's actions, and the actions their results lead to, until none is left.
    pub(super) async fn carry_out(
        &self,
        run_id: &str,
        step: StepRecord,
        mut work: Vec<StepAction>,
    ) -> Result<()> {
        while let Some(action) = work.pop() {
            let current = self.inner.store.step(run_id, &step.id).await?;
            // The scan that asked for this may have read the step before another task moved it.
            let still_due = match &action {
                StepAction::Dispatch { attempt } => {
                    current.status.is_in_flight()
                        && current.status != StepStatus::Verifying
                        && current.attempt == *attempt
                }
                StepAction::Verify => current.status == StepStatus::Verifying,
                StepAction::QueryStatus => {
                    current.status == StepStatus::OutcomeUnknown
                        || matches!(current.status, StepStatus::Dispatched | StepStatus::Running)
                }
                StepAction::CancelInFlight | StepAction::NeedsPeople => false,
            };
            if !still_due {
                continue;
            }
            // The executor's lines ride the commit of the event its answer leads to.
            let (event, lines) = match action {
                StepAction::Dispatch { attempt } => {
                    let call = self.execute(run_id, &current, attempt);
                    let (outcome, lines) = self.logged(run_id, &current, attempt, call).await;
                    (StepEvent::Finished { outcome }, lines)
                }
                StepAction::Verify => {
                    let attempt = current.attempt;
                    let call = self.verify(run_id, &current);
                    self.logged(run_id, &current, attempt, call).await
                }
                StepAction::QueryStatus => {
                    let status = self.status_of(run_id, &current).await;
                    if matches!(status, ActionStatus::NotFound | ActionStatus::Running)
                        && current.status == StepStatus::OutcomeUnknown
                    {
                        continue; // nothing new: people decide
                    }
                    let key = self.key(run_id, &current, current.attempt);
                    (StepEvent::Reconciled { status }, Unwritten::none(key))
                }
                StepAction::CancelInFlight | StepAction::NeedsPeople => continue,
            };
            let name = event.name();
            let next = match self
                .apply_logged(run_id, &step.id, event.clone(), lines)
                .await
            {
                Ok(next) => {
                    // Inside the driver's `step` span: the line names the run and the step.
                    tracing::info!(event = name, "step event applied");
                    next
                }
                Err(EngineError::Refused(_)) => {
                    // The step moved meanwhile (aborted and answered by a cancel): record what
                    // the executor said if the step is in doubt, otherwise keep the answer in logs.
                    let now = self.inner.store.step(run_id, &step.id).await?;
                    match (now.status, event) {
                        (StepStatus::OutcomeUnknown, StepEvent::Finished { outcome }) => {
                            self.apply(
                                run_id,
                                &step.id,
                                StepEvent::Reconciled {
                                    status: ActionStatus::Finished { outcome },
                                },
                            )
                            .await?
                        }
                        (status, event) => {
                            tracing::info!(run_id = %run_id, step_id = %step.id, %status, event = event.name(), "late answer not applied");
                            Vec::new()
                        }
                    }
                }
                Err(e) => return Err(e),
            };
            work.extend(next);
        }
        Ok(())
    }

    /// Runs an executor call with a sink for the step's log lines (see [`crate::engine::steplog`]);
    /// returns its output and the lines still to commit.
    async fn logged<T>(
        &self,
        run_id: &str,
        step: &StepRecord,
        attempt: u32,
        work: impl std::future::Future<Output = T>,
    ) -> (T, Unwritten) {
        let log = self.inner.store.step_log().clone();
        let key = self.key(run_id, step, attempt);
        crate::engine::steplog::collect(log, key, self.inner.clock.clone(), work).await
    }

    async fn execute(&self, run_id: &str, step: &StepRecord, attempt: u32) -> Outcome {
        let Some(executor) = self.inner.router.for_kind(step.spec.kind) else {
            return Outcome::Failed {
                message: format!("no executor handles {} steps", step.spec.kind.as_str()),
                evidence: serde_json::Value::Null,
            };
        };
        let dispatch = self.dispatch_of(run_id, step, attempt, step.spec.operation.clone());
        if step.spec.kind == StepKind::Wait {
            return poll_until(executor.as_ref(), &dispatch).await;
        }
        let call = async {
            match &step.undo_of {
                Some(original) => {
                    let before = match self.inner.store.step(run_id, original).await {
                        Ok(s) => s.state.evidence.unwrap_or(serde_json::Value::Null),
                        Err(e) => {
                            return Outcome::Failed {
                                message: format!("cannot read what {original} captured: {e}"),
                                evidence: serde_json::Value::Null,
                            }
                        }
                    };
                    executor.undo(&dispatch, &before).await
                }
                None => executor.execute(&dispatch).await,
            }
        };
        let limit = Duration::from_secs(step.spec.timeout_secs.max(1));
        let deadline = tokio::time::sleep(limit);
        let every = self.inner.config.heartbeat;
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tokio::pin!(call, deadline);
        loop {
            tokio::select! {
                outcome = &mut call => return outcome,
                _ = &mut deadline => {
                    return Outcome::Unknown { reason: format!("no answer within {} s", limit.as_secs()) }
                }
                _ = beat.tick() => {
                    let status = executor.status(&dispatch.key, dispatch.host.as_deref()).await;
                    if status == ActionStatus::Running {
                        if let Err(e) = self.apply(run_id, &step.id, StepEvent::Heartbeat).await {
                            tracing::info!(run_id = %run_id, step_id = %step.id, error = %e, "heartbeat not recorded");
                        }
                    }
                }
            }
        }
    }

    async fn verify(&self, run_id: &str, step: &StepRecord) -> StepEvent {
        let Some(post) = step.spec.postcondition.clone() else {
            return StepEvent::Verified {
                ok: true,
                evidence: serde_json::Value::Null,
            };
        };
        let kind = match &post {
            Operation::Sql(_) => StepKind::Sql,
            Operation::Probe(_) => StepKind::Probe,
            _ if step.spec.kind == StepKind::Manual => StepKind::Agent,
            _ => step.spec.kind,
        };
        let Some(executor) = self.inner.router.for_kind(kind) else {
            return StepEvent::Verified {
                ok: false,
                evidence: serde_json::json!({ "error": format!("no executor handles {} checks", kind.as_str()) }),
            };
        };
        let dispatch = self.dispatch_of(run_id, step, step.attempt, post);
        let limit = Duration::from_secs(step.spec.timeout_secs.max(1));
        match tokio::time::timeout(limit, executor.check(&dispatch)).await {
            Ok(Outcome::Succeeded { evidence }) => StepEvent::Verified { ok: true, evidence },
            Ok(Outcome::Failed { message, evidence }) => StepEvent::Verified {
                ok: false,
                evidence: serde_json::json!({ "message": message, "evidence": evidence }),
            },
            Ok(Outcome::Unknown { reason }) | Ok(Outcome::NeedsPerson { reason, .. }) => {
                StepEvent::Verified {
                    ok: false,
                    evidence: serde_json::json!({ "message": reason }),
                }
            }
            Err(_) => StepEvent::Verified {
                ok: false,
                evidence: serde_json::json!({ "message": format!("the check gave no answer within {} s", limit.as_secs()) }),
            },
        }
    }
}

/// Polls a wait step's condition every interval until it has held for its stable period, or the
/// timeout passes.
pub async fn poll_until(executor: &dyn Executor, dispatch: &Dispatch) -> Outcome {
    let Operation::Wait {
        condition,
        interval_secs,
        timeout_secs,
    } = &dispatch.operation
    else {
        return Outcome::Failed {
            message: "a wait step needs a wait operation".into(),
            evidence: serde_json::Value::Null,
        };
    };
    let stable = match condition {
        WaitCondition::BackupSessionsLow { stable_secs, .. } => Duration::from_secs(*stable_secs),
    };
    let interval = Duration::from_secs((*interval_secs).max(1));
    let timeout = Duration::from_secs(*timeout_secs);
    let started = tokio::time::Instant::now();
    let mut held_since: Option<tokio::time::Instant> = None;
    let mut polls = 0u32;
    loop {
        polls += 1;
        let now = tokio::time::Instant::now();
        let answer = executor.check(dispatch).await;
        crate::engine::steplog::line(match &answer {
            Outcome::Succeeded { .. } => format!("poll {polls}: the condition holds"),
            Outcome::Failed { message, .. } => format!("poll {polls}: not yet: {message}"),
            Outcome::Unknown { reason } => format!("poll {polls}: no answer: {reason}"),
            Outcome::NeedsPerson { reason, .. } => {
                format!("poll {polls}: handed to a person: {reason}")
            }
        });
        match answer {
            // The condition cannot be read here at all; polling again would only time out.
            Outcome::NeedsPerson { .. } => return answer,
            Outcome::Succeeded { evidence } => {
                let since = *held_since.get_or_insert(now);
                if now.duration_since(since) >= stable {
                    return Outcome::Succeeded {
                        evidence: serde_json::json!({ "polls": polls, "held_secs": now.duration_since(since).as_secs(), "last": evidence }),
                    };
                }
            }
            _ => held_since = None,
        }
        if now.duration_since(started) >= timeout {
            return Outcome::Failed {
                message: format!(
                    "the condition did not hold for {} s within {} s",
                    stable.as_secs(),
                    timeout.as_secs()
                ),
                evidence: serde_json::json!({ "polls": polls }),
            };
        }
        tokio::time::sleep(interval).await;
    }
}
