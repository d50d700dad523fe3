//! Audit: every event of the hash-chained log in plain words (see [`crate::web::audit_words`]),
//! the run named by its change ticket and Data Center, filtered by run, person, kind, date and
//! words in comments and justifications, paginated, exportable as CSV, JSON Lines or a
//! verifiable bundle (the whole chain, checked offline by `lockstep audit verify --export`),
//! with the chain verification result.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::engine::audit::{self, AuditEvent};
use crate::engine::store::EventFilter;
use crate::engine::Store;
use crate::web::auth::{CurrentUser, Role};
use crate::web::views::{html, Chrome, Stamp};
use crate::web::{AppError, Core};

pub const PAGE_SIZE: usize = 50;

/// The audit filters, from the page's query string and `GET /api/v1/audit` alike (the
/// `param` attributes describe them in the OpenAPI document).
#[derive(Debug, Default, Deserialize, Clone, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Run id.
    #[serde(default)]
    #[param(required = false)]
    pub run: String,
    /// Actor name.
    #[serde(default)]
    #[param(required = false)]
    pub person: String,
    /// Kind prefix.
    #[serde(default)]
    #[param(required = false)]
    pub kind: String,
    /// `YYYY-MM-DD`, inclusive, UTC.
    #[serde(default)]
    #[param(required = false, pattern = "^([0-9]{4}-[0-9]{2}-[0-9]{2})?$")]
    pub from: String,
    /// `YYYY-MM-DD`, inclusive, UTC.
    #[serde(default)]
    #[param(required = false, pattern = "^([0-9]{4}-[0-9]{2}-[0-9]{2})?$")]
    pub to: String,
    /// Words to find in comments, justifications, reasons and notes (case-insensitive).
    #[serde(default)]
    #[param(required = false)]
    pub q: String,
    /// Page (50 events each).
    #[serde(default)]
    #[param(minimum = 1)]
    pub page: Option<usize>,
}

/// The longest search text accepted (a person types it; it is matched against every event).
pub const MAX_SEARCH_CHARS: usize = 200;

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
    /// The store's filter; dates and the search text are checked here so a bad one is a clear
    /// 422. The filtering itself runs in SQL (see `engine::store::EventFilter`).
    pub fn to_filter(&self) -> Result<EventFilter, AppError> {
        if self.page == Some(0) {
            return Err(AppError::BadRequest(
                "page: pages are numbered from 1".into(),
            ));
        }
        if self.q.chars().count() > MAX_SEARCH_CHARS {
            return Err(AppError::BadRequest(format!(
                "q: the search text is longer than {MAX_SEARCH_CHARS} characters"
            )));
        }
        let given = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        Ok(EventFilter {
            run_id: given(&self.run),
            actor: given(&self.person),
            kind_prefix: given(&self.kind),
            from_ms: day_start_ms("from", &self.from)?,
            to_ms: day_start_ms("to", &self.to)?.map(|t| t + 86_400_000),
            words: given(&self.q).map(|q| q.to_lowercase()),
        })
    }

    /// One page of the filtered events (the page newest first, the API oldest first), how many
    /// events in all, the page shown (clamped to the last) and how many pages there are.
    pub async fn page_of(
        &self,
        store: &crate::engine::Store,
        newest_first: bool,
    ) -> Result<(Vec<AuditEvent>, usize, usize, usize), AppError> {
        let filter = self.to_filter()?;
        let wanted = self.page.unwrap_or(1).max(1);
        let offset = |page: usize| ((page - 1) * PAGE_SIZE) as u64;
        let (mut events, total) = store
            .events_page(&filter, newest_first, PAGE_SIZE as u32, offset(wanted))
            .await?;
        let total = usize::try_from(total).unwrap_or(usize::MAX);
        let pages = total.div_ceil(PAGE_SIZE).max(1);
        let page = wanted.min(pages);
        if page != wanted {
            // Past the end: the last page instead, as before.
            events = store
                .events_page(&filter, newest_first, PAGE_SIZE as u32, offset(page))
                .await?
                .0;
        }
        Ok((events, total, page, pages))
    }

    fn query(&self) -> String {
        let enc = crate::web::pages::datacenters::urlencode;
        format!(
            "run={}&person={}&kind={}&from={}&to={}&q={}",
            enc(&self.run),
            enc(&self.person),
            enc(&self.kind),
            enc(&self.from),
            enc(&self.to),
            enc(&self.q)
        )
    }
}

pub struct EventRow {
    pub id: i64,
    pub at: Stamp,
    pub run: String,
    /// The run as people name it: its change ticket and Data Center ("CHG-2041", "Fabrikam").
    pub run_ticket: String,
    pub run_dc: String,
    pub actor: String,
    pub kind: String,
    /// What happened, in one sentence.
    pub sentence: String,
}

/// A run people can pick in the filter.
pub struct RunChoice {
    pub id: String,
    pub name: String,
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
    pub runs: Vec<RunChoice>,
}

pub async fn page(
    State(store): State<Store>,
    me: CurrentUser,
    Query(f): Query<AuditFilter>,
) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let (shown, total, page, pages) = f.page_of(&store, true).await?;
    let report = store.verify_audit_incremental().await?;
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
    let runs = store.runs().await?;
    let names: HashMap<String, (String, String)> = runs
        .iter()
        .map(|r| (r.id.clone(), (r.change_ticket.clone(), r.inventory.clone())))
        .collect();
    // Step titles of the runs on this page only (at most PAGE_SIZE runs' steps are read).
    let mut titles: HashMap<(String, String), String> = HashMap::new();
    let mut loaded: Vec<&str> = Vec::new();
    for e in &shown {
        if let Some(run) = e.run_id.as_deref() {
            if e.step_id.is_some() && !loaded.contains(&run) {
                loaded.push(run);
                if let Ok(steps) = store.steps(run).await {
                    for s in steps {
                        titles.insert((run.to_string(), s.id), s.spec.title);
                    }
                }
            }
        }
    }
    let rows = shown
        .iter()
        .map(|e| {
            let run = e.run_id.clone().unwrap_or_default();
            let title_of = |id: &str| titles.get(&(run.clone(), id.to_string())).cloned();
            EventRow {
                id: e.id,
                at: Stamp::at(e.at),
                run_ticket: names
                    .get(&run)
                    .map(|n| n.0.clone())
                    .unwrap_or_else(|| run.clone()),
                run_dc: names.get(&run).map(|n| n.1.clone()).unwrap_or_default(),
                actor: e.actor.clone(),
                kind: e.kind.to_string(),
                sentence: crate::web::audit_words::describe(e, &title_of),
                run,
            }
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
        runs: runs
            .into_iter()
            .rev()
            .map(|r| RunChoice {
                name: format!("{} · {} · {}", r.change_ticket, r.inventory, r.runbook),
                id: r.id,
            })
            .collect(),
    })
}

pub async fn export_csv(
    state: State<Core>,
    me: CurrentUser,
    f: Query<AuditFilter>,
) -> Result<Response, AppError> {
    export(state, me, f, audit::ExportFormat::Csv).await
}

pub async fn export_jsonl(
    state: State<Core>,
    me: CurrentUser,
    f: Query<AuditFilter>,
) -> Result<Response, AppError> {
    export(state, me, f, audit::ExportFormat::Jsonl).await
}

/// The whole chain as one verifiable document (filters do not apply: only a chain from its
/// first event can be checked), named by who exported it.
pub async fn export_bundle(
    State(state): State<Core>,
    me: CurrentUser,
) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    // The checkpoints `serve` sends out beside the database (see `audit_bundle`).
    let checkpoints = crate::engine::audit_bundle::checkpoints_beside(state.store.path());
    let bundle = state
        .store
        .audit_bundle(
            audit::iso_utc(state.clock.now()),
            &me.user.name,
            checkpoints,
        )
        .await?;
    let body = serde_json::to_vec_pretty(&bundle).map_err(|e| AppError::Internal(e.into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"lockstep-audit-export.json\"",
            ),
        ],
        body,
    )
        .into_response())
}

/// The filtered events as a download, written by the same exporter as `lockstep audit export`.
async fn export(
    State(state): State<Core>,
    me: CurrentUser,
    Query(f): Query<AuditFilter>,
    format: audit::ExportFormat,
) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let events = state.store.events_filtered(&f.to_filter()?).await?;
    let mut out = Vec::new();
    crate::engine::audit_bundle::export(&events, format, &mut out)
        .map_err(|e| AppError::Internal(e.into()))?;
    let (content_type, disposition) = match format {
        audit::ExportFormat::Csv => (
            "text/csv; charset=utf-8",
            "attachment; filename=\"lockstep-audit.csv\"",
        ),
        audit::ExportFormat::Jsonl => (
            "application/x-ndjson",
            "attachment; filename=\"lockstep-audit.jsonl\"",
        ),
        audit::ExportFormat::Bundle => (
            "application/json",
            "attachment; filename=\"lockstep-audit-export.json\"",
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
