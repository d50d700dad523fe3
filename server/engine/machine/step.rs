//! The step state machine: pending → ready → (awaiting approval | awaiting operator) →
//! dispatched → running → verifying → succeeded | failed | skipped | cancelled, plus
//! outcome unknown for a step whose result was lost.
//!
//! Outcome unknown is never left by an automatic retry: the driver asks the executor for the
//! action's status by its idempotency key; only a finished answer resolves it, otherwise a person
//! decides (retry, mark done with evidence, fail).

use serde::{Deserialize, Serialize};

use super::{require_text, Actor, Millis, Refusal, Role};
use crate::engine::executor::{ActionStatus, Outcome};
use crate::engine::policy::{self, Control, Parties};
use crate::knowledge::plan::{GateSpec, PlannedStep, RetryPolicy, StepKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    #[default]
    Pending,
    Ready,
    AwaitingApproval,
    AwaitingOperator,
    Dispatched,
    Running,
    Verifying,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
    OutcomeUnknown,
}

impl StepStatus {
    pub const ALL: [StepStatus; 12] = [
        StepStatus::Pending,
        StepStatus::Ready,
        StepStatus::AwaitingApproval,
        StepStatus::AwaitingOperator,
        StepStatus::Dispatched,
        StepStatus::Running,
        StepStatus::Verifying,
        StepStatus::Succeeded,
        StepStatus::Failed,
        StepStatus::Skipped,
        StepStatus::Cancelled,
        StepStatus::OutcomeUnknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Ready => "ready",
            StepStatus::AwaitingApproval => "awaiting_approval",
            StepStatus::AwaitingOperator => "awaiting_operator",
            StepStatus::Dispatched => "dispatched",
            StepStatus::Running => "running",
            StepStatus::Verifying => "verifying",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
            StepStatus::OutcomeUnknown => "outcome_unknown",
        }
    }

    pub fn parse(s: &str) -> Option<StepStatus> {
        StepStatus::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Satisfies a dependency.
    pub fn is_done(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Skipped)
    }

    /// An executor may be working on it.
    pub fn is_in_flight(self) -> bool {
        matches!(
            self,
            StepStatus::Dispatched | StepStatus::Running | StepStatus::Verifying
        )
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded | StepStatus::Skipped | StepStatus::Cancelled
        )
    }
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One approval of a gate, bound to the content hash the approver saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub actor: String,
    /// The approver's person when it differs from the account: a quorum counts people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    pub comment: String,
    pub at: Millis,
    pub content_hash: String,
}

/// The mutable part of a step.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StepState {
    pub status: StepStatus,
    /// Attempts dispatched so far; the idempotency key of the current one is (run, step, attempt).
    pub attempt: u32,
    /// Backoff: the next automatic attempt may not start before this time.
    pub not_before: Option<Millis>,
    /// When the approval gate opened (expiry counts from here).
    pub gate_opened_at: Option<Millis>,
    pub gate_lapsed: bool,
    pub approvals: Vec<Approval>,
    pub claimed_by: Option<String>,
    /// The claimer's person when it differs from the account name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by_person: Option<String>,
    /// Who asked for the step's current action (retry, reopened gate, undo); four-eyes applies.
    pub requested_by: Option<String>,
    /// That person when it differs from the account name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by_person: Option<String>,
    pub dispatched_at: Option<Millis>,
    pub heartbeat_at: Option<Millis>,
    pub last_error: Option<String>,
    pub evidence: Option<serde_json::Value>,
    /// The operator's note on a manual task, a skip justification or a person's decision.
    pub note: Option<String>,
    pub decided_by: Option<String>,
    /// A gate an approver denied: who. The run is on hold until someone asks again (a new
    /// decision), or it is aborted or undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_by: Option<String>,
}

impl StepState {
    /// The person who claimed the task, if any.
    pub fn claimer(&self) -> Option<&str> {
        self.claimed_by_person
            .as_deref()
            .or(self.claimed_by.as_deref())
    }

    /// The person who asked for the current action, if any.
    pub fn action_requester(&self) -> Option<&str> {
        self.requested_by_person
            .as_deref()
            .or(self.requested_by.as_deref())
    }

    fn parties<'a>(&'a self, ctx: &'a StepCtx, gate_role: Option<Role>) -> Parties<'a> {
        self.parties_with(&ctx.run_requester, gate_role)
    }

    /// The people around a decision on this step, as [`policy::check`] takes them: what the
    /// machine checks on every transition, and what the pages ask before they show a control.
    pub fn parties_with<'a>(
        &'a self,
        run_requester: &'a str,
        gate_role: Option<Role>,
    ) -> Parties<'a> {
        Parties {
            requester: run_requester,
            step_requested_by: self.action_requester(),
            claimed_by: self.claimer(),
            gate_role,
        }
    }
}

impl Approval {
    /// Who approved, for counting a quorum.
    pub fn person(&self) -> &str {
        self.person.as_deref().unwrap_or(&self.actor)
    }
}

/// What the machine needs to know about the step and its run; fixed for the transition.
#[derive(Debug, Clone, PartialEq)]
pub struct StepCtx {
    pub kind: StepKind,
    pub gate: Option<GateSpec>,
    pub retry: RetryPolicy,
    pub has_postcondition: bool,
    /// The *person* who requested the run (see `RunState::requester_person`).
    pub run_requester: String,
    /// SHA-256 of the step's resolved inputs as they are now (see `audit::content_hash`).
    pub content_hash: String,
}

impl StepCtx {
    pub fn for_step(step: &PlannedStep, run_requester: &str, content_hash: String) -> StepCtx {
        StepCtx {
            kind: step.kind,
            gate: step.gate.clone(),
            retry: step.retry.clone(),
            has_postcondition: step.postcondition.is_some(),
            run_requester: run_requester.to_string(),
            content_hash,
        }
    }

    /// The gate a step must pass: its own, or for an approval step the default one.
    pub fn effective_gate(&self) -> Option<GateSpec> {
        match (&self.gate, self.kind) {
            (Some(g), _) => Some(g.clone()),
            (None, StepKind::Approval) => Some(GateSpec {
                role: Role::Approver,
                quorum: 1,
                expires_after_secs: None,
            }),
            (None, _) => None,
        }
    }

    /// Capped exponential backoff after failed attempt `attempt` (1-based).
    pub fn backoff_ms(&self, attempt: u32) -> Millis {
        let initial = self.retry.initial_backoff_secs.saturating_mul(1000);
        let cap = self.retry.max_backoff_secs.saturating_mul(1000);
        let shift = attempt.saturating_sub(1).min(30);
        let delay = initial.saturating_mul(1u64 << shift).min(cap);
        i64::try_from(delay).unwrap_or(i64::MAX)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StepEvent {
    /// Driver: every dependency is succeeded or skipped.
    Unblock,
    /// Driver: take a ready step (open its gate, hand it to an operator, or dispatch it).
    Start,
    Approve {
        actor: Actor,
        comment: String,
        /// The content hash the approver was shown.
        content_hash: String,
    },
    Reject {
        actor: Actor,
        comment: String,
    },
    /// Driver: the gate's expiry passed; approvals so far no longer count.
    Lapse,
    /// Open a lapsed gate again; the person reopening it cannot approve it.
    ReopenGate {
        actor: Actor,
    },
    /// The step's resolved inputs changed; approvals given for the old content lapse.
    ContentChanged,
    Claim {
        actor: Actor,
    },
    Complete {
        actor: Actor,
        note: String,
    },
    /// Driver: the executor reports progress.
    Heartbeat,
    /// Driver: the executor answered.
    Finished {
        outcome: Outcome,
    },
    /// Driver: the post-condition check answered.
    Verified {
        ok: bool,
        evidence: serde_json::Value,
    },
    /// Driver: the executor's answer, by idempotency key, about an action in doubt.
    Reconciled {
        status: ActionStatus,
    },
    Retry {
        actor: Actor,
    },
    /// Open a denied gate again for a new decision (the asker cannot approve it).
    AskAgain {
        actor: Actor,
    },
    Skip {
        actor: Actor,
        justification: String,
    },
    /// A person resolves an outcome-unknown step.
    MarkDone {
        actor: Actor,
        evidence: String,
    },
    MarkFailed {
        actor: Actor,
        reason: String,
    },
    /// Cancel a step that has not started or is waiting for people.
    Cancel,
    /// Driver: the executor's answer to a cancel of an in-flight action.
    CancelAnswered {
        cancelled: bool,
    },
}

impl StepEvent {
    pub fn name(&self) -> &'static str {
        match self {
            StepEvent::Unblock => "unblock",
            StepEvent::Start => "start",
            StepEvent::Approve { .. } => "approve",
            StepEvent::Reject { .. } => "reject",
            StepEvent::Lapse => "lapse",
            StepEvent::ReopenGate { .. } => "reopen_gate",
            StepEvent::ContentChanged => "content_changed",
            StepEvent::Claim { .. } => "claim",
            StepEvent::Complete { .. } => "complete",
            StepEvent::Heartbeat => "heartbeat",
            StepEvent::Finished { .. } => "finished",
            StepEvent::Verified { .. } => "verified",
            StepEvent::Reconciled { .. } => "reconciled",
            StepEvent::Retry { .. } => "retry",
            StepEvent::AskAgain { .. } => "ask_again",
            StepEvent::Skip { .. } => "skip",
            StepEvent::MarkDone { .. } => "mark_done",
            StepEvent::MarkFailed { .. } => "mark_failed",
            StepEvent::Cancel => "cancel",
            StepEvent::CancelAnswered { .. } => "cancel_answered",
        }
    }

    pub fn actor(&self) -> Option<&Actor> {
        match self {
            StepEvent::Approve { actor, .. }
            | StepEvent::Reject { actor, .. }
            | StepEvent::ReopenGate { actor }
            | StepEvent::Claim { actor }
            | StepEvent::Complete { actor, .. }
            | StepEvent::Retry { actor }
            | StepEvent::AskAgain { actor }
            | StepEvent::Skip { actor, .. }
            | StepEvent::MarkDone { actor, .. }
            | StepEvent::MarkFailed { actor, .. } => Some(actor),
            _ => None,
        }
    }
}

/// What the driver does after a step transition commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepAction {
    /// Execute the operation with key (run, step, attempt).
    Dispatch { attempt: u32 },
    /// Check the post-condition.
    Verify,
    /// Ask the executor what became of the current attempt.
    QueryStatus,
    /// Ask the executor to cancel the current attempt.
    CancelInFlight,
    /// People must act (gate opened, task waiting, outcome unknown).
    NeedsPeople,
}

/// The policy's control for a person's step event (`None`: the driver's).
pub fn control_of(event: &StepEvent) -> Option<Control> {
    Some(match event {
        StepEvent::Approve { .. } => Control::ApproveGate,
        StepEvent::Reject { .. } => Control::DenyGate,
        StepEvent::ReopenGate { .. } => Control::ReopenGate,
        StepEvent::Claim { .. } => Control::Claim,
        StepEvent::Complete { .. } => Control::Complete,
        StepEvent::Retry { .. } => Control::Retry,
        StepEvent::AskAgain { .. } => Control::AskAgain,
        StepEvent::Skip { .. } => Control::Skip,
        StepEvent::MarkDone { .. } => Control::MarkDone,
        StepEvent::MarkFailed { .. } => Control::MarkFailed,
        _ => return None,
    })
}

/// The role a person's step event needs, checked before the step's state so the answer to a
/// person without it does not depend on where the step is.
pub fn check_role(ctx: &StepCtx, event: &StepEvent) -> Result<(), Refusal> {
    match (control_of(event), event.actor()) {
        (Some(control), Some(actor)) => {
            let gate = ctx.effective_gate();
            policy::require_role(control, actor, gate.as_ref().map(|g| g.role))
        }
        _ => Ok(()),
    }
}

/// Applies `event` to a step. Pure.
pub fn apply(
    state: &StepState,
    ctx: &StepCtx,
    event: &StepEvent,
    now: Millis,
) -> Result<(StepState, Vec<StepAction>), Refusal> {
    use StepStatus::*;
    check_role(ctx, event)?;
    let mut next = state.clone();
    let mut actions = Vec::new();
    let refuse = || Refusal::NotAllowed {
        what: "the step".into(),
        from: state.status.to_string(),
        event: event.name().into(),
    };
    match (state.status, event) {
        (Pending, StepEvent::Unblock) => next.status = Ready,
        (Ready, StepEvent::Start) => {
            if let Some(t) = state.not_before.filter(|t| now < *t) {
                return Err(Refusal::BackoffPending { not_before: t });
            }
            next.not_before = None;
            if ctx.effective_gate().is_some() && !gate_passed(state, ctx) {
                next.status = AwaitingApproval;
                next.gate_opened_at = Some(now);
                next.gate_lapsed = false;
                actions.push(StepAction::NeedsPeople);
            } else {
                proceed_past_gate(&mut next, ctx, now, &mut actions);
            }
        }
        (
            AwaitingApproval,
            StepEvent::Approve {
                actor,
                comment,
                content_hash,
            },
        ) => {
            let gate = ctx.effective_gate().ok_or_else(refuse)?;
            policy::check(
                Control::ApproveGate,
                actor,
                &state.parties(ctx, Some(gate.role)),
            )?;
            require_text(comment, Refusal::CommentRequired)?;
            if let Some(expired_at) =
                expiry(state, &gate).filter(|e| state.gate_lapsed || now >= *e)
            {
                return Err(Refusal::GateExpired { expired_at });
            }
            if *content_hash != ctx.content_hash {
                return Err(Refusal::ContentChanged {
                    expected: ctx.content_hash.clone(),
                });
            }
            if state
                .approvals
                .iter()
                .any(|a| a.person() == actor.person() && a.content_hash == ctx.content_hash)
            {
                return Err(Refusal::AlreadyApproved {
                    actor: actor.name.clone(),
                });
            }
            next.approvals.push(Approval {
                actor: actor.name.clone(),
                person: actor.person.clone(),
                comment: comment.clone(),
                at: now,
                content_hash: content_hash.clone(),
            });
            if gate_passed(&next, ctx) {
                proceed_past_gate(&mut next, ctx, now, &mut actions);
            }
        }
        (AwaitingApproval, StepEvent::Reject { actor, comment }) => {
            let gate = ctx.effective_gate().ok_or_else(refuse)?;
            policy::check(
                Control::DenyGate,
                actor,
                &state.parties(ctx, Some(gate.role)),
            )?;
            require_text(comment, Refusal::CommentRequired)?;
            next.status = Failed;
            next.last_error = Some(format!("rejected by {}: {comment}", actor.name));
            next.denied_by = Some(actor.name.clone());
        }
        (AwaitingApproval, StepEvent::Lapse) => {
            let gate = ctx.effective_gate().ok_or_else(refuse)?;
            match expiry(state, &gate) {
                Some(e) if now >= e && !state.gate_lapsed => {
                    next.gate_lapsed = true;
                    next.approvals.clear();
                    actions.push(StepAction::NeedsPeople);
                }
                _ => return Err(refuse()),
            }
        }
        (AwaitingApproval, StepEvent::ReopenGate { actor }) if state.gate_lapsed => {
            policy::check(Control::ReopenGate, actor, &state.parties(ctx, None))?;
            next.gate_lapsed = false;
            next.gate_opened_at = Some(now);
            next.approvals.clear();
            next.requested_by = Some(actor.name.clone());
            next.requested_by_person = actor.person.clone();
            actions.push(StepAction::NeedsPeople);
        }
        (
            Pending | Ready | AwaitingApproval | AwaitingOperator | Failed,
            StepEvent::ContentChanged,
        ) => {
            // Approvals are kept for the record but stop counting: their hash no longer matches.
            if state.status == AwaitingApproval {
                actions.push(StepAction::NeedsPeople);
            }
        }
        (AwaitingOperator, StepEvent::Claim { actor }) => {
            policy::check(Control::Claim, actor, &state.parties(ctx, None))?;
            match (&state.claimed_by, state.claimer()) {
                (Some(other), Some(person)) if person != actor.person() => {
                    return Err(Refusal::ClaimedByOther {
                        claimed_by: other.clone(),
                    })
                }
                _ => {
                    next.claimed_by = Some(actor.name.clone());
                    next.claimed_by_person = actor.person.clone();
                }
            }
        }
        (AwaitingOperator, StepEvent::Complete { actor, note }) => {
            policy::check(Control::Complete, actor, &state.parties(ctx, None))?;
            match &state.claimed_by {
                None => return Err(Refusal::NotClaimed),
                Some(other) if state.claimer() != Some(actor.person()) => {
                    return Err(Refusal::ClaimedByOther {
                        claimed_by: other.clone(),
                    })
                }
                Some(_) => {}
            }
            require_text(note, Refusal::NoteRequired)?;
            next.note = Some(note.clone());
            next.decided_by = Some(actor.name.clone());
            // An automated step handed to a person keeps what its executor found beside the
            // person's confirmation; a manual task's evidence is the note alone.
            let evidence = match (ctx.kind, &state.evidence) {
                (StepKind::Manual, _) | (_, None) => serde_json::json!({ "note": note }),
                (_, Some(found)) => serde_json::json!({ "note": note, "handed_over": found }),
            };
            finish_ok(&mut next, ctx, evidence, &mut actions);
        }
        (Dispatched | Running, StepEvent::Heartbeat) => {
            next.status = Running;
            next.heartbeat_at = Some(now);
        }
        (Dispatched | Running, StepEvent::Finished { outcome }) => {
            apply_outcome(&mut next, ctx, outcome, now, &mut actions);
        }
        (Verifying, StepEvent::Verified { ok, evidence }) => {
            next.evidence = Some(merge_evidence(state.evidence.as_ref(), evidence));
            if *ok {
                next.status = Succeeded;
            } else {
                next.status = Failed;
                next.last_error = Some("the post-condition does not hold".into());
            }
        }
        (Dispatched | Running | OutcomeUnknown, StepEvent::Reconciled { status }) => {
            match status {
                ActionStatus::Finished { outcome } => {
                    apply_outcome(&mut next, ctx, outcome, now, &mut actions)
                }
                ActionStatus::Running => {
                    if state.status == OutcomeUnknown {
                        return Err(refuse());
                    }
                    next.status = Running;
                    next.heartbeat_at = Some(now);
                }
                // The executor never saw the key: the request was lost before it arrived, so the
                // same key may be sent again. Only for a dispatch in flight; an outcome unknown
                // stays with people.
                ActionStatus::NotFound if state.status != OutcomeUnknown => {
                    next.status = Dispatched;
                    next.dispatched_at = Some(now);
                    actions.push(StepAction::Dispatch {
                        attempt: state.attempt,
                    });
                }
                ActionStatus::NotFound => return Err(refuse()),
                ActionStatus::Unknown { reason } => {
                    next.status = OutcomeUnknown;
                    next.last_error = Some(reason.clone());
                    actions.push(StepAction::NeedsPeople);
                }
            }
        }
        (Failed | OutcomeUnknown, StepEvent::Retry { actor }) => {
            policy::check(Control::Retry, actor, &state.parties(ctx, None))?;
            reset_for_retry(&mut next, actor);
        }
        (Failed, StepEvent::AskAgain { actor }) if state.denied_by.is_some() => {
            policy::check(Control::AskAgain, actor, &state.parties(ctx, None))?;
            next.status = AwaitingApproval;
            next.gate_opened_at = Some(now);
            next.gate_lapsed = false;
            next.approvals.clear();
            next.denied_by = None;
            next.last_error = None;
            next.requested_by = Some(actor.name.clone());
            next.requested_by_person = actor.person.clone();
            next.decided_by = Some(actor.name.clone());
            actions.push(StepAction::NeedsPeople);
        }
        (
            Pending | Ready | AwaitingApproval | AwaitingOperator | Failed | OutcomeUnknown,
            StepEvent::Skip {
                actor,
                justification,
            },
        ) => {
            policy::check(Control::Skip, actor, &state.parties(ctx, None))?;
            policy::justification(Control::Skip, actor, justification)?;
            if ctx.effective_gate().is_some() {
                return Err(policy::violation(
                    Control::Skip,
                    actor,
                    "a gate is approved or denied, never skipped",
                ));
            }
            next.status = Skipped;
            next.note = Some(justification.clone());
            next.decided_by = Some(actor.name.clone());
        }
        (OutcomeUnknown, StepEvent::MarkDone { actor, evidence }) => {
            policy::check(Control::MarkDone, actor, &state.parties(ctx, None))?;
            require_text(evidence, Refusal::EvidenceRequired)?;
            next.status = Succeeded;
            next.decided_by = Some(actor.name.clone());
            next.evidence =
                Some(serde_json::json!({ "marked_done_by": actor.name, "evidence": evidence }));
        }
        (OutcomeUnknown, StepEvent::MarkFailed { actor, reason }) => {
            policy::check(Control::MarkFailed, actor, &state.parties(ctx, None))?;
            require_text(reason, Refusal::ReasonRequired)?;
            next.status = Failed;
            next.decided_by = Some(actor.name.clone());
            next.last_error = Some(reason.clone());
        }
        (Pending | Ready | AwaitingApproval | AwaitingOperator | Failed, StepEvent::Cancel) => {
            next.status = Cancelled;
        }
        (Dispatched | Running | Verifying, StepEvent::Cancel) => {
            actions.push(StepAction::CancelInFlight);
        }
        (Dispatched | Running | Verifying, StepEvent::CancelAnswered { cancelled }) => {
            if *cancelled {
                next.status = Cancelled;
            } else {
                next.status = OutcomeUnknown;
                next.last_error =
                    Some("aborted while in flight; the executor could not cancel".into());
                actions.push(StepAction::NeedsPeople);
            }
        }
        _ => return Err(refuse()),
    }
    Ok((next, actions))
}

fn expiry(state: &StepState, gate: &GateSpec) -> Option<Millis> {
    let secs = gate.expires_after_secs?;
    let opened = state.gate_opened_at?;
    Some(opened.saturating_add(i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)))
}

/// Distinct approvers of the current content reach the quorum.
fn gate_passed(state: &StepState, ctx: &StepCtx) -> bool {
    let Some(gate) = ctx.effective_gate() else {
        return true;
    };
    let mut approvers: Vec<&str> = state
        .approvals
        .iter()
        .filter(|a| a.content_hash == ctx.content_hash)
        .map(Approval::person)
        .collect();
    approvers.sort_unstable();
    approvers.dedup();
    approvers.len() as u32 >= gate.quorum.max(1)
}

fn proceed_past_gate(
    next: &mut StepState,
    ctx: &StepCtx,
    now: Millis,
    actions: &mut Vec<StepAction>,
) {
    match ctx.kind {
        StepKind::Approval => {
            next.status = StepStatus::Succeeded;
            next.evidence = Some(serde_json::json!({ "approvals": next.approvals }));
        }
        // A join of plan expansion: everything it waits for is done by the time it starts.
        StepKind::Barrier => {
            next.status = StepStatus::Succeeded;
            next.evidence = Some(serde_json::json!({ "joined": true }));
        }
        StepKind::Manual => {
            next.status = StepStatus::AwaitingOperator;
            next.claimed_by = None;
            next.claimed_by_person = None;
            actions.push(StepAction::NeedsPeople);
        }
        _ => {
            next.status = StepStatus::Dispatched;
            next.attempt += 1;
            next.dispatched_at = Some(now);
            next.heartbeat_at = None;
            actions.push(StepAction::Dispatch {
                attempt: next.attempt,
            });
        }
    }
}

fn finish_ok(
    next: &mut StepState,
    ctx: &StepCtx,
    evidence: serde_json::Value,
    actions: &mut Vec<StepAction>,
) {
    next.evidence = kept_evidence(evidence);
    next.last_error = None;
    if ctx.has_postcondition {
        next.status = StepStatus::Verifying;
        actions.push(StepAction::Verify);
    } else {
        next.status = StepStatus::Succeeded;
    }
}

fn apply_outcome(
    next: &mut StepState,
    ctx: &StepCtx,
    outcome: &Outcome,
    now: Millis,
    actions: &mut Vec<StepAction>,
) {
    match outcome {
        Outcome::Succeeded { evidence } => finish_ok(next, ctx, evidence.clone(), actions),
        Outcome::Failed { message, evidence } => {
            next.evidence = kept_evidence(evidence.clone());
            next.last_error = Some(message.clone());
            if next.attempt < ctx.retry.max_attempts {
                next.status = StepStatus::Ready;
                next.not_before = Some(now.saturating_add(ctx.backoff_ms(next.attempt)));
            } else {
                next.status = StepStatus::Failed;
            }
        }
        Outcome::Unknown { reason } => {
            next.status = StepStatus::OutcomeUnknown;
            next.last_error = Some(reason.clone());
            actions.push(StepAction::QueryStatus);
        }
        Outcome::NeedsPerson { reason, evidence } => {
            // Handed to a person: the same claim-and-complete path as a manual step, with
            // what the executor found kept as the evidence the person completes.
            next.status = StepStatus::AwaitingOperator;
            next.claimed_by = None;
            next.claimed_by_person = None;
            next.last_error = None;
            next.evidence = Some(serde_json::json!({
                "handed_to_person": reason,
                "found": evidence,
            }));
            actions.push(StepAction::NeedsPeople);
        }
    }
}

fn reset_for_retry(next: &mut StepState, actor: &Actor) {
    next.status = StepStatus::Ready;
    next.not_before = None;
    next.requested_by = Some(actor.name.clone());
    next.requested_by_person = actor.person.clone();
    next.claimed_by = None;
    next.claimed_by_person = None;
    next.approvals.clear();
    next.gate_lapsed = false;
    next.denied_by = None;
    next.decided_by = Some(actor.name.clone());
}

/// Evidence as kept in the state: none rather than a JSON `null`, because the stored state is
/// JSON and `Some(null)` would read back as `None` — the state on disk must equal the replay of
/// its logged events.
fn kept_evidence(evidence: serde_json::Value) -> Option<serde_json::Value> {
    (!evidence.is_null()).then_some(evidence)
}

fn merge_evidence(
    before: Option<&serde_json::Value>,
    check: &serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({ "action": before.cloned().unwrap_or(serde_json::Value::Null), "postcondition": check })
}
