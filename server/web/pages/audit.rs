//! Audit: every event of the hash-chained log, filtered by run, person, kind and date,
//! paginated, exportable as CSV or JSON Lines, with the chain verification result.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::engine::audit::{self, AuditEvent};
use crate::web::auth::{CurrentUser, Role};
use crate::web::views::{fmt_time, html, Chrome};
use crate::web::{engine_error, AppError, AppState};

pub const PAGE_SIZE: usize = 50;

#[derive(Debug, Default, Deserialize, Clone)]
pub struct AuditFilter {
    #[serde(default)]
    pub run: String,
    #[serde(default)]
    pub person: String,
    #[serde(default)]
    pub kind: String,
    /// `YYYY-MM-DD`, inclusive, UTC.
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub page: Option<usize>,
}

fn day_start_ms(field: &str, text: &str) -> Result<Option<i64>, AppError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(text.trim(), &fmt).map_err(|_| {
        AppError::BadRequest(format!("{field}: `{text}` is not a date like 2026-11-27"))
    })?;
    Ok(Some(d.midnight().assume_utc().unix_timestamp() * 1000))
}

impl AuditFilter {
    /// Applies the filter; dates are checked here so a bad one is a clear 422.
    pub fn apply(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditEvent>, AppError> {
        if self.page == Some(0) {
            return Err(AppError::BadRequest(
                "page: pages are numbered from 1".into(),
            ));
        }
        let from = day_start_ms("from", &self.from)?;
        let to = day_start_ms("to", &self.to)?.map(|t| t + 86_400_000);
        Ok(events
            .into_iter()
            .filter(|e| self.run.is_empty() || e.run_id.as_deref() == Some(self.run.trim()))
            .filter(|e| self.person.is_empty() || e.actor == self.person.trim())
            .filter(|e| self.kind.is_empty() || e.kind.starts_with(self.kind.trim()))
            .filter(|e| from.is_none_or(|f| e.at >= f))
            .filter(|e| to.is_none_or(|t| e.at < t))
            .collect())
    }

    fn query(&self) -> String {
        let enc = crate::web::pages::datacenters::urlencode;
        format!(
            "run={}&person={}&kind={}&from={}&to={}",
            enc(&self.run),
            enc(&self.person),
            enc(&self.kind),
            enc(&self.from),
            enc(&self.to)
        )
    }
}

pub struct EventRow {
    pub id: i64,
    pub at: String,
    pub run: String,
    pub step: String,
    pub actor: String,
    pub kind: String,
    pub payload: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub chrome: Chrome,
    pub f: AuditFilter,
    pub rows: Vec<EventRow>,
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub query: String,
    pub chain_ok: bool,
    pub chain: String,
}

pub async fn page(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(f): Query<AuditFilter>,
) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let events = f.apply(state.store.all_events().await.map_err(engine_error)?)?;
    let report = state
        .store
        .verify_audit_incremental()
        .await
        .map_err(engine_error)?;
    let (chain_ok, chain) = match &report.problem {
        None => (
            true,
            format!(
                "verified: {} events, the chain and its head record are intact",
                report.events
            ),
        ),
        Some(p) => (
            false,
            format!("NOT intact: event {} — {}", p.event_id, p.what),
        ),
    };
    let total = events.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = f.page.unwrap_or(1).clamp(1, pages);
    let rows = events
        .iter()
        .rev()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|e| EventRow {
            id: e.id,
            at: fmt_time(e.at.div_euclid(1000)),
            run: e.run_id.clone().unwrap_or_default(),
            step: e.step_id.clone().unwrap_or_default(),
            actor: e.actor.clone(),
            kind: e.kind.clone(),
            payload: e.payload.to_string(),
        })
        .collect();
    html(&AuditPage {
        chrome: Chrome::new(&me, "audit"),
        query: f.query(),
        f,
        rows,
        total,
        page,
        pages,
        chain_ok,
        chain,
    })
}

pub async fn export_csv(
    state: State<AppState>,
    me: CurrentUser,
    f: Query<AuditFilter>,
) -> Result<Response, AppError> {
    export(state, me, f, audit::ExportFormat::Csv).await
}

pub async fn export_jsonl(
    state: State<AppState>,
    me: CurrentUser,
    f: Query<AuditFilter>,
) -> Result<Response, AppError> {
    export(state, me, f, audit::ExportFormat::Jsonl).await
}

/// The filtered events as a download, written by the same exporter as `lockstep audit export`.
async fn export(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(f): Query<AuditFilter>,
    format: audit::ExportFormat,
) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let events = f.apply(state.store.all_events().await.map_err(engine_error)?)?;
    let mut out = Vec::new();
    audit::export(&events, format, &mut out).map_err(|e| AppError::Internal(e.into()))?;
    let (content_type, disposition) = match format {
        audit::ExportFormat::Csv => (
            "text/csv; charset=utf-8",
            "attachment; filename=\"lockstep-audit.csv\"",
        ),
        audit::ExportFormat::Jsonl => (
            "application/x-ndjson",
            "attachment; filename=\"lockstep-audit.jsonl\"",
        ),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        out,
    )
        .into_response())
}
