//! Approval gates: approve (towards the quorum), deny, lapse when the gate expires, reopen a
//! lapsed gate, ask again at a denied one; and what a step does once its gate is passed.

use super::{Approval, StepAction, StepCtx, StepEvent, StepState, StepStatus, Transition};
use crate::engine::machine::{require_text, Actor, Millis, Refusal};
use crate::engine::policy::{self, Control};
use crate::knowledge::plan::{GateSpec, StepKind};

pub(super) fn apply(t: &mut Transition<'_>, event: &StepEvent) -> Result<(), Refusal> {
    use StepStatus::*;
    match (t.from.status, event) {
        (
            AwaitingApproval,
            StepEvent::Approve {
                actor,
                comment,
                content_hash,
            },
        ) => approve(t, actor, comment, content_hash)?,
        (AwaitingApproval, StepEvent::Reject { actor, comment }) => {
            let gate = t.ctx.effective_gate().ok_or_else(|| t.refused())?;
            policy::check(Control::DenyGate, actor, &t.parties(Some(gate.role)))?;
            require_text(comment, Refusal::CommentRequired)?;
            t.next.status = Failed;
            t.next.last_error = Some(format!("rejected by {}: {comment}", actor.name));
            t.next.denied_by = Some(actor.name.clone());
        }
        (AwaitingApproval, StepEvent::Lapse) => {
            let gate = t.ctx.effective_gate().ok_or_else(|| t.refused())?;
            match expiry(t.from, &gate) {
                Some(e) if t.now >= e && !t.from.gate_lapsed => {
                    t.next.gate_lapsed = true;
                    t.next.approvals.clear();
                    t.needs_people();
                }
                _ => return Err(t.refused()),
            }
        }
        (AwaitingApproval, StepEvent::ReopenGate { actor }) if t.from.gate_lapsed => {
            policy::check(Control::ReopenGate, actor, &t.parties(None))?;
            t.next.gate_lapsed = false;
            t.next.gate_opened_at = Some(t.now);
            t.next.approvals.clear();
            t.requested_by(actor);
            t.needs_people();
        }
        (Failed, StepEvent::AskAgain { actor }) if t.from.denied_by.is_some() => {
            policy::check(Control::AskAgain, actor, &t.parties(None))?;
            t.next.status = AwaitingApproval;
            t.next.gate_opened_at = Some(t.now);
            t.next.gate_lapsed = false;
            t.next.approvals.clear();
            t.next.denied_by = None;
            t.next.last_error = None;
            t.requested_by(actor);
            t.next.decided_by = Some(actor.name.clone());
            t.needs_people();
        }
        _ => return Err(t.refused()),
    }
    Ok(())
}

/// One approval, bound to the content the approver was shown; the step moves on once the
/// quorum of distinct people is reached.
fn approve(
    t: &mut Transition<'_>,
    actor: &Actor,
    comment: &str,
    content_hash: &str,
) -> Result<(), Refusal> {
    let gate = t.ctx.effective_gate().ok_or_else(|| t.refused())?;
    policy::check(Control::ApproveGate, actor, &t.parties(Some(gate.role)))?;
    require_text(comment, Refusal::CommentRequired)?;
    if let Some(expired_at) = expiry(t.from, &gate).filter(|e| t.from.gate_lapsed || t.now >= *e) {
        return Err(Refusal::GateExpired { expired_at });
    }
    if content_hash != t.ctx.content_hash {
        return Err(Refusal::ContentChanged {
            expected: t.ctx.content_hash.clone(),
        });
    }
    if t.from
        .approvals
        .iter()
        .any(|a| a.person() == actor.person() && a.content_hash == t.ctx.content_hash)
    {
        return Err(Refusal::AlreadyApproved {
            actor: actor.name.clone(),
        });
    }
    t.next.approvals.push(Approval {
        actor: actor.name.clone(),
        person: actor.person.clone(),
        comment: comment.to_string(),
        at: t.now,
        content_hash: content_hash.to_string(),
    });
    if passed(&t.next, t.ctx) {
        proceed_past(t);
    }
    Ok(())
}

/// When the gate lapses: its expiry counted from when it opened.
fn expiry(state: &StepState, gate: &GateSpec) -> Option<Millis> {
    let secs = gate.expires_after_secs?;
    let opened = state.gate_opened_at?;
    Some(opened.saturating_add(i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)))
}

/// Distinct approvers of the current content reach the quorum.
pub(super) fn passed(state: &StepState, ctx: &StepCtx) -> bool {
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

/// Past its gate (or with none), a step does what its kind says.
pub(super) fn proceed_past(t: &mut Transition<'_>) {
    match t.ctx.kind {
        StepKind::Approval => {
            t.next.status = StepStatus::Succeeded;
            t.next.evidence = Some(serde_json::json!({ "approvals": t.next.approvals }));
        }
        // A join of plan expansion: everything it waits for is done by the time it starts.
        StepKind::Barrier => {
            t.next.status = StepStatus::Succeeded;
            t.next.evidence = Some(serde_json::json!({ "joined": true }));
        }
        StepKind::Manual => {
            t.next.status = StepStatus::AwaitingOperator;
            t.next.claimed_by = None;
            t.next.claimed_by_person = None;
            t.needs_people();
        }
        _ => {
            t.next.status = StepStatus::Dispatched;
            t.next.attempt += 1;
            t.next.dispatched_at = Some(t.now);
            t.next.heartbeat_at = None;
            t.actions.push(StepAction::Dispatch {
                attempt: t.next.attempt,
            });
        }
    }
}
