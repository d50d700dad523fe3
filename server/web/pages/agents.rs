//! Agents (admin): every registered host agent with its last heartbeat. Agents are registered
//! with `lockstep agent add`; this page shows what the registry knows.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use crate::executors::agent::registry;
use crate::web::auth::{CurrentUser, Role};
use crate::web::views::{fmt_time, html, Chrome};
use crate::web::{AppError, AppState};

pub struct AgentRow {
    pub server: String,
    pub url: String,
    pub status: String,
    pub checked: String,
    pub version: String,
    pub backend: String,
    pub skew: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "agents.html")]
pub struct AgentsPage {
    pub chrome: Chrome,
    pub agents: Vec<AgentRow>,
}

pub async fn rows(state: &AppState) -> Result<Vec<AgentRow>, AppError> {
    Ok(registry::list(&state.pool)
        .await?
        .into_iter()
        .map(|a| AgentRow {
            server: a.server,
            url: a.url,
            status: a.status,
            checked: a.checked_at.map(fmt_time).unwrap_or_else(|| "never".into()),
            version: a.agent_version.unwrap_or_default(),
            backend: a.backend.unwrap_or_default(),
            skew: a.clock_skew.map(|s| format!("{s}s")).unwrap_or_default(),
            error: a.last_error.unwrap_or_default(),
        })
        .collect())
}

pub async fn page(State(state): State<AppState>, me: CurrentUser) -> Result<Response, AppError> {
    me.require(Role::Admin)?;
    html(&AgentsPage {
        chrome: Chrome::new(&me, "agents"),
        agents: rows(&state).await?,
    })
}
