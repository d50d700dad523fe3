//! Overview: active runs with their progress, and what awaits the viewer's approval.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use crate::engine::machine::{RunStatus, StepStatus};
use crate::web::auth::{CurrentUser, Role};
use crate::web::views::{html, Chrome};
use crate::web::{engine_error, AppError, AppState};

pub struct ActiveRun {
    pub id: String,
    pub status: &'static str,
    pub runbook: String,
    pub inventory: String,
    pub done: usize,
    pub total: usize,
    pub percent: usize,
}

pub struct Awaiting {
    pub run_id: String,
    pub what: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub chrome: Chrome,
    pub active: Vec<ActiveRun>,
    pub awaiting: Vec<Awaiting>,
    pub agents: Vec<crate::web::pages::agents::AgentRow>,
}

pub async fn page(State(state): State<AppState>, me: CurrentUser) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let mut active = Vec::new();
    let mut awaiting = Vec::new();
    let approver = me.role().allows(Role::Approver);
    for run in state.store.runs().await.map_err(engine_error)? {
        if run.status.is_terminal() {
            continue;
        }
        let mine = run.requester == me.name();
        if run.status == RunStatus::AwaitingStartApproval && approver && !mine {
            awaiting.push(Awaiting {
                run_id: run.id.clone(),
                what: format!("start of {} on {}", run.runbook, run.inventory),
            });
        }
        let steps = state.store.steps(&run.id).await.map_err(engine_error)?;
        if approver && !mine {
            for s in steps
                .iter()
                .filter(|s| s.status == StepStatus::AwaitingApproval)
            {
                if !s.state.approvals.iter().any(|a| a.actor == me.name()) {
                    awaiting.push(Awaiting {
                        run_id: run.id.clone(),
                        what: s.spec.title.clone(),
                    });
                }
            }
        }
        let total = steps.iter().filter(|s| s.undo_of.is_none()).count();
        let done = steps
            .iter()
            .filter(|s| {
                s.undo_of.is_none()
                    && matches!(s.status, StepStatus::Succeeded | StepStatus::Skipped)
            })
            .count();
        active.push(ActiveRun {
            id: run.id.clone(),
            status: run.status.as_str(),
            runbook: run.runbook.clone(),
            inventory: run.inventory.clone(),
            done,
            total,
            percent: (done * 100).checked_div(total).unwrap_or(0),
        });
    }
    let agents = crate::web::pages::agents::rows(&state).await?;
    html(&OverviewPage {
        chrome: Chrome::new(&me, "overview"),
        active,
        awaiting,
        agents,
    })
}
