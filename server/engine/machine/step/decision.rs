//! A person settling a step the machine cannot: retry it, skip it with a justification, or say
//! what became of an action whose outcome is unknown (done, with evidence; failed, with a reason).

use super::{StepEvent, StepStatus, Transition};
use crate::engine::machine::{require_text, Actor, Refusal};
use crate::engine::policy::{self, Control};

pub(super) fn apply(t: &mut Transition<'_>, event: &StepEvent) -> Result<(), Refusal> {
    use StepStatus::*;
    match (t.from.status, event) {
        (Failed | OutcomeUnknown, StepEvent::Retry { actor }) => {
            policy::check(Control::Retry, actor, &t.parties(None))?;
            reset_for_retry(t, actor);
        }
        (
            Pending | Ready | AwaitingApproval | AwaitingOperator | Failed | OutcomeUnknown,
            StepEvent::Skip {
                actor,
                justification,
            },
        ) => {
            policy::check(Control::Skip, actor, &t.parties(None))?;
            policy::justification(Control::Skip, actor, justification)?;
            if t.ctx.effective_gate().is_some() {
                return Err(policy::violation(
                    Control::Skip,
                    actor,
                    "a gate is approved or denied, never skipped",
                ));
            }
            t.next.status = Skipped;
            t.next.note = Some(justification.clone());
            t.next.decided_by = Some(actor.name.clone());
        }
        (OutcomeUnknown, StepEvent::MarkDone { actor, evidence }) => {
            policy::check(Control::MarkDone, actor, &t.parties(None))?;
            require_text(evidence, Refusal::EvidenceRequired)?;
            t.next.status = Succeeded;
            t.next.decided_by = Some(actor.name.clone());
            t.next.evidence =
                Some(serde_json::json!({ "marked_done_by": actor.name, "evidence": evidence }));
        }
        (OutcomeUnknown, StepEvent::MarkFailed { actor, reason }) => {
            policy::check(Control::MarkFailed, actor, &t.parties(None))?;
            require_text(reason, Refusal::ReasonRequired)?;
            t.next.status = Failed;
            t.next.decided_by = Some(actor.name.clone());
            t.next.last_error = Some(reason.clone());
        }
        _ => return Err(t.refused()),
    }
    Ok(())
}

/// Back to ready for a new attempt asked for by `actor`: claims, approvals and a denial are for
/// the attempt that failed.
fn reset_for_retry(t: &mut Transition<'_>, actor: &Actor) {
    t.next.status = StepStatus::Ready;
    t.next.not_before = None;
    t.requested_by(actor);
    t.next.claimed_by = None;
    t.next.claimed_by_person = None;
    t.next.approvals.clear();
    t.next.gate_lapsed = false;
    t.next.denied_by = None;
    t.next.decided_by = Some(actor.name.clone());
}
