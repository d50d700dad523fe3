//! The change record page (`/runs/ID/report`), print-ready, and the same content as JSON
//! (`/runs/ID/report.json`, `/api/v1/runs/ID/report`). The record itself is built by
//! [`crate::web::record::build`]; this module loads what it needs and renders it.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::engine::audit::AuditEvent;
use crate::engine::store::{RunRecord, StepRecord};
use crate::web::auth::{CurrentUser, Role};
use crate::web::record::{self, ChangeRecord};
use crate::web::runview::timeline;
use crate::web::views::{html, Chrome};
use crate::web::{AppError, Core, Site};

#[derive(Template)]
#[template(path = "report.html")]
pub struct ReportPage {
    pub chrome: Chrome,
    pub r: ChangeRecord,
    /// The planned-vs-actual chart (our own template, rendered to SVG markup).
    pub timeline: String,
}

async fn load(
    state: &Core,
    id: &str,
) -> Result<(RunRecord, Vec<StepRecord>, Vec<AuditEvent>), AppError> {
    let run = state.store.run(id).await?;
    let steps = state.store.steps(id).await?;
    let events = state.store.run_events(id).await?;
    Ok((run, steps, events))
}

/// Versions per server from the agents' latest facts, in words.
async fn versions(state: &Core) -> BTreeMap<String, String> {
    // A record must render even when facts cannot be read: the servers then say so.
    let Ok(all) = crate::executors::agent::registry::all_facts(&state.pool).await else {
        return BTreeMap::new();
    };
    all.into_iter()
        .map(|(server, f)| {
            let mut parts: Vec<String> = f
                .facts
                .components
                .iter()
                .map(|c| format!("{} {}", c.component.label(), c.version))
                .collect();
            if let Some(w) = &f.facts.windows {
                parts.push(format!("Windows Server {w}"));
            }
            if let Some(s) = &f.facts.sql_server {
                parts.push(format!("SQL Server {s}"));
            }
            (server, parts.join("; "))
        })
        .collect()
}

/// The change record of run `id`.
pub async fn build_record(state: &Core, site: &Site, id: &str) -> Result<ChangeRecord, AppError> {
    let (run, steps, events) = load(state, id).await?;
    record_of(state, site, &run, &steps, &events).await
}

async fn record_of(
    state: &Core,
    site: &Site,
    run: &RunRecord,
    steps: &[StepRecord],
    events: &[AuditEvent],
) -> Result<ChangeRecord, AppError> {
    let report = state.store.verify_audit_incremental().await?;
    let (chain_ok, chain) = match report.problem {
        None => (
            true,
            format!(
                "The audit chain verifies ({} events in the log).",
                report.events
            ),
        ),
        Some(p) => (
            false,
            format!(
                "The audit chain does NOT verify: event {} — {}.",
                p.event_id, p.what
            ),
        ),
    };
    Ok(record::build(record::Inputs {
        run,
        steps,
        events,
        ticket_url: site.ticket_link(&run.change_ticket),
        versions: versions(state).await,
        chain_ok,
        chain,
        now_ms: state.clock.now(),
    }))
}

pub async fn page(
    State(state): State<Core>,
    State(site): State<Site>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let (run, steps, events) = load(&state, &id).await?;
    let r = record_of(&state, &site, &run, &steps, &events).await?;
    let timeline = timeline::timeline(&steps, state.clock.now())
        .render()
        .map_err(|e| AppError::Internal(e.into()))?;
    html(&ReportPage {
        chrome: Chrome::new(&me, "runs"),
        r,
        timeline,
    })
}

/// The JSON form: the change record, plus the raw records it was built from (for tools).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ReportJson {
    pub record: ChangeRecord,
    pub run: RunRecord,
    pub steps: Vec<StepRecord>,
    pub events: Vec<AuditEvent>,
    pub audit_chain_intact: bool,
}

pub async fn build_json(state: &Core, site: &Site, id: &str) -> Result<ReportJson, AppError> {
    let (run, steps, events) = load(state, id).await?;
    let record = record_of(state, site, &run, &steps, &events).await?;
    Ok(ReportJson {
        audit_chain_intact: record.chain_ok,
        record,
        run,
        steps,
        events,
    })
}

pub async fn json(
    State(state): State<Core>,
    State(site): State<Site>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let body = build_json(&state, &site, &id).await?;
    let mut r = Json(body).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_DISPOSITION,
        axum::http::HeaderValue::from_static("attachment; filename=\"lockstep-run-report.json\""),
    );
    Ok(r)
}
