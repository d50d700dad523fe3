//! The step state machine: pending → ready → (awaiting approval | awaiting operator) →
//! dispatched → running → verifying → succeeded | failed | skipped | cancelled, plus
//! outcome unknown for a step whose result was lost.
//!
//! Outcome unknown is never left by an automatic retry: the driver asks the executor for the
//! action's status by its idempotency key; only a finished answer resolves it, otherwise a person
//! decides (retry, mark done with evidence, fail).

use serde::{Deserialize, Serialize};

use super::{Actor, Millis, Refusal, Role};
use crate::engine::executor::{ActionStatus, Outcome};
use crate::engine::policy::{self, Control, Parties};
use crate::knowledge::plan::{GateSpec, PlannedStep, RetryPolicy, StepKind};

mod decision;
mod execution;
mod gate;
mod lifecycle;
mod status;
mod task;

pub use status::StepStatus;

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
///
/// Flat on purpose rather than one variant per status: it is stored as this JSON object in the
/// `steps.state` column (beside `status` and `attempt`), the stored state must equal the replay
/// of its logged events, and most fields outlive the status that set them — approvals stay for
/// the record after the gate passes, `last_error` and `evidence` ride through a retry's backoff,
/// `decided_by` and `note` stay on a skipped or completed step. What a status allows is enforced
/// by the transitions (`step/*.rs`) and offered to people through [`super::StepControl`].
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
///
/// The role comes first, whatever the state (see [`check_role`]); then the event's family decides
/// from the step's state: [`lifecycle`] (the driver moving it along, content changes, cancel),
/// [`gate`] (approvals), [`task`] (manual work), [`execution`] (what the executor answers) and
/// [`decision`] (a person settling a failure or an unknown outcome).
pub fn apply(
    state: &StepState,
    ctx: &StepCtx,
    event: &StepEvent,
    now: Millis,
) -> Result<(StepState, Vec<StepAction>), Refusal> {
    check_role(ctx, event)?;
    let mut t = Transition {
        from: state,
        next: state.clone(),
        ctx,
        now,
        actions: Vec::new(),
        event: event.name(),
    };
    match event {
        StepEvent::Unblock
        | StepEvent::Start
        | StepEvent::ContentChanged
        | StepEvent::Cancel
        | StepEvent::CancelAnswered { .. } => lifecycle::apply(&mut t, event)?,
        StepEvent::Approve { .. }
        | StepEvent::Reject { .. }
        | StepEvent::Lapse
        | StepEvent::ReopenGate { .. }
        | StepEvent::AskAgain { .. } => gate::apply(&mut t, event)?,
        StepEvent::Claim { .. } | StepEvent::Complete { .. } => task::apply(&mut t, event)?,
        StepEvent::Heartbeat
        | StepEvent::Finished { .. }
        | StepEvent::Verified { .. }
        | StepEvent::Reconciled { .. } => execution::apply(&mut t, event)?,
        StepEvent::Retry { .. }
        | StepEvent::Skip { .. }
        | StepEvent::MarkDone { .. }
        | StepEvent::MarkFailed { .. } => decision::apply(&mut t, event)?,
    }
    Ok((t.next, t.actions))
}

/// One transition being worked out: the state before (never changed), the state after and the
/// actions for the driver once it commits.
pub(super) struct Transition<'a> {
    pub(super) from: &'a StepState,
    pub(super) next: StepState,
    pub(super) ctx: &'a StepCtx,
    pub(super) now: Millis,
    pub(super) actions: Vec<StepAction>,
    /// The event's name, for the refusal of an event the state does not take.
    event: &'static str,
}

impl Transition<'_> {
    /// The event is not one the step takes in its state.
    pub(super) fn refused(&self) -> Refusal {
        Refusal::NotAllowed {
            what: "the step".into(),
            from: self.from.status.to_string(),
            event: self.event.into(),
        }
    }

    /// The people around a decision on the step as it was (see [`StepState::parties_with`]).
    pub(super) fn parties(&self, gate_role: Option<Role>) -> Parties<'_> {
        self.from.parties(self.ctx, gate_role)
    }

    /// People must act: a gate opened, a task is waiting, an outcome is unknown.
    pub(super) fn needs_people(&mut self) {
        self.actions.push(StepAction::NeedsPeople);
    }

    /// `actor` asked for the step's current action: four-eyes keeps them off its gate.
    pub(super) fn requested_by(&mut self, actor: &Actor) {
        self.next.requested_by = Some(actor.name.clone());
        self.next.requested_by_person = actor.person.clone();
    }
}
