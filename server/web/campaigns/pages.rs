//! The campaign pages: the list and the "plan a campaign" form on a Data Center's page, the
//! form alone (where a refused plan is shown with what the planner said), and a campaign's page —
//! its stages in order with why each comes where it is, each stage's run and progress, the one
//! action that fits each stage, and the estate's versions projected vs found after each stage.
//!
//! The page is refreshed on load: a stage's run has its own live page, linked from here.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;

use super::{stage_label, CampaignRequest, StageRunRequest};
use crate::engine::machine::{RunStatus, StepStatus};
use crate::engine::store::campaigns::{
    CampaignRecord, CampaignTarget, ServerVersions, StageRecord,
};
use crate::knowledge::campaign::estate_of;
use crate::web::auth::{CurrentUser, Role};
use crate::web::pages::datacenters::urlencode;
use crate::web::views::{fmt_duration, html, see_other, Chrome};
use crate::web::{datacenters, words, AppError, Core, Site};

/// The choices the form offers for each part of the target: what the guide covers.
pub struct TargetChoices {
    pub connected: &'static [&'static str],
    pub windows: &'static [&'static str],
    pub sql: &'static [&'static str],
}

pub const CHOICES: TargetChoices = TargetChoices {
    connected: &["8.11"],
    windows: &["2012 R2", "2016"],
    sql: &["2012 SP4", "2014 SP2", "2016"],
};

/// One campaign in a list.
pub struct CampaignRow {
    pub id: String,
    pub target: String,
    pub created_by: String,
    pub created: String,
    pub state: String,
    pub progress: String,
}

/// The campaigns of one Data Center and the form to plan another (part of its page).
#[derive(Template)]
#[template(path = "partials/campaign_list.html")]
pub struct CampaignList {
    pub datacenter: String,
    pub csrf: String,
    pub can_plan: bool,
    pub rows: Vec<CampaignRow>,
    pub choices: TargetChoices,
}

#[derive(Template)]
#[template(path = "campaign_new.html")]
pub struct NewCampaignPage {
    pub chrome: Chrome,
    pub datacenters: Vec<String>,
    pub req: CampaignRequest,
    pub error: Option<String>,
    pub choices: TargetChoices,
}

/// One server's row in a stage's estate table: what the planner projects and what was found.
pub struct EstateRow {
    pub server: String,
    pub projected: String,
    pub actual: String,
    /// `same`, `differs` or `unknown` (no actual yet): a word, and a class.
    pub matches: &'static str,
}

pub struct StageView {
    pub ordinal: i64,
    pub label: String,
    pub reason: String,
    pub section: String,
    pub section_href: String,
    pub servers: String,
    pub estimate: String,
    pub run_id: Option<String>,
    pub status: &'static str,
    pub status_words: &'static str,
    pub done_steps: usize,
    pub total_steps: usize,
    pub percent: usize,
    /// This stage is the next one (every earlier stage's run succeeded) and may get a new run.
    pub can_create: bool,
    /// Why a stage cannot get a run yet, in words (empty when it can or has one).
    pub waits_for: String,
    /// Where the actual versions come from: the estate found when the next stage's run was
    /// created, or the estate as found now.
    pub actual_source: &'static str,
    pub estate: Vec<EstateRow>,
}

#[derive(Template)]
#[template(path = "campaign.html")]
pub struct CampaignPage {
    pub chrome: Chrome,
    pub id: String,
    pub datacenter: String,
    pub datacenter_href: String,
    pub target: String,
    pub state: String,
    pub created_by: String,
    pub created: String,
    pub succeeded: usize,
    pub percent: usize,
    pub stages: Vec<StageView>,
    pub error: Option<String>,
}

/// `Connected 8.11 · Windows Server 2016 · SQL Server 2016`.
pub fn target_words(t: &CampaignTarget) -> String {
    let mut parts = Vec::new();
    if let Some(v) = &t.connected {
        parts.push(format!("Connected {v}"));
    }
    if let Some(v) = &t.windows {
        parts.push(format!("Windows Server {v}"));
    }
    if let Some(v) = &t.sql_server {
        parts.push(format!("SQL Server {v}"));
    }
    parts.join(" · ")
}

fn versions_words(v: &ServerVersions) -> String {
    let mut parts = vec![format!("Connected {}", v.version)];
    if let Some(w) = &v.windows {
        parts.push(format!("Windows {w}"));
    }
    if let Some(q) = &v.sql_server {
        parts.push(format!("SQL {q}"));
    }
    parts.join(" · ")
}

fn fmt_ms(ms: i64) -> String {
    crate::web::views::fmt_time(ms.div_euclid(1000))
}

async fn rows(core: &Core, campaigns: Vec<CampaignRecord>) -> Result<Vec<CampaignRow>, AppError> {
    let mut out = Vec::with_capacity(campaigns.len());
    for c in campaigns {
        let detail = core.store.campaign(&c.id).await?;
        let done = detail
            .stages
            .iter()
            .filter(|s| s.run_status == Some(RunStatus::Succeeded))
            .count();
        out.push(CampaignRow {
            progress: format!("{done} of {} stages succeeded", detail.stages.len()),
            target: target_words(&c.target),
            created: fmt_ms(c.created_at),
            id: c.id,
            created_by: c.created_by,
            state: c.state,
        });
    }
    Ok(out)
}

/// The campaign list and form for the Data Center page.
pub async fn list_partial(
    core: &Core,
    me: &CurrentUser,
    datacenter: &str,
) -> Result<CampaignList, AppError> {
    let campaigns = core.store.campaigns(Some(datacenter)).await?;
    Ok(CampaignList {
        datacenter: datacenter.to_string(),
        csrf: me.csrf_token().to_string(),
        can_plan: me.role().allows(Role::Operator),
        rows: rows(core, campaigns).await?,
        choices: CHOICES,
    })
}

async fn new_page(
    core: &Core,
    me: &CurrentUser,
    req: CampaignRequest,
    error: Option<String>,
) -> Result<NewCampaignPage, AppError> {
    Ok(NewCampaignPage {
        chrome: Chrome::new(me, "datacenters"),
        datacenters: datacenters::list(&core.pool)
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect(),
        req,
        error,
        choices: CHOICES,
    })
}

/// `GET /campaigns/new?datacenter=…`: the form alone.
pub async fn form(
    State(core): State<Core>,
    me: CurrentUser,
    Query(req): Query<CampaignRequest>,
) -> Result<Response, AppError> {
    me.require(Role::Operator)?;
    html(&new_page(&core, &me, req, None).await?)
}

/// `POST /campaigns`: plans and records the campaign, then shows it; a refusal re-shows the
/// form as typed with what the planner said (422), and nothing is stored.
pub async fn create(
    State(core): State<Core>,
    State(site): State<Site>,
    me: CurrentUser,
    Form(req): Form<CampaignRequest>,
) -> Result<Response, AppError> {
    me.require(Role::Operator)?;
    match super::create(&core, &site, &me, &req).await {
        Ok(c) => Ok(see_other(&format!("/campaigns/{}", c.id))),
        Err(e @ (AppError::BadRequest(_) | AppError::Conflict(_))) => {
            let status = e.status();
            let page = new_page(&core, &me, req, Some(e.to_string())).await?;
            Ok((status, Html(page.render()?)).into_response())
        }
        Err(e) => Err(e),
    }
}

/// Steps done (succeeded or skipped) and all steps of `run`.
async fn progress(core: &Core, run: &str) -> Result<(usize, usize), AppError> {
    let steps = core.store.step_statuses(run).await?;
    let done = steps
        .iter()
        .filter(|s| matches!(s.status, StepStatus::Succeeded | StepStatus::Skipped))
        .count();
    Ok((done, steps.len()))
}

fn estate_rows(projected: &[ServerVersions], actual: Option<&[ServerVersions]>) -> Vec<EstateRow> {
    projected
        .iter()
        .map(|p| {
            let found = actual.and_then(|a| a.iter().find(|a| a.name == p.name));
            EstateRow {
                server: p.name.clone(),
                projected: versions_words(p),
                actual: found.map(versions_words).unwrap_or_else(|| "—".into()),
                matches: match found {
                    None => "unknown",
                    Some(a) if a == p => "same",
                    Some(_) => "differs",
                },
            }
        })
        .collect()
}

async fn stage_view(
    core: &Core,
    s: &StageRecord,
    next: Option<i64>,
    found_now: Option<&[ServerVersions]>,
) -> Result<StageView, AppError> {
    let (done_steps, total_steps) = match &s.run_id {
        Some(run) => progress(core, run).await?,
        None => (0, 0),
    };
    let (status, status_words) = match s.run_status {
        Some(st) => (st.as_str(), words::run_status(st)),
        None => ("pending", "no run yet"),
    };
    let is_next = next == Some(s.ordinal);
    let run_alive = s.run_status.is_some_and(|st| {
        !matches!(
            st,
            RunStatus::Failed | RunStatus::Aborted | RunStatus::Undone
        )
    });
    let (actual, actual_source) = match (&s.actual_after, s.run_status) {
        (Some(a), _) => (
            Some(a.as_slice()),
            "found when the next stage's run was created",
        ),
        (None, Some(RunStatus::Succeeded)) => (found_now, "as found now"),
        _ => (None, "after the stage's run succeeds"),
    };
    Ok(StageView {
        ordinal: s.ordinal,
        label: stage_label(&s.plan.runbook, &s.plan.params),
        reason: s.plan.reason.clone(),
        section: s.plan.section.clone(),
        section_href: section_href(&s.plan.section),
        servers: s.plan.servers.join(", "),
        estimate: fmt_duration(i64::try_from(s.plan.estimate_secs).unwrap_or(i64::MAX)),
        run_id: s.run_id.clone(),
        status,
        status_words,
        done_steps,
        total_steps,
        percent: (done_steps * 100).checked_div(total_steps).unwrap_or(0),
        can_create: is_next && !run_alive,
        waits_for: match next {
            Some(n) if n < s.ordinal => format!("waits until stage {n} has succeeded"),
            _ => String::new(),
        },
        actual_source,
        estate: estate_rows(&s.plan.estate_after, actual),
    })
}

async fn campaign_page(
    core: &Core,
    site: &Site,
    me: &CurrentUser,
    id: &str,
    error: Option<String>,
) -> Result<CampaignPage, AppError> {
    if core
        .store
        .close_campaign_if_done(id, core.clock.now())
        .await?
    {
        tracing::info!(campaign = %id, "every stage succeeded: campaign done");
    }
    let detail = core.store.campaign(id).await?;
    let next = detail.next_stage().map(|s| s.ordinal);
    let any_succeeded = detail
        .stages
        .iter()
        .any(|s| s.run_status == Some(RunStatus::Succeeded) && s.actual_after.is_none());
    // The estate as found now, only where a stage shows it (a succeeded stage without a
    // recorded "after"); a Data Center that no longer parses shows no actual versions.
    let found_now = if any_succeeded {
        super::estate_found(core, site, &detail.campaign.data_center)
            .await
            .ok()
            .map(|inv| super::versions(&estate_of(&inv)))
    } else {
        None
    };
    let mut stages = Vec::with_capacity(detail.stages.len());
    for s in &detail.stages {
        stages.push(stage_view(core, s, next, found_now.as_deref()).await?);
    }
    let succeeded = stages.iter().filter(|s| s.status == "succeeded").count();
    let c = detail.campaign;
    Ok(CampaignPage {
        chrome: Chrome::new(me, "datacenters"),
        percent: (succeeded * 100).checked_div(stages.len()).unwrap_or(0),
        succeeded,
        stages,
        target: target_words(&c.target),
        created: fmt_ms(c.created_at),
        id: c.id,
        datacenter_href: datacenter_href(&c.data_center),
        datacenter: c.data_center,
        state: c.state,
        created_by: c.created_by,
        error,
    })
}

/// `GET /campaigns/{id}`.
pub async fn page(
    State(core): State<Core>,
    State(site): State<Site>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    html(&campaign_page(&core, &site, &me, &id, None).await?)
}

/// `POST /campaigns/{id}/stages/{n}/run`: re-plans the stage on the estate as found, creates
/// its run and opens it; a refusal (engine or planner) re-shows the campaign with the reason.
pub async fn create_run(
    State(core): State<Core>,
    State(site): State<Site>,
    me: CurrentUser,
    Path((id, ordinal)): Path<(String, i64)>,
    Form(req): Form<StageRunRequest>,
) -> Result<Response, AppError> {
    me.require(Role::Operator)?;
    match super::create_stage_run(&core, &site, &me, &id, ordinal, &req).await {
        Ok(run) => Ok(see_other(&format!("/runs/{run}"))),
        Err(e @ (AppError::BadRequest(_) | AppError::Conflict(_) | AppError::Forbidden(_))) => {
            let status = e.status();
            let page = campaign_page(&core, &site, &me, &id, Some(e.to_string())).await?;
            Ok((status, Html(page.render()?)).into_response())
        }
        Err(e) => Err(e),
    }
}

/// The pages' routes, merged into the application's router.
pub fn routes() -> axum::Router<crate::web::AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/campaigns", post(create))
        .route("/campaigns/new", get(form))
        .route("/campaigns/{id}", get(page))
        .route("/campaigns/{id}/stages/{stage}/run", post(create_run))
        .route("/guide", get(super::guide::page))
}

/// The Data Center page's link to it, percent-encoded.
pub fn datacenter_href(name: &str) -> String {
    format!("/datacenters/{}", urlencode(name))
}

/// `/guide?section=…#here`: the guide's text at the section a stage names.
pub fn section_href(section: &str) -> String {
    format!("/guide?section={}#here", urlencode(section))
}
