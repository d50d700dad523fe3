//! Data Centers: add or edit an inventory as TOML (errors shown with their line and field,
//! nothing stored), a drawing of the topology, and the preflight findings.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use crate::knowledge::inventory::Inventory;
use crate::knowledge::preflight;
use crate::web::auth::{CurrentUser, Role};
use crate::web::topology::Drawing;
use crate::web::views::{fmt_time, html, see_other, Chrome};
use crate::web::{datacenters, AppError, Core, Site};

pub mod drawing;
pub mod events;
mod facts;

pub struct DcRow {
    pub name: String,
    pub topology: String,
    pub servers: usize,
    pub uploaded_by: String,
    pub uploaded: String,
}

pub struct ProblemRow {
    pub line: String,
    pub field: String,
    pub message: String,
}

#[derive(Template)]
#[template(path = "datacenters.html")]
pub struct DataCentersPage {
    pub chrome: Chrome,
    pub dcs: Vec<DcRow>,
    pub toml: String,
    pub problems: Vec<ProblemRow>,
}

pub struct FindingRow {
    pub severity: &'static str,
    pub result: &'static str,
    pub rule: String,
    pub server: String,
    pub message: String,
    pub section: String,
}

#[derive(Template)]
#[template(path = "partials/topology.html")]
pub struct TopologySvg {
    pub name: String,
    pub d: Drawing,
}

#[derive(Template)]
#[template(path = "datacenter.html")]
pub struct DataCenterPage {
    pub chrome: Chrome,
    pub name: String,
    pub topology: String,
    /// The live drawing (see [`drawing`]).
    pub svg: drawing::DrawingPartial,
    pub findings: Vec<FindingRow>,
    /// What each server's agent last reported (see [`facts`]).
    pub agents: Vec<facts::FactRow>,
    /// The facts each server's agent reported (see [`crate::web::pages::site_facts`]).
    pub site_facts: crate::web::pages::site_facts::SiteFactsPartial,
    /// "8.11 on DC1; 8.8.6 on DC2" when the servers run different Connected versions.
    pub mixed: Option<String>,
    pub toml: String,
    pub uploaded_by: String,
    pub uploaded: String,
    /// The Data Center's campaigns and the form to plan one (see [`crate::web::campaigns`]).
    pub campaigns: crate::web::campaigns::pages::CampaignList,
}

/// Preflight findings for a page, answered from the agents' facts where they are fresh.
pub fn finding_rows(
    inv: &Inventory,
    runbook: Option<&str>,
    params: &BTreeMap<String, String>,
    live: &preflight::LiveFacts,
) -> Vec<FindingRow> {
    preflight::preflight_live(inv, runbook, params, live)
        .into_iter()
        .map(|f| FindingRow {
            severity: f.severity.as_str(),
            result: f.result.as_str(),
            rule: f.rule,
            server: f.server.unwrap_or_default(),
            message: f.message,
            section: f.section,
        })
        .collect()
}

async fn list_page(
    state: &Core,
    me: &CurrentUser,
    toml: String,
    problems: Vec<ProblemRow>,
) -> Result<DataCentersPage, AppError> {
    let dcs = datacenters::list(&state.pool)
        .await?
        .into_iter()
        .map(|d| {
            let inv = d.inventory().ok();
            DcRow {
                topology: inv
                    .as_ref()
                    .map(|i| i.topology.to_string())
                    .unwrap_or_else(|| "unreadable".into()),
                servers: inv.as_ref().map(|i| i.servers.len()).unwrap_or(0),
                name: d.name,
                uploaded_by: d.uploaded_by,
                uploaded: fmt_time(d.uploaded_at),
            }
        })
        .collect();
    Ok(DataCentersPage {
        chrome: Chrome::new(me, "datacenters"),
        dcs,
        toml,
        problems,
    })
}

pub async fn list(State(state): State<Core>, me: CurrentUser) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    html(&list_page(&state, &me, String::new(), Vec::new()).await?)
}

#[derive(Deserialize)]
pub struct UploadForm {
    #[serde(default)]
    toml: String,
}

/// Stores a new inventory (or a new version of one, by name). Errors re-show the form with the
/// text as typed and every problem with its line and field; nothing is stored.
pub async fn upload(
    State(state): State<Core>,
    me: CurrentUser,
    Form(f): Form<UploadForm>,
) -> Result<Response, AppError> {
    me.require(Role::Operator)?;
    match datacenters::save(&state.pool, &f.toml, me.name(), state.clock.now_secs()).await? {
        Ok(inv) => {
            tracing::info!(actor = %me.name(), data_center = %crate::logtext::escaped(&inv.name), "inventory stored");
            Ok(see_other(&format!("/datacenters/{}", urlencode(&inv.name))))
        }
        Err(e) => {
            let problems = e
                .problems
                .into_iter()
                .map(|p| ProblemRow {
                    line: p.line.map(|l| format!("line {l}")).unwrap_or_default(),
                    field: p.field,
                    message: p.message,
                })
                .collect();
            let page = list_page(&state, &me, f.toml, problems).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page.render()?)).into_response())
        }
    }
}

pub async fn show(
    State(state): State<Core>,
    State(site): State<Site>,
    me: CurrentUser,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let dc = datacenters::current(&state.pool, &name)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no Data Center named `{name}`")))?;
    let inv = dc
        .inventory()
        .map_err(|e| AppError::Conflict(format!("the stored inventory no longer parses: {e}")))?;
    let enrolled = crate::executors::agent::registry::list(&state.pool).await?;
    let (agents, live_findings) = facts::facts(&inv, &enrolled, state.clock.now_secs());
    let live = site.live_facts(&state).await?;
    let mut findings = finding_rows(&inv, None, &BTreeMap::new(), &live);
    findings.extend(live_findings);
    let now = state.clock.now_secs();
    let stored = crate::executors::agent::registry::all_facts(&state.pool).await?;
    let names: Vec<String> = inv.servers.iter().map(|s| s.name.clone()).collect();
    let site_facts =
        crate::web::pages::site_facts::partial(&names, &stored, now, site.facts_stale_secs);
    let versions = crate::web::estate::versions_in_use(&inv, &stored, now, site.facts_stale_secs);
    let mixed = (versions.len() > 1).then(|| {
        versions
            .iter()
            .map(|(v, servers)| format!("{v} on {}", servers.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    });
    let campaigns = crate::web::campaigns::pages::list_partial(&state, &me, &dc.name).await?;
    html(&DataCenterPage {
        campaigns,
        chrome: Chrome::new(&me, "datacenters"),
        topology: inv.topology.to_string(),
        svg: drawing::build(&state, &inv, &dc.name, &agents, &stored).await?,
        findings,
        agents,
        site_facts,
        mixed,
        name: dc.name,
        toml: dc.toml,
        uploaded_by: dc.uploaded_by,
        uploaded: fmt_time(dc.uploaded_at),
    })
}

/// Percent-encodes a path segment.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
