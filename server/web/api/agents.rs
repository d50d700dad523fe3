//! `/api/v1/agents`: every registered agent with its last heartbeat and the facts it last
//! reported (with their age), and `POST /agents/refresh` to collect them all now — the same data
//! and the same collector as the Agents and Data Center pages.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::ApiResult;
use crate::executors::agent::registry;
use crate::web::auth::{CurrentUser, Role};
use crate::web::error::ErrorBody;
use crate::web::{AppError, Core, Site};

#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentFacts {
    pub server: String,
    pub url: String,
    /// "unknown", "online" or "offline".
    #[schema(pattern = "^(unknown|online|offline)$")]
    pub status: String,
    pub checked_at: Option<i64>,
    pub agent_version: Option<String>,
    pub backend: Option<String>,
    pub clock_skew: Option<i64>,
    pub last_error: Option<String>,
    /// When the facts arrived (orchestrator clock, Unix seconds) and how old they are now.
    pub facts_received_at: Option<i64>,
    pub facts_age_secs: Option<i64>,
    /// Older than `[agents] facts_stale_secs`: preflight does not trust them.
    pub facts_stale: Option<bool>,
    /// `lockstep_protocol::SiteFacts`: services, services_missing, components, volumes,
    /// database_files, sql_accounts, tls_protocols, certificates, windows, sql_server,
    /// session_counters, errors.
    #[schema(value_type = Option<Object>)]
    pub facts: Option<lockstep_protocol::SiteFacts>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Refreshed {
    pub online: usize,
    pub offline: usize,
    pub facts: usize,
    pub problems: Vec<String>,
    pub agents: Vec<AgentFacts>,
}

async fn all(state: &Core, site: &Site) -> Result<Vec<AgentFacts>, AppError> {
    let now = state.clock.now_secs();
    let mut facts = registry::all_facts(&state.pool).await?;
    Ok(registry::list(&state.pool)
        .await?
        .into_iter()
        .map(|a| {
            let f = facts.remove(&a.server);
            AgentFacts {
                facts_received_at: f.as_ref().map(|f| f.received_at),
                facts_age_secs: f.as_ref().map(|f| f.age_secs(now)),
                facts_stale: f.as_ref().map(|f| f.age_secs(now) > site.facts_stale_secs),
                facts: f.map(|f| f.facts),
                server: a.server,
                url: a.url,
                status: a.status,
                checked_at: a.checked_at,
                agent_version: a.agent_version,
                backend: a.backend,
                clock_skew: a.clock_skew,
                last_error: a.last_error,
            }
        })
        .collect())
}

#[utoipa::path(
    get,
    path = "/agents",
    operation_id = "listAgents",
    summary = "Every registered agent with its last heartbeat and the facts it last reported, with their age",
    responses(
        (status = 200, description = "agents", body = Vec<AgentFacts>),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<Core>,
    State(site): State<Site>,
    me: CurrentUser,
) -> ApiResult<Vec<AgentFacts>> {
    me.require(Role::Viewer)?;
    Ok(Json(all(&state, &site).await?))
}

#[utoipa::path(
    post,
    path = "/agents/refresh",
    operation_id = "refreshAgents",
    summary = "Ask every agent for a heartbeat and its facts now (operator)",
    responses(
        (status = 200, description = "what the collection found", body = Refreshed),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it", body = ErrorBody),
        (status = 409, description = "no facts collector runs in this process", body = ErrorBody),
    )
)]
pub async fn refresh(
    State(state): State<Core>,
    State(site): State<Site>,
    me: CurrentUser,
) -> ApiResult<Refreshed> {
    me.require(Role::Operator)?;
    let collector = site.collector.clone().ok_or_else(|| {
        AppError::Conflict(
            "no facts collector runs in this process (start `lockstep serve`)".into(),
        )
    })?;
    let c = collector.collect(None).await?;
    tracing::info!(actor = %me.name(), online = c.online, offline = c.offline, facts = c.facts, "facts refreshed");
    Ok(Json(Refreshed {
        online: c.online,
        offline: c.offline,
        facts: c.facts,
        problems: c.problems,
        agents: all(&state, &site).await?,
    }))
}
