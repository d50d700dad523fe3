//! The Data Center drawing as a live region: each server's versions from its agent's latest
//! facts, its agent's health, and — while a run on this Data Center is active — the state of
//! its step on each server (running, waiting for a person, failed, done). The page includes
//! [`DrawingPartial`]; the page's event stream (`events.rs`) sends the same partial again,
//! out of band, whenever one of the Data Center's runs moves, so boxes change state without a
//! reload. `/datacenters/NAME/drawing` answers the partial alone (scripts, tests).

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
use crate::web::topology::{self, ServerDetail, StepOnServer, StepState};
use crate::web::{AppError, Core};

#[derive(Template)]
#[template(path = "partials/dc_drawing.html")]
pub struct DrawingPartial {
    pub name: String,
    pub svg: TopologySvg,
    /// Active runs on this Data Center: (run id, "CHG-1 · upgrade-8.11").
    pub active: Vec<(String, String)>,
    /// Sent on the event stream: swapped in by id.
    pub oob: bool,
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

/// What a step shows on its server while its run is active (`None`: nothing to show).
fn state_of(status: StepStatus) -> Option<StepState> {
    match status {
        s if s.is_in_flight() => Some(StepState::Running),
        // An unknown outcome waits for a person to say what happened.
        StepStatus::AwaitingApproval
        | StepStatus::AwaitingOperator
        | StepStatus::OutcomeUnknown => Some(StepState::Waiting),
        StepStatus::Failed => Some(StepState::Failed),
        StepStatus::Succeeded => Some(StepState::Done),
        _ => None,
    }
}

/// The drawing of `inv` (stored as `dc_name`) now.
pub async fn build(
    state: &Core,
    inv: &Inventory,
    dc_name: &str,
    agents: &[facts::FactRow],
    stored: &BTreeMap<String, StoredFacts>,
) -> Result<DrawingPartial, AppError> {
    let mut detail = details(agents, stored);
    let mut active = Vec::new();
    for run in state.store.runs().await? {
        if run.inventory != inv.name || run.status.is_terminal() {
            continue;
        }
        active.push((
            run.id.clone(),
            format!("{} · {}", run.change_ticket, run.runbook),
        ));
        // Per server, the step that matters most: failed, then waiting, then running, then
        // the last one done; the newest of equals.
        let mut chosen: BTreeMap<String, (StepState, i64, String)> = BTreeMap::new();
        for step in state.store.steps(&run.id).await? {
            let (Some(host), Some(st)) = (step.spec.host.as_deref(), state_of(step.status)) else {
                continue;
            };
            let key = (st, step.updated_at);
            let slot = chosen
                .entry(host.to_string())
                .or_insert((st, i64::MIN, String::new()));
            if key > (slot.0, slot.1) {
                *slot = (st, step.updated_at, step.spec.title.clone());
            }
        }
        for (host, (st, _, title)) in chosen {
            detail.entry(host).or_default().step = Some(StepOnServer { title, state: st });
        }
    }
    Ok(DrawingPartial {
        name: dc_name.to_string(),
        oob: false,
        svg: TopologySvg {
            name: inv.name.clone(),
            d: topology::draw_with(inv, &detail),
        },
        active,
    })
}

/// The drawing of the stored Data Center `name` now.
pub async fn current(state: &Core, name: &str) -> Result<DrawingPartial, AppError> {
    let dc = datacenters::current(&state.pool, name)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no Data Center named `{name}`")))?;
    let inv = dc
        .inventory()
        .map_err(|e| AppError::Conflict(format!("the stored inventory no longer parses: {e}")))?;
    let enrolled = crate::executors::agent::registry::list(&state.pool).await?;
    let (agents, _) = facts::facts(&inv, &enrolled, state.clock.now_secs());
    let stored = crate::executors::agent::registry::all_facts(&state.pool).await?;
    build(state, &inv, &dc.name, &agents, &stored).await
}

/// `GET /datacenters/NAME/drawing`: the live region alone.
pub async fn live(
    State(state): State<Core>,
    me: CurrentUser,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let partial = current(&state, &name).await?;
    let body = partial.render().map_err(|e| AppError::Internal(e.into()))?;
    Ok(Html(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_step_shows_in_words_and_every_text_is_escaped() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/standalone.toml");
        let inv = Inventory::load(&path).expect("example inventory parses");
        let mut detail = BTreeMap::new();
        detail.insert(
            "FABDC01".to_string(),
            ServerDetail {
                versions: Vec::new(),
                health: "online".into(),
                step: Some(StepOnServer {
                    title: "<script>alert(1)</script> & \"x\"".into(),
                    state: StepState::Failed,
                }),
            },
        );
        let partial = DrawingPartial {
            name: "A <b>DC</b>".into(),
            svg: TopologySvg {
                name: inv.name.clone(),
                d: topology::draw_with(&inv, &detail),
            },
            active: vec![("r1".into(), "<i>CHG-1</i> · upgrade-8.11".into())],
            oob: true,
        };
        let html = partial.render().unwrap();
        assert!(
            !html.contains("<script>") && !html.contains("<i>"),
            "{html}"
        );
        assert!(
            html.contains("✖ failed: &#60;script&#62;")
                || html.contains("✖ failed: &lt;script&gt;"),
            "{html}"
        );
        assert!(html.contains("data-step=\"failed\""), "{html}");
        assert!(html.contains("hx-swap-oob=\"true\""), "{html}");
        // Servers without a step say so by an empty state, not by a missing attribute.
        assert!(
            html.contains("id=\"server-FABWEB01\" data-step=\"\""),
            "{html}"
        );
    }
}
