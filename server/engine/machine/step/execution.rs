//! What the executor says about a dispatched step: progress, its answer, the post-condition's
//! verdict, and (after a crash or a lost answer) the status it reports by idempotency key.

use super::{StepAction, StepEvent, StepStatus, Transition};
use crate::engine::executor::{ActionStatus, Outcome};
use crate::engine::machine::Refusal;

pub(super) fn apply(t: &mut Transition<'_>, event: &StepEvent) -> Result<(), Refusal> {
    use StepStatus::*;
    match (t.from.status, event) {
        (Dispatched | Running, StepEvent::Heartbeat) => {
            t.next.status = Running;
            t.next.heartbeat_at = Some(t.now);
        }
        (Dispatched | Running, StepEvent::Finished { outcome }) => answered(t, outcome),
        (Verifying, StepEvent::Verified { ok, evidence }) => {
            t.next.evidence = Some(merge_evidence(t.from.evidence.as_ref(), evidence));
            if *ok {
                t.next.status = Succeeded;
            } else {
                t.next.status = Failed;
                t.next.last_error = Some("the post-condition does not hold".into());
            }
        }
        (Dispatched | Running | OutcomeUnknown, StepEvent::Reconciled { status }) => {
            reconciled(t, status)?
        }
        _ => return Err(t.refused()),
    }
    Ok(())
}

/// The executor's answer, by idempotency key, about an action in doubt.
fn reconciled(t: &mut Transition<'_>, status: &ActionStatus) -> Result<(), Refusal> {
    use StepStatus::*;
    match status {
        ActionStatus::Finished { outcome } => answered(t, outcome),
        ActionStatus::Running => {
            if t.from.status == OutcomeUnknown {
                return Err(t.refused());
            }
            t.next.status = Running;
            t.next.heartbeat_at = Some(t.now);
        }
        // The executor never saw the key: the request was lost before it arrived, so the
        // same key may be sent again. Only for a dispatch in flight; an outcome unknown
        // stays with people.
        ActionStatus::NotFound if t.from.status != OutcomeUnknown => {
            t.next.status = Dispatched;
            t.next.dispatched_at = Some(t.now);
            t.actions.push(StepAction::Dispatch {
                attempt: t.from.attempt,
            });
        }
        ActionStatus::NotFound => return Err(t.refused()),
        ActionStatus::Unknown { reason } => {
            t.next.status = OutcomeUnknown;
            t.next.last_error = Some(reason.clone());
            t.needs_people();
        }
    }
    Ok(())
}

/// The work is done: verify its post-condition if it has one, else it succeeded.
pub(super) fn finish_ok(t: &mut Transition<'_>, evidence: serde_json::Value) {
    t.next.evidence = kept_evidence(evidence);
    t.next.last_error = None;
    if t.ctx.has_postcondition {
        t.next.status = StepStatus::Verifying;
        t.actions.push(StepAction::Verify);
    } else {
        t.next.status = StepStatus::Succeeded;
    }
}

/// The executor answered for the current attempt.
fn answered(t: &mut Transition<'_>, outcome: &Outcome) {
    match outcome {
        Outcome::Succeeded { evidence } => finish_ok(t, evidence.clone()),
        Outcome::Failed { message, evidence } => {
            t.next.evidence = kept_evidence(evidence.clone());
            t.next.last_error = Some(message.clone());
            if t.next.attempt < t.ctx.retry.max_attempts {
                t.next.status = StepStatus::Ready;
                t.next.not_before = Some(t.now.saturating_add(t.ctx.backoff_ms(t.next.attempt)));
            } else {
                t.next.status = StepStatus::Failed;
            }
        }
        Outcome::Unknown { reason } => {
            t.next.status = StepStatus::OutcomeUnknown;
            t.next.last_error = Some(reason.clone());
            t.actions.push(StepAction::QueryStatus);
        }
        Outcome::NeedsPerson { reason, evidence } => {
            // Handed to a person: the same claim-and-complete path as a manual step, with
            // what the executor found kept as the evidence the person completes.
            t.next.status = StepStatus::AwaitingOperator;
            t.next.claimed_by = None;
            t.next.claimed_by_person = None;
            t.next.last_error = None;
            t.next.evidence = Some(serde_json::json!({
                "handed_to_person": reason,
                "found": evidence,
            }));
            t.needs_people();
        }
    }
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
