//! The step moved along by the driver and by what happens around it: unblocked once its inputs
//! are done, started (into its gate, to a person or to its executor), its content changed under
//! it, cancelled (at once, or by asking the executor when it is in flight).

use super::{gate, StepAction, StepEvent, StepStatus, Transition};
use crate::engine::machine::Refusal;

pub(super) fn apply(t: &mut Transition<'_>, event: &StepEvent) -> Result<(), Refusal> {
    use StepStatus::*;
    match (t.from.status, event) {
        (Pending, StepEvent::Unblock) => t.next.status = Ready,
        (Ready, StepEvent::Start) => {
            if let Some(at) = t.from.not_before.filter(|at| t.now < *at) {
                return Err(Refusal::BackoffPending { not_before: at });
            }
            t.next.not_before = None;
            if t.ctx.effective_gate().is_some() && !gate::passed(t.from, t.ctx) {
                t.next.status = AwaitingApproval;
                t.next.gate_opened_at = Some(t.now);
                t.next.gate_lapsed = false;
                t.needs_people();
            } else {
                gate::proceed_past(t);
            }
        }
        (
            Pending | Ready | AwaitingApproval | AwaitingOperator | Failed,
            StepEvent::ContentChanged,
        ) => {
            // Approvals are kept for the record but stop counting: their hash no longer matches.
            if t.from.status == AwaitingApproval {
                t.needs_people();
            }
        }
        (Pending | Ready | AwaitingApproval | AwaitingOperator | Failed, StepEvent::Cancel) => {
            t.next.status = Cancelled;
        }
        (Dispatched | Running | Verifying, StepEvent::Cancel) => {
            t.actions.push(StepAction::CancelInFlight);
        }
        (Dispatched | Running | Verifying, StepEvent::CancelAnswered { cancelled }) => {
            if *cancelled {
                t.next.status = Cancelled;
            } else {
                t.next.status = OutcomeUnknown;
                t.next.last_error =
                    Some("aborted while in flight; the executor could not cancel".into());
                t.needs_people();
            }
        }
        _ => return Err(t.refused()),
    }
    Ok(())
}
