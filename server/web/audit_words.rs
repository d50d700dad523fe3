//! Audit events in plain words: one sentence per event kind and payload, for the Audit page and
//! the change record ("approver2 approved the gate 'Approve stopping production services': 'CAB
//! approved CHG-2041'").
//!
//! The audit log stores what the engine serialised (`run.approve_start` with `{event: {actor,
//! comment}, from, to}`); people should never have to read that. Kinds this module does not know
//! (new ones from other parts of the product) still get a sentence: the kind's words, the person,
//! and any comment, justification or reason the payload carries — never the raw JSON.

use serde_json::Value;

use crate::engine::audit::{AuditEvent, EventKind};

/// The free text a person attached to an event (comment, justification, reason, note, evidence),
/// whole: change records must never cut a comment mid-word.
pub fn person_text(payload: &Value) -> Option<String> {
    for key in [
        "comment",
        "justification",
        "reason",
        "note",
        "evidence",
        "text",
    ] {
        for at in [Some(payload), payload.get("event")] {
            if let Some(v) = at.and_then(|p| p.get(key)).and_then(Value::as_str) {
                if !v.trim().is_empty() {
                    return Some(v.to_string());
                }
            }
        }
    }
    None
}

/// The state an event moved its run or step into, when it is a transition.
pub fn new_state(payload: &Value) -> Option<&str> {
    payload.get("to").and_then(Value::as_str)
}

/// Internal state names in words (`awaiting_approval` → "awaiting approval").
pub fn state_words(state: &str) -> String {
    state.replace('_', " ")
}

fn quoted(text: &str) -> String {
    format!("'{text}'")
}

/// `: 'text'` when the event carries a person's text, else nothing.
fn with_text(payload: &Value) -> String {
    person_text(payload)
        .map(|t| format!(": {}", quoted(&t)))
        .unwrap_or_default()
}

/// The event kind without its `run.`/`step.` prefix, in words (`reopen_gate` → "reopen gate").
pub fn kind_words(kind: &str) -> String {
    let tail = kind.rsplit('.').next().unwrap_or(kind);
    state_words(tail)
}

/// One sentence for `e`. `step_title` names a step by its title (falls back to its id).
pub fn describe(e: &AuditEvent, step_title: &dyn Fn(&str) -> Option<String>) -> String {
    let who = e.actor.as_str();
    let p = &e.payload;
    let step = e
        .step_id
        .as_deref()
        .map(|id| quoted(&step_title(id).unwrap_or_else(|| id.to_string())))
        .unwrap_or_else(|| "a step".to_string());
    let to = new_state(p).map(state_words).unwrap_or_default();
    match &e.kind {
        EventKind::RunCreated => {
            let ticket = p
                .get("change_ticket")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(|t| format!(" for change {t}"))
                .unwrap_or_default();
            format!("{who} created the run{ticket}")
        }
        EventKind::RunSubmit => format!("{who} asked for approval to start the run"),
        EventKind::RunApproveStart => {
            format!("{who} approved the start of the run{}", with_text(p))
        }
        EventKind::RunPause => format!("{who} paused the run{}", with_text(p)),
        EventKind::RunResume => format!("{who} resumed the run"),
        EventKind::RunAbort => format!("{who} aborted the run{}", with_text(p)),
        EventKind::RunCompleted => format!("The run finished: {to}"),
        EventKind::RunStalled => {
            let at = p
                .get("event")
                .and_then(|ev| ev.get("step_id"))
                .and_then(Value::as_str)
                .map(|id| format!(" at {}", quoted(&step_title(id).unwrap_or(id.to_string()))))
                .unwrap_or_default();
            format!("The run stopped{at} and waits for a person")
        }
        EventKind::RunReopen => format!("{who} reopened the failed run"),
        EventKind::RunUndo => format!("{who} asked to undo the run's changes{}", with_text(p)),
        EventKind::RunHold => format!(
            "A gate was denied: the run is on hold until someone asks again, aborts or undoes it{}",
            with_text(p)
        ),
        EventKind::RunPreflight => {
            let findings = p
                .pointer("/event/preflight/findings")
                .and_then(Value::as_array);
            let count = |blocking: bool| {
                findings.map_or(0, |f| {
                    f.iter()
                        .filter(|x| {
                            (x.get("severity").and_then(Value::as_str) == Some("error")
                                && x.get("result").and_then(Value::as_str) == Some("fail"))
                                == blocking
                        })
                        .count()
                })
            };
            format!(
                "Preflight ran again with the freshest facts: {} error(s) that block the start, {} other finding(s) to look at",
                count(true),
                count(false)
            )
        }
        EventKind::RunOverrideFinding => format!(
            "{who} overrode the preflight finding {}{}",
            quoted(
                p.pointer("/event/finding")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            ),
            with_text(p)
        ),
        EventKind::RunExtendWindow => format!("{who} extended the change window{}", with_text(p)),
        EventKind::RunWindowWarning => {
            "The forecast finish passes the end of the change window".to_string()
        }
        EventKind::RunWindowHold => {
            let at = p
                .pointer("/event/step_id")
                .and_then(Value::as_str)
                .map(|id| {
                    format!(
                        " before {}",
                        quoted(&step_title(id).unwrap_or(id.to_string()))
                    )
                })
                .unwrap_or_default();
            format!("The change window ended: the run holds{at} until the window is extended, or the run is aborted or undone")
        }
        EventKind::StepUnblock => format!("Step {step} became ready"),
        EventKind::StepStart => match new_state(p) {
            Some("awaiting_approval") => format!("The gate {step} opened for approval"),
            Some("awaiting_operator") => format!("The manual task {step} waits for an operator"),
            _ => format!("Step {step} started"),
        },
        EventKind::StepApprove => format!("{who} approved the gate {step}{}", with_text(p)),
        EventKind::StepReject => format!("{who} denied the gate {step}{}", with_text(p)),
        EventKind::StepLapse => {
            format!("The approvals of the gate {step} lapsed (the gate expired)")
        }
        EventKind::StepReopenGate => format!("{who} reopened the gate {step}"),
        EventKind::StepContentChanged => {
            format!("Step {step} changed after approval; its approvals no longer count")
        }
        EventKind::StepClaim => format!("{who} claimed the manual task {step}"),
        EventKind::StepComplete => format!(
            "{who} completed the manual task {step}{}",
            person_text(p)
                .map(|t| format!(" and recorded: {}", quoted(&t)))
                .unwrap_or_default()
        ),
        EventKind::StepHeartbeat => format!("Step {step} is still running"),
        EventKind::StepFinished => format!("Step {step} answered: {to}"),
        EventKind::StepVerified => {
            let ok = p
                .get("event")
                .and_then(|ev| ev.get("ok"))
                .and_then(Value::as_bool);
            match ok {
                Some(true) => format!("Step {step} was verified"),
                Some(false) => format!("Step {step} did NOT verify: {to}"),
                None => format!("Step {step} was checked: {to}"),
            }
        }
        EventKind::StepReconciled => format!("Step {step} was reconciled with its executor: {to}"),
        EventKind::StepRetry => format!("{who} retried step {step}"),
        EventKind::StepAskAgain => format!("{who} asked again at the denied gate {step}"),
        EventKind::StepSkip => format!("{who} skipped step {step}{}", with_text(p)),
        EventKind::StepMarkDone => format!("{who} marked step {step} done{}", with_text(p)),
        EventKind::StepMarkFailed => format!("{who} marked step {step} failed{}", with_text(p)),
        EventKind::StepCancel => format!("Step {step} was cancelled"),
        EventKind::StepCancelAnswered => format!("Step {step}'s cancellation was answered: {to}"),
        EventKind::StepAmended => format!("{who} amended step {step} (its content changed)"),
        EventKind::Comment => match &e.step_id {
            Some(_) => format!("{who} commented on step {step}{}", with_text(p)),
            None => format!("{who} commented{}", with_text(p)),
        },
        EventKind::VersionsUpdated => {
            let n = p
                .get("changes")
                .and_then(Value::as_array)
                .map(|c| c.len())
                .unwrap_or(0);
            format!("{who} updated the Data Center's recorded versions from the agents' facts ({n} changes)")
        }
        EventKind::CampaignCreated => format!(
            "{who} planned campaign {} for {}: {} stage(s)",
            p.get("campaign").and_then(Value::as_str).unwrap_or("?"),
            p.get("data_center").and_then(Value::as_str).unwrap_or("?"),
            p.get("stages")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        ),
        EventKind::CampaignStageRun => format!(
            "{who} created the run of stage {} of campaign {}",
            p.get("stage").and_then(Value::as_i64).unwrap_or(0),
            p.get("campaign").and_then(Value::as_str).unwrap_or("?")
        ),
        EventKind::CampaignDone => format!(
            "Every stage of campaign {} succeeded",
            p.get("campaign").and_then(Value::as_str).unwrap_or("?")
        ),
        other => generic(who, other.as_str(), &step, e.step_id.is_some(), p),
    }
}

/// Kinds this module does not name (e.g. policy overrides added by other parts): the kind's
/// words, the person, the step, any state entered and the person's text.
fn generic(who: &str, kind: &str, step: &str, has_step: bool, p: &Value) -> String {
    let words = kind.replace(['.', '_'], " ");
    let on = if has_step {
        format!(" on step {step}")
    } else {
        String::new()
    };
    let to = new_state(p)
        .map(|s| format!(" (now {})", state_words(s)))
        .unwrap_or_default();
    format!("{who}: {words}{on}{to}{}", with_text(p))
}

/// Whether a person (not the engine) made this decision.
pub fn by_person(e: &AuditEvent) -> bool {
    e.actor != crate::engine::machine::ENGINE_ACTOR
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(kind: &str, step: Option<&str>, actor: &str, payload: Value) -> AuditEvent {
        AuditEvent {
            id: 1,
            run_id: Some("r".into()),
            step_id: step.map(String::from),
            actor: actor.into(),
            at: 0,
            kind: kind.into(),
            payload,
            prev_hash: String::new(),
            hash: String::new(),
            sig: None,
        }
    }

    fn titles(id: &str) -> Option<String> {
        (id == "approve-stop").then(|| "Approve stopping production services".to_string())
    }

    #[test]
    fn a_gate_approval_reads_as_a_sentence_with_the_whole_comment() {
        let e = ev(
            "step.approve",
            Some("approve-stop"),
            "approver2",
            json!({"event": {"event": "approve", "actor": {"name": "approver2", "roles": []},
                   "comment": "CAB approved CHG-2041", "content_hash": "ab"},
                   "from": "awaiting_approval", "to": "ready", "attempt": 0}),
        );
        assert_eq!(
            describe(&e, &titles),
            "approver2 approved the gate 'Approve stopping production services': 'CAB approved CHG-2041'"
        );
    }

    #[test]
    fn a_manual_task_names_who_did_it_and_what_they_recorded() {
        let e = ev(
            "step.complete",
            Some("setup@DC1"),
            "operator",
            json!({"event": {"event": "complete", "note": "Setup finished, no warnings"}}),
        );
        assert_eq!(
            describe(&e, &titles),
            "operator completed the manual task 'setup@DC1' and recorded: 'Setup finished, no warnings'"
        );
    }

    #[test]
    fn an_unknown_override_kind_still_reads_in_words_with_its_justification() {
        let e = ev(
            "policy.preflight_override",
            None,
            "carol",
            json!({"justification": "disk checked by hand", "findings": [1, 2]}),
        );
        let s = describe(&e, &titles);
        assert_eq!(
            s,
            "carol: policy preflight override: 'disk checked by hand'"
        );
        assert!(!s.contains('{'));
    }

    #[test]
    fn the_engines_own_transitions_name_the_state_in_words() {
        let e = ev(
            "run.completed",
            None,
            "lockstep",
            json!({"event": {"event": "completed"}, "from": "running", "to": "succeeded"}),
        );
        assert_eq!(describe(&e, &titles), "The run finished: succeeded");
        let e = ev(
            "step.start",
            Some("approve-stop"),
            "lockstep",
            json!({"to": "awaiting_approval"}),
        );
        assert_eq!(
            describe(&e, &titles),
            "The gate 'Approve stopping production services' opened for approval"
        );
    }
}
