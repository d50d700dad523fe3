//! Agents (admin): every registered host agent with its last heartbeat and the facts it last
//! reported about its server. Agents are registered with `lockstep agent add`; this page shows
//! what the registry knows. "Refresh facts" (operator, on this page and the Data Center page)
//! asks the collector for a heartbeat and facts from every agent now.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;

use crate::executors::agent::registry;
use crate::web::auth::{CurrentUser, Role};
use crate::web::pages::site_facts::{self, SiteFactsPartial};
use crate::web::views::{html, see_other, Chrome, Stamp};
use crate::web::{AppError, Core, Site};

pub struct AgentRow {
    pub server: String,
    pub url: String,
    pub status: String,
    /// When the agent was last checked (markup: a [`Stamp`]), or "never".
    pub checked: String,
    pub version: String,
    pub backend: String,
    pub skew: String,
    pub error: String,
    /// How long ago the last heartbeat answered ("12 s ago", "never").
    pub heartbeat_age: String,
    /// How old the agent's latest facts are (filled by the Agents page).
    pub facts_age: String,
}

/// `secs` ago in words.
fn ago(secs: i64) -> String {
    format!("{} ago", crate::web::views::fmt_duration(secs.max(0)))
}

#[derive(Template)]
#[template(path = "agents.html")]
pub struct AgentsPage {
    pub chrome: Chrome,
    pub agents: Vec<AgentRow>,
    pub facts: SiteFactsPartial,
}

pub async fn rows(state: &Core) -> Result<Vec<AgentRow>, AppError> {
    let now = state.clock.now_secs();
    Ok(registry::list(&state.pool)
        .await?
        .into_iter()
        .map(|a| AgentRow {
            server: a.server,
            url: a.url,
            status: a.status,
            checked: a
                .checked_at
                .map(|s| Stamp::at(s.saturating_mul(1000)).to_string())
                .unwrap_or_else(|| "never".into()),
            version: a.agent_version.unwrap_or_default(),
            backend: a.backend.unwrap_or_default(),
            skew: a.clock_skew.map(|s| format!("{s}s")).unwrap_or_default(),
            error: a.last_error.unwrap_or_default(),
            heartbeat_age: a
                .checked_at
                .map(|t| ago(now - t))
                .unwrap_or_else(|| "never".into()),
            facts_age: String::new(),
        })
        .collect())
}

pub async fn page(
    State(state): State<Core>,
    State(site): State<Site>,
    me: CurrentUser,
) -> Result<Response, AppError> {
    me.require(Role::Admin)?;
    let mut agents = rows(&state).await?;
    let names: Vec<String> = agents.iter().map(|a| a.server.clone()).collect();
    let all = registry::all_facts(&state.pool).await?;
    for a in &mut agents {
        a.facts_age = all
            .get(&a.server)
            .map(|f| ago(f.age_secs(state.clock.now_secs())))
            .unwrap_or_else(|| "no facts yet".into());
    }
    html(&AgentsPage {
        chrome: Chrome::new(&me, "agents"),
        facts: site_facts::partial(&names, &all, state.clock.now_secs(), site.facts_stale_secs),
        agents,
    })
}

#[derive(Deserialize)]
pub struct RefreshForm {
    /// The page to go back to: `/agents` or a Data Center's page.
    #[serde(default)]
    back: String,
}

/// Where "Refresh facts" may send the browser back to (never another site).
fn back_to(back: &str) -> &str {
    let local =
        back.starts_with('/') && !back.starts_with("//") && !back.contains(['\\', '\r', '\n']);
    if local && (back == "/agents" || back.starts_with("/datacenters/")) {
        back
    } else {
        "/agents"
    }
}

/// Collects every agent's heartbeat and facts now (operator), then shows the page again.
pub async fn refresh(
    State(site): State<Site>,
    me: CurrentUser,
    Form(f): Form<RefreshForm>,
) -> Result<Response, AppError> {
    me.require(Role::Operator)?;
    let collector = site.collector.clone().ok_or_else(|| {
        AppError::Conflict(
            "no facts collector runs in this process (start `lockstep serve`)".into(),
        )
    })?;
    let c = collector.collect(None).await?;
    tracing::info!(actor = %me.name(), online = c.online, offline = c.offline, facts = c.facts, "facts refreshed");
    Ok(see_other(back_to(&f.back)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn refresh_goes_back_only_to_this_sites_agent_and_data_center_pages() {
        assert_eq!(
            super::back_to("/datacenters/Contoso%20production"),
            "/datacenters/Contoso%20production"
        );
        assert_eq!(super::back_to("/agents"), "/agents");
        for evil in [
            "//evil.example/x",
            "https://evil.example",
            "/datacenters/x\r\nSet-Cookie: a=b",
            "/logout",
            "",
        ] {
            assert_eq!(super::back_to(evil), "/agents", "{evil:?}");
        }
    }
}
