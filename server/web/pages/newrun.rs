//! New run: Data Center + runbook + parameters + change ticket + maintenance window → plan
//! preview (by phase and host), preflight and estimated duration against the window → create.
//! The run is submitted at once and waits for another person's start approval (four-eyes).

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;

use crate::engine::machine::RunEvent;
use crate::engine::store::NewRun;
use crate::knowledge::expand::expand;
use crate::knowledge::plan::Plan;
use crate::web::auth::{CurrentUser, Role};
use crate::web::pages::datacenters::{finding_rows, FindingRow};
use crate::web::pages::runbooks::{catalog, runbook};
use crate::web::views::{fmt_duration, html, see_other, Chrome};
use crate::web::{datacenters, AppError, Core, Site};

/// The form as typed, re-shown on every answer.
#[derive(Debug, Default, Clone)]
pub struct RunRequest {
    pub datacenter: String,
    pub runbook: String,
    pub params: BTreeMap<String, String>,
    pub change_ticket: String,
    pub window_start: String,
    pub window_end: String,
}

impl RunRequest {
    pub fn from_pairs(pairs: &[(String, String)]) -> RunRequest {
        let mut r = RunRequest::default();
        for (k, v) in pairs {
            match k.as_str() {
                "datacenter" => r.datacenter = v.trim().to_string(),
                "runbook" => r.runbook = v.trim().to_string(),
                "change_ticket" => r.change_ticket = v.trim().to_string(),
                "window_start" => r.window_start = v.trim().to_string(),
                "window_end" => r.window_end = v.trim().to_string(),
                _ => {
                    if let Some(name) = k.strip_prefix("param.") {
                        if !v.trim().is_empty() {
                            r.params.insert(name.to_string(), v.trim().to_string());
                        }
                    }
                }
            }
        }
        r
    }
}

pub struct ParamField {
    pub name: String,
    pub description: String,
    pub allowed: Vec<String>,
    pub value: String,
}

pub struct PreviewGroup {
    pub phase: String,
    pub host: String,
    pub steps: Vec<String>,
}

#[derive(Template)]
#[template(path = "newrun.html")]
pub struct NewRunPage {
    pub chrome: Chrome,
    pub datacenters: Vec<String>,
    pub runbooks: Vec<(String, String)>,
    pub req: RunRequest,
    pub params: Vec<ParamField>,
    pub error: Option<String>,
    pub preview: Vec<PreviewGroup>,
    pub findings: Vec<FindingRow>,
    pub estimate: String,
    pub fits: String,
    pub step_count: usize,
}

/// What every new run is asked for, as the page and the API check it (the engine checks the
/// ticket and the window's order again): a change ticket of at most 200 characters and a window
/// whose ends parse. Returns the window's start and end in milliseconds.
pub fn ticket_and_window(
    ticket: &str,
    window_start: &str,
    window_end: &str,
) -> Result<(Option<i64>, Option<i64>), AppError> {
    if ticket.is_empty() {
        return Err(AppError::BadRequest(
            "change_ticket: give the change ticket reference".into(),
        ));
    }
    if ticket.chars().count() > 200 {
        return Err(AppError::BadRequest(
            "change_ticket: at most 200 characters".into(),
        ));
    }
    Ok((
        parse_window("window_start", window_start)?,
        parse_window("window_end", window_end)?,
    ))
}

/// "2026-11-28T01:30" (a datetime-local field, read as UTC) → milliseconds.
pub fn parse_window(field: &str, text: &str) -> Result<Option<i64>, AppError> {
    if text.is_empty() {
        return Ok(None);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let fmt_secs =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let t = time::PrimitiveDateTime::parse(text, &fmt)
        .or_else(|_| time::PrimitiveDateTime::parse(text, &fmt_secs))
        .map_err(|_| {
            AppError::BadRequest(format!(
                "{field}: `{text}` is not a date and time like 2026-11-28T01:30 (UTC)"
            ))
        })?;
    Ok(Some(
        (t.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64,
    ))
}

/// Checks the request and expands the plan; errors name the field.
pub async fn build_plan(
    state: &Core,
    site: &Site,
    req: &RunRequest,
) -> Result<(Plan, crate::knowledge::inventory::Inventory), AppError> {
    if req.datacenter.is_empty() {
        return Err(AppError::BadRequest(
            "datacenter: choose a Data Center".into(),
        ));
    }
    if req.runbook.is_empty() {
        return Err(AppError::BadRequest("runbook: choose a runbook".into()));
    }
    let dc = datacenters::current(&state.pool, &req.datacenter)
        .await?
        .ok_or_else(|| {
            AppError::BadRequest(format!(
                "datacenter: no Data Center named `{}`",
                req.datacenter
            ))
        })?;
    let inv = dc.inventory().map_err(|e| {
        AppError::BadRequest(format!(
            "datacenter: the stored inventory no longer parses: {e}"
        ))
    })?;
    let rb = runbook(&req.runbook)
        .map_err(|_| AppError::BadRequest(format!("runbook: no runbook `{}`", req.runbook)))?;
    let mut plan =
        expand(rb, &inv, &req.params).map_err(|e| AppError::BadRequest(format!("plan: {e}")))?;
    if site.simulated {
        plan.for_simulated_site();
    }
    Ok((plan, inv))
}

async fn page(
    state: &Core,
    site: &Site,
    me: &CurrentUser,
    req: RunRequest,
    error: Option<String>,
    with_preview: bool,
) -> Result<NewRunPage, AppError> {
    let dcs: Vec<String> = datacenters::list(&state.pool)
        .await?
        .into_iter()
        .map(|d| d.name)
        .collect();
    let runbooks = catalog()?
        .all()
        .iter()
        .map(|r| (r.id.clone(), r.title.clone()))
        .collect();
    let params = match runbook(&req.runbook) {
        Ok(rb) => rb
            .parameters
            .iter()
            .map(|p| ParamField {
                name: p.name.clone(),
                description: p.description.clone(),
                allowed: p.allowed.clone(),
                value: req
                    .params
                    .get(&p.name)
                    .cloned()
                    .or_else(|| p.default.clone())
                    .unwrap_or_default(),
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let mut out = NewRunPage {
        chrome: Chrome::new(me, "newrun"),
        datacenters: dcs,
        runbooks,
        req: req.clone(),
        params,
        error,
        preview: Vec::new(),
        findings: Vec::new(),
        estimate: String::new(),
        fits: String::new(),
        step_count: 0,
    };
    if with_preview && out.error.is_none() {
        match build_plan(state, site, &req).await {
            Ok((plan, inv)) => {
                for s in &plan.steps {
                    let host = s.host.clone().unwrap_or_else(|| "(Lockstep)".into());
                    match out
                        .preview
                        .iter_mut()
                        .find(|g| g.phase == s.phase && g.host == host)
                    {
                        Some(g) => g.steps.push(format!("{} ({})", s.title, s.kind.as_str())),
                        None => out.preview.push(PreviewGroup {
                            phase: s.phase.clone(),
                            host,
                            steps: vec![format!("{} ({})", s.title, s.kind.as_str())],
                        }),
                    }
                }
                let total: u64 = plan.steps.iter().map(|s| s.estimate_secs).sum();
                out.step_count = plan.steps.len();
                out.estimate = fmt_duration(total as i64);
                let window = (
                    parse_window("window_start", &req.window_start),
                    parse_window("window_end", &req.window_end),
                );
                out.fits = match window {
                    (Ok(Some(a)), Ok(Some(b))) if b > a => {
                        let len = (b - a) / 1000;
                        if total as i64 <= len {
                            format!(
                                "fits the {} window (sequential estimate)",
                                fmt_duration(len)
                            )
                        } else {
                            format!(
                                "does NOT fit the {} window (sequential estimate)",
                                fmt_duration(len)
                            )
                        }
                    }
                    _ => "no complete window given".into(),
                };
                let live = site.live_facts(state).await?;
                out.findings = finding_rows(&inv, Some(&req.runbook), &req.params, &live);
            }
            Err(e) => out.error = Some(e.to_string()),
        }
    }
    Ok(out)
}

pub async fn form(
    State(state): State<Core>,
    State(site): State<Site>,
    me: CurrentUser,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    me.require(Role::Operator)?;
    html(&page(&state, &site, &me, RunRequest::from_pairs(&q), None, false).await?)
}

pub async fn preview(
    State(state): State<Core>,
    State(site): State<Site>,
    me: CurrentUser,
    Form(f): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    me.require(Role::Operator)?;
    html(&page(&state, &site, &me, RunRequest::from_pairs(&f), None, true).await?)
}

/// Creates the run from the form and submits it for start approval.
pub async fn create(
    State(state): State<Core>,
    State(site): State<Site>,
    me: CurrentUser,
    Form(f): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    me.require(Role::Operator)?;
    let req = RunRequest::from_pairs(&f);
    match create_run(&state, &site, &me, &req).await {
        Ok(id) => Ok(see_other(&format!("/runs/{id}"))),
        Err(e @ (AppError::BadRequest(_) | AppError::Conflict(_))) => {
            let status = e.status();
            let p = page(&state, &site, &me, req, Some(e.to_string()), false).await?;
            Ok((status, Html(p.render()?)).into_response())
        }
        Err(e) => Err(e),
    }
}

/// Shared by the page and the API: validate, expand, create, submit. Returns the run id.
pub async fn create_run(
    state: &Core,
    site: &Site,
    me: &CurrentUser,
    req: &RunRequest,
) -> Result<String, AppError> {
    let (window_start, window_end) =
        ticket_and_window(&req.change_ticket, &req.window_start, &req.window_end)?;
    let (plan, _) = build_plan(state, site, req).await?;
    let actor = me.actor();
    let now = state.clock.now();
    let run = state
        .store
        .create_run(
            NewRun {
                change_ticket: req.change_ticket.clone(),
                window_start,
                window_end,
                plan,
            },
            &actor,
            now,
        )
        .await?;
    state
        .store
        .apply_run_event(&run.id, &RunEvent::Submit { actor }, now)
        .await?;
    state.wake();
    tracing::info!(run = %run.id, actor = %me.name(), "run created and submitted for start approval");
    Ok(run.id)
}
