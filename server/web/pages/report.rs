//! The run report: a printable change record — who requested, who approved what and when, every
//! override with its justification, evidence and timings — and the same as JSON.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::engine::audit::AuditEvent;
use crate::engine::store::{RunRecord, StepRecord};
use crate::web::auth::{CurrentUser, Role};
use crate::web::views::{fmt_time, html, Chrome};
use crate::web::{engine_error, AppError, AppState};

/// Event kinds a person caused that change what the plan would have done on its own.
const OVERRIDES: &[&str] = &[
    "skip",
    "retry",
    "mark_done",
    "mark_failed",
    "reopen_gate",
    "abort",
    "pause",
    "undo",
];

pub struct Decision {
    pub at: String,
    pub actor: String,
    pub what: String,
    pub detail: String,
}

pub struct StepLine {
    pub id: String,
    pub title: String,
    pub host: String,
    pub status: &'static str,
    pub attempt: u32,
    pub started: String,
    pub ended: String,
    pub evidence: String,
    pub note: String,
}

#[derive(Template)]
#[template(path = "report.html")]
pub struct ReportPage {
    pub chrome: Chrome,
    pub run_id: String,
    pub status: &'static str,
    pub runbook: String,
    pub inventory: String,
    pub change_ticket: String,
    /// The ticket's link in the change-management system (`notify.ticket_url`), if configured.
    pub change_ticket_url: Option<String>,
    pub requester: String,
    pub created: String,
    pub approvals: Vec<Decision>,
    pub overrides: Vec<Decision>,
    pub steps: Vec<StepLine>,
    pub chain: String,
}

fn detail(e: &AuditEvent) -> String {
    let p = &e.payload;
    for key in [
        "comment",
        "justification",
        "reason",
        "note",
        "evidence",
        "text",
    ] {
        if let Some(v) = p.get(key).and_then(|v| v.as_str()) {
            return v.to_string();
        }
        if let Some(v) = p
            .get("event")
            .and_then(|ev| ev.get(key))
            .and_then(|v| v.as_str())
        {
            return v.to_string();
        }
    }
    String::new()
}

fn decision(e: &AuditEvent) -> Decision {
    Decision {
        at: fmt_time(e.at.div_euclid(1000)),
        actor: e.actor.clone(),
        what: format!(
            "{}{}",
            e.kind,
            e.step_id
                .as_ref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        ),
        detail: detail(e),
    }
}

fn is_approval(kind: &str) -> bool {
    kind.ends_with("approve_start") || kind.ends_with("approve") || kind.ends_with("reject")
}

fn is_override(kind: &str) -> bool {
    OVERRIDES.iter().any(|o| kind.ends_with(o))
}

async fn load(
    state: &AppState,
    id: &str,
) -> Result<(RunRecord, Vec<StepRecord>, Vec<AuditEvent>), AppError> {
    let run = state.store.run(id).await.map_err(engine_error)?;
    let steps = state.store.steps(id).await.map_err(engine_error)?;
    let events = state.store.run_events(id).await.map_err(engine_error)?;
    Ok((run, steps, events))
}

pub async fn page(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let (run, steps, events) = load(&state, &id).await?;
    let report = state
        .store
        .verify_audit_incremental()
        .await
        .map_err(engine_error)?;
    let chain = match report.problem {
        None => format!(
            "The audit chain verifies ({} events in the log).",
            report.events
        ),
        Some(p) => format!(
            "The audit chain does NOT verify: event {} — {}.",
            p.event_id, p.what
        ),
    };
    html(&ReportPage {
        chrome: Chrome::new(&me, "runs"),
        run_id: run.id.clone(),
        status: run.status.as_str(),
        runbook: run.runbook.clone(),
        inventory: run.inventory.clone(),
        change_ticket: run.change_ticket.clone(),
        change_ticket_url: state.ticket_link(&run.change_ticket),
        requester: run.requester.clone(),
        created: fmt_time(run.created_at.div_euclid(1000)),
        approvals: events
            .iter()
            .filter(|e| e.actor != "lockstep" && is_approval(&e.kind))
            .map(decision)
            .collect(),
        overrides: events
            .iter()
            .filter(|e| e.actor != "lockstep" && is_override(&e.kind))
            .map(decision)
            .collect(),
        steps: steps
            .iter()
            .map(|s| StepLine {
                id: s.id.clone(),
                title: s.spec.title.clone(),
                host: s.spec.host.clone().unwrap_or_default(),
                status: s.status.as_str(),
                attempt: s.attempt,
                started: s
                    .state
                    .dispatched_at
                    .map(|d| fmt_time(d.div_euclid(1000)))
                    .unwrap_or_default(),
                ended: if s.status.is_terminal() {
                    fmt_time(s.updated_at.div_euclid(1000))
                } else {
                    String::new()
                },
                evidence: s
                    .state
                    .evidence
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
                note: s.state.note.clone().unwrap_or_default(),
            })
            .collect(),
        chain,
    })
}

#[derive(serde::Serialize)]
pub struct ReportJson {
    pub run: RunRecord,
    pub steps: Vec<StepRecord>,
    pub events: Vec<AuditEvent>,
    pub audit_chain_intact: bool,
}

pub async fn build_json(state: &AppState, id: &str) -> Result<ReportJson, AppError> {
    let (run, steps, events) = load(state, id).await?;
    let report = state
        .store
        .verify_audit_incremental()
        .await
        .map_err(engine_error)?;
    Ok(ReportJson {
        run,
        steps,
        events,
        audit_chain_intact: report.problem.is_none(),
    })
}

pub async fn json(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let body = build_json(&state, &id).await?;
    let mut r = Json(body).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_DISPOSITION,
        axum::http::HeaderValue::from_static("attachment; filename=\"lockstep-run-report.json\""),
    );
    Ok(r)
}
