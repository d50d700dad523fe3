//! Work a person does: claim the task (so nobody else does it at the same time), then complete
//! it with a note. Manual steps come here, and automated steps the executor handed to a person.

use super::{execution, StepEvent, StepStatus, Transition};
use crate::engine::machine::{require_text, Refusal};
use crate::engine::policy::{self, Control};
use crate::knowledge::plan::StepKind;

pub(super) fn apply(t: &mut Transition<'_>, event: &StepEvent) -> Result<(), Refusal> {
    use StepStatus::*;
    match (t.from.status, event) {
        (AwaitingOperator, StepEvent::Claim { actor }) => {
            policy::check(Control::Claim, actor, &t.parties(None))?;
            match (&t.from.claimed_by, t.from.claimer()) {
                (Some(other), Some(person)) if person != actor.person() => {
                    return Err(Refusal::ClaimedByOther {
                        claimed_by: other.clone(),
                    })
                }
                _ => {
                    t.next.claimed_by = Some(actor.name.clone());
                    t.next.claimed_by_person = actor.person.clone();
                }
            }
        }
        (AwaitingOperator, StepEvent::Complete { actor, note }) => {
            policy::check(Control::Complete, actor, &t.parties(None))?;
            match &t.from.claimed_by {
                None => return Err(Refusal::NotClaimed),
                Some(other) if t.from.claimer() != Some(actor.person()) => {
                    return Err(Refusal::ClaimedByOther {
                        claimed_by: other.clone(),
                    })
                }
                Some(_) => {}
            }
            require_text(note, Refusal::NoteRequired)?;
            t.next.note = Some(note.clone());
            t.next.decided_by = Some(actor.name.clone());
            // An automated step handed to a person keeps what its executor found beside the
            // person's confirmation; a manual task's evidence is the note alone.
            let evidence = match (t.ctx.kind, &t.from.evidence) {
                (StepKind::Manual, _) | (_, None) => serde_json::json!({ "note": note }),
                (_, Some(found)) => serde_json::json!({ "note": note, "handed_over": found }),
            };
            execution::finish_ok(t, evidence);
        }
        _ => return Err(t.refused()),
    }
    Ok(())
}
