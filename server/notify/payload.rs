//! What is worth telling people (a gate waiting, a step failed or needing an operator, a run
//! finished), read from committed audit events, and the bodies sent for it: Lockstep's own JSON,
//! a Microsoft Teams message (an Adaptive Card, as Teams Workflows incoming webhooks take), or a
//! Slack incoming-webhook message.
//!
//! `run_status` (every change of a run's status, with its change ticket) is for change-management
//! systems: it goes only to receivers that list it in their `events`.

use serde_json::{json, Value};

use crate::engine::audit::kind::Subject;
use crate::engine::audit::AuditEvent;
use crate::engine::machine::{RunStatus, StepStatus};

pub use crate::config::notify::{Format, NotifyKind};

/// One thing to tell, derived from one audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub kind: NotifyKind,
    pub audit_event_id: i64,
    pub run_id: Option<String>,
    pub step_id: Option<String>,
    /// The state entered (`awaiting_approval`, `failed`, `succeeded`, ...).
    pub status: String,
    pub at: i64,
    pub actor: String,
}

/// The notification an audit event calls for, if any. Transitions carry `{from, to}` in their
/// payload; only entering a state that needs a person, or a run ending, is worth a message.
pub fn classify(e: &AuditEvent) -> Option<Notification> {
    let to = e.payload.get("to")?.as_str()?;
    let from = e.payload.get("from").and_then(Value::as_str);
    if from == Some(to) {
        return None;
    }
    let kind = match e.kind.subject() {
        Subject::Step => match StepStatus::parse(to)? {
            StepStatus::AwaitingApproval => NotifyKind::GateWaiting,
            StepStatus::AwaitingOperator | StepStatus::OutcomeUnknown => NotifyKind::NeedsOperator,
            StepStatus::Failed => NotifyKind::StepFailed,
            _ => return None,
        },
        Subject::Run => match RunStatus::parse(to)? {
            RunStatus::AwaitingStartApproval => NotifyKind::GateWaiting,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Aborted | RunStatus::Undone => {
                NotifyKind::RunFinished
            }
            _ => return None,
        },
        Subject::Other => return None,
    };
    Some(Notification {
        kind,
        audit_event_id: e.id,
        run_id: e.run_id.clone(),
        step_id: e.step_id.clone(),
        status: to.to_string(),
        at: e.at,
        actor: e.actor.clone(),
    })
}

/// One line for people: what happened, to which run and step.
pub fn summary(n: &Notification, step_title: Option<&str>) -> String {
    let run = n.run_id.as_deref().unwrap_or("?");
    let step = match (&n.step_id, step_title) {
        (Some(id), Some(t)) => format!("step {id} \"{t}\""),
        (Some(id), None) => format!("step {id}"),
        _ => String::new(),
    };
    match n.kind {
        NotifyKind::GateWaiting if step.is_empty() => {
            format!("Run {run} is waiting for approval to start")
        }
        NotifyKind::GateWaiting => format!("Run {run}: {step} is waiting for approval"),
        NotifyKind::StepFailed => format!("Run {run}: {step} failed"),
        NotifyKind::NeedsOperator => {
            format!(
                "Run {run}: {step} needs an operator ({})",
                n.status.replace('_', " ")
            )
        }
        NotifyKind::RunFinished => format!("Run {run} finished: {}", n.status),
        NotifyKind::RunStatus => format!("Run {run} is now {}", n.status.replace('_', " ")),
    }
}

/// Every notification an audit event calls for: [`classify`]'s, and `run_status` for any change
/// of a run's status.
pub fn classify_all(e: &AuditEvent) -> Vec<Notification> {
    let mut all: Vec<Notification> = classify(e).into_iter().collect();
    let to = e.payload.get("to").and_then(Value::as_str);
    let from = e.payload.get("from").and_then(Value::as_str);
    if let (true, Some(to)) = (e.kind.is_run(), to) {
        if from != Some(to) {
            all.push(Notification {
                kind: NotifyKind::RunStatus,
                audit_event_id: e.id,
                run_id: e.run_id.clone(),
                step_id: None,
                status: to.to_string(),
                at: e.at,
                actor: e.actor.clone(),
            });
        }
    }
    all
}

/// The change ticket a run carries, and its link when `notify.ticket_url` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub number: String,
    pub url: Option<String>,
}

/// The request body for `format`.
pub fn body(
    format: Format,
    n: &Notification,
    delivery_id: &str,
    text: &str,
    ticket: Option<&Ticket>,
) -> Value {
    let ticket_text = ticket
        .map(|t| match &t.url {
            Some(u) => format!("{} ({u})", t.number),
            None => t.number.clone(),
        })
        .unwrap_or_default();
    match format {
        Format::Json => json!({
            "delivery_id": delivery_id,
            "event": n.kind.as_str(),
            "run_id": n.run_id,
            "step_id": n.step_id,
            "status": n.status,
            "actor": n.actor,
            "at_ms": n.at,
            "audit_event_id": n.audit_event_id,
            "summary": text,
            "change_ticket": ticket.map(|t| t.number.clone()),
            "change_ticket_url": ticket.and_then(|t| t.url.clone()),
        }),
        Format::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "text": "Lockstep", "weight": "Bolder"},
                        {"type": "TextBlock", "text": text, "wrap": true},
                        {"type": "FactSet", "facts": [
                            {"title": "Event", "value": n.kind.as_str()},
                            {"title": "Run", "value": n.run_id.clone().unwrap_or_default()},
                            {"title": "Status", "value": n.status},
                            {"title": "Change ticket", "value": ticket_text},
                        ]},
                    ],
                },
            }],
        }),
        Format::Slack => json!({
            "text": format!("Lockstep: {text}"),
            "blocks": [{
                "type": "section",
                "text": {"type": "mrkdwn", "text": format!("*Lockstep* ({}): {text}", n.kind.as_str())},
            }],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, from: &str, to: &str, step: Option<&str>) -> AuditEvent {
        AuditEvent {
            id: 7,
            run_id: Some("r1".into()),
            step_id: step.map(str::to_string),
            actor: "engine".into(),
            at: 1,
            kind: kind.into(),
            payload: json!({"from": from, "to": to}),
            prev_hash: String::new(),
            hash: String::new(),
            sig: None,
        }
    }

    #[test]
    fn entering_a_gate_a_failure_an_operator_task_or_a_final_state_is_notified() {
        let k = |e: AuditEvent| classify(&e).map(|n| n.kind);
        assert_eq!(
            k(event(
                "step.unblock",
                "pending",
                "awaiting_approval",
                Some("s")
            )),
            Some(NotifyKind::GateWaiting)
        );
        assert_eq!(
            k(event("step.finished", "running", "failed", Some("s"))),
            Some(NotifyKind::StepFailed)
        );
        assert_eq!(
            k(event(
                "step.unblock",
                "pending",
                "awaiting_operator",
                Some("s")
            )),
            Some(NotifyKind::NeedsOperator)
        );
        assert_eq!(
            k(event("run.completed", "running", "succeeded", None)),
            Some(NotifyKind::RunFinished)
        );
        assert_eq!(
            k(event("step.claim", "ready", "dispatched", Some("s"))),
            None
        );
        assert_eq!(k(event("comment", "", "", None)), None);
    }

    #[test]
    fn teams_and_slack_bodies_carry_the_summary_where_they_display_it() {
        let n = classify(&event("step.finished", "running", "failed", Some("s1"))).unwrap();
        let text = summary(&n, Some("Stop services"));
        assert_eq!(text, "Run r1: step s1 \"Stop services\" failed");
        let teams = body(Format::Teams, &n, "d", &text, None);
        assert_eq!(teams["attachments"][0]["content"]["body"][1]["text"], text);
        let slack = body(Format::Slack, &n, "d", &text, None);
        assert!(slack["text"].as_str().unwrap().contains(&text));
    }

    #[test]
    fn every_run_status_change_is_a_run_status_notification_carrying_the_ticket() {
        let all = classify_all(&event("run.completed", "running", "succeeded", None));
        let kinds: Vec<_> = all.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, vec![NotifyKind::RunFinished, NotifyKind::RunStatus]);
        let started = classify_all(&event(
            "run.approve_start",
            "awaiting_start_approval",
            "running",
            None,
        ));
        assert_eq!(started.len(), 1);
        assert_eq!(started[0].status, "running");
        assert!(classify_all(&event("step.claim", "ready", "dispatched", Some("s"))).is_empty());
        let ticket = Ticket {
            number: "CHG0031337".into(),
            url: Some("https://itsm.example/change/CHG0031337".into()),
        };
        let b = body(Format::Json, &started[0], "d", "t", Some(&ticket));
        assert_eq!(b["event"], "run_status");
        assert_eq!(b["change_ticket"], "CHG0031337");
        assert_eq!(
            b["change_ticket_url"],
            "https://itsm.example/change/CHG0031337"
        );
        assert_eq!(NotifyKind::parse("run_status"), Some(NotifyKind::RunStatus));
        assert!(
            !NotifyKind::ALL.contains(&NotifyKind::RunStatus),
            "never a default"
        );
    }
}
