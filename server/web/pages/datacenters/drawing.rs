//! The Data Center drawing as a live region: each server's versions from its agent's latest
//! facts, its agent's health, and — while a run on this Data Center is active — the step moving
//! or waiting on it. The page includes [`DrawingPartial`]; `/datacenters/NAME/drawing` answers
//! the same partial alone, which htmx fetches again every few seconds (quickly while a run is
//! active, slowly otherwise) and swaps in place, so boxes change state without a reload.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};

use super::{facts, TopologySvg};
use crate::engine::machine::StepStatus;
use crate::executors::agent::registry::StoredFacts;
use crate::knowledge::inventory::Inventory;
use crate::web::auth::{CurrentUser, Role};
use crate::web::datacenters;
use crate::web::topology::{self, ServerDetail};
use crate::web::{engine_error, AppError, AppState};

/// Seconds between refreshes while a run is active, and otherwise.
const ACTIVE_EVERY_SECS: u32 = 2;
const IDLE_EVERY_SECS: u32 = 15;

#[derive(Template)]
#[template(path = "partials/dc_drawing.html")]
pub struct DrawingPartial {
    pub name: String,
    pub svg: TopologySvg,
    pub every_secs: u32,
    /// Active runs on this Data Center: (run id, "CHG-1 · upgrade-8.11").
    pub active: Vec<(String, String)>,
}

/// Each server's versions from its agent's latest facts and its agent's health.
fn details(
    agents: &[facts::FactRow],
    stored: &BTreeMap<String, StoredFacts>,
) -> BTreeMap<String, ServerDetail> {
    use lockstep_protocol::facts::Component;
    agents
        .iter()
        .map(|a| {
            let mut versions = Vec::new();
            if let Some(f) = stored.get(&a.server).map(|s| &s.facts) {
                let connected = f
                    .version_of(Component::DataCenter)
                    .or_else(|| f.components.first().map(|c| c.version.as_str()));
                if let Some(v) = connected {
                    versions.push(format!("Connected {v}"));
                }
                versions.extend(f.windows.iter().map(|w| format!("Windows Server {w}")));
                versions.extend(f.sql_server.iter().map(|q| format!("SQL Server {q}")));
            }
            (
                a.server.clone(),
                ServerDetail {
                    versions,
                    health: a.status.clone(),
                    step: None,
                },
            )
        })
        .collect()
}

/// A step worth showing on its server: moving, or waiting for people.
fn showing(status: StepStatus) -> bool {
    status.is_in_flight()
        || matches!(
            status,
            StepStatus::AwaitingApproval
                | StepStatus::AwaitingOperator
                | StepStatus::OutcomeUnknown
                | StepStatus::Failed
        )
}

/// The drawing of `inv` (stored as `dc_name`) now.
pub async fn build(
    state: &AppState,
    inv: &Inventory,
    dc_name: &str,
    agents: &[facts::FactRow],
    stored: &BTreeMap<String, StoredFacts>,
) -> Result<DrawingPartial, AppError> {
    let mut detail = details(agents, stored);
    let mut active = Vec::new();
    for run in state.store.runs().await.map_err(engine_error)? {
        if run.inventory != inv.name || run.status.is_terminal() {
            continue;
        }
        active.push((
            run.id.clone(),
            format!("{} · {}", run.change_ticket, run.runbook),
        ));
        for step in state.store.steps(&run.id).await.map_err(engine_error)? {
            let Some(host) = step.spec.host.as_deref() else {
                continue;
            };
            if showing(step.status) {
                let d = detail.entry(host.to_string()).or_default();
                d.step = Some(format!(
                    "{} — {}",
                    step.spec.title,
                    step.status.as_str().replace('_', " ")
                ));
            }
        }
    }
    Ok(DrawingPartial {
        name: dc_name.to_string(),
        every_secs: if active.is_empty() {
            IDLE_EVERY_SECS
        } else {
            ACTIVE_EVERY_SECS
        },
        svg: TopologySvg {
            name: inv.name.clone(),
            d: topology::draw_with(inv, &detail),
        },
        active,
    })
}

/// `GET /datacenters/NAME/drawing`: the live region alone.
pub async fn live(
    State(state): State<AppState>,
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
    let (agents, _) = facts::facts(&inv, &enrolled, state.clock.now());
    let stored = crate::executors::agent::registry::all_facts(&state.pool).await?;
    let partial = build(&state, &inv, &dc.name, &agents, &stored).await?;
    let body = partial.render().map_err(|e| AppError::Internal(e.into()))?;
    Ok(Html(body).into_response())
}
