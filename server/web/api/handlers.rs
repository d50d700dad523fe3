//! The API's handlers. Each mirrors a page action and shares its code path.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::doc::{RunAction, StepAction};
use super::{ApiError, ApiJson, ApiQuery, ApiResult};
use crate::engine::audit::{AuditEvent, VerifyReport};
use crate::engine::store::{RunRecord, StepRecord};
use crate::engine::Store;
use crate::knowledge::preflight::Finding;
use crate::web::auth::{accounts, CurrentUser, Role};
use crate::web::error::ErrorBody;
use crate::web::live::Live;
use crate::web::pages::audit::AuditFilter;
use crate::web::pages::newrun::{self, RunRequest};
use crate::web::pages::report::{self, ReportJson};
use crate::web::pages::runbooks;
use crate::web::pages::runs::{apply_run_control, apply_step_control, StepForm};
use crate::web::{datacenters, AppError, Core, Site};

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub name: String,
    pub role: Role,
}

#[utoipa::path(
    get,
    path = "/me",
    operation_id = "me",
    summary = "Who the token belongs to",
    responses(
        (status = 200, description = "the user", body = Me),
        (status = 401, description = "not authenticated", body = ErrorBody),
    )
)]
pub async fn me(user: CurrentUser) -> ApiResult<Me> {
    Ok(Json(Me {
        name: user.user.name.clone(),
        role: user.user.role,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub label: String,
    /// Days until the token stops working (1 to 365; default 90).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 365)]
    pub expires_in_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenCreated {
    pub token: String,
    pub label: String,
    /// Unix seconds after which the token is refused.
    pub expires_at: i64,
}

/// A token of yours as listed: never its text; `state` is active, expired or revoked.
#[derive(Serialize, ToSchema)]
pub struct TokenListed {
    #[serde(flatten)]
    pub token: accounts::TokenInfo,
    #[schema(value_type = String, pattern = "^(active|expired|revoked)$")]
    pub state: &'static str,
}

#[utoipa::path(
    post,
    path = "/tokens",
    operation_id = "createToken",
    summary = "Create an API token for yourself (shown once); a token cannot create tokens",
    request_body = NewToken,
    responses(
        (status = 201, description = "created", body = TokenCreated),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it, or four-eyes", body = ErrorBody),
        (status = 422, description = "invalid input, nothing changed", body = ErrorBody),
    )
)]
pub async fn create_token(
    State(state): State<Core>,
    me: CurrentUser,
    ApiJson(t): ApiJson<NewToken>,
) -> Result<Response, ApiError> {
    me.require_session_to_mint_tokens()?;
    let now = state.clock.now_secs();
    let days = t.expires_in_days.unwrap_or(accounts::TOKEN_DEFAULT_DAYS);
    let token =
        accounts::create_token_for_days(&state.pool, me.user.id, &t.label, days, now).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token,
            label: t.label.trim().to_string(),
            expires_at: now + i64::from(days) * 86_400,
        }),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/tokens",
    operation_id = "listTokens",
    summary = "Your API tokens (never their text), with their state",
    responses(
        (status = 200, description = "your tokens", body = Vec<TokenListed>),
        (status = 401, description = "not authenticated", body = ErrorBody),
    )
)]
pub async fn tokens(State(state): State<Core>, me: CurrentUser) -> ApiResult<Vec<TokenListed>> {
    let now = state.clock.now_secs();
    Ok(Json(
        accounts::list_tokens(&state.pool, me.user.id)
            .await?
            .into_iter()
            .map(|t| TokenListed {
                state: t.state(now),
                token: t,
            })
            .collect(),
    ))
}

#[utoipa::path(
    post,
    path = "/tokens/{id}/revoke",
    operation_id = "revokeToken",
    summary = "Revoke one of your API tokens",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 200, description = "the token afterwards", body = TokenListed),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
        (status = 422, description = "invalid input, nothing changed", body = ErrorBody),
    )
)]
pub async fn revoke_token(
    State(state): State<Core>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<TokenListed> {
    // Token ids are numbers; any other id names no token (404, as an unknown number would),
    // rather than a path-parsing 400 the API does not document.
    let id: i64 = id
        .parse()
        .map_err(|_| AppError::NotFound(format!("token {}", crate::logtext::escaped(&id))))?;
    let now = state.clock.now_secs();
    accounts::revoke_token(&state.pool, me.user.id, id, now).await?;
    let t = accounts::list_tokens(&state.pool, me.user.id)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| AppError::NotFound(format!("token {id}")))?;
    Ok(Json(TokenListed {
        state: t.state(now),
        token: t,
    }))
}

#[utoipa::path(
    get,
    path = "/users",
    operation_id = "listUsers",
    summary = "List accounts (admin)",
    responses(
        (status = 200, description = "accounts", body = Vec<accounts::User>),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it, or four-eyes", body = ErrorBody),
    )
)]
pub async fn users(State(state): State<Core>, me: CurrentUser) -> ApiResult<Vec<accounts::User>> {
    me.require(Role::Admin)?;
    Ok(Json(accounts::list_users(&state.pool).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@-]+$")]
    pub name: String,
    #[schema(value_type = Role)]
    pub role: String,
    /// NIST 800-63B: at least 8 characters, not a commonly chosen password, not the name.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    /// The person's verified e-mail; absent: the account's own name.
    #[serde(default)]
    #[schema(max_length = 254)]
    pub person: Option<String>,
}

#[utoipa::path(
    post,
    path = "/users",
    operation_id = "addUser",
    summary = "Add an account (admin); NIST 800-63B password rules",
    request_body = NewUser,
    responses(
        (status = 201, description = "created", body = accounts::User),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it, or four-eyes", body = ErrorBody),
        (status = 409, description = "the run or step is in another state", body = ErrorBody),
        (status = 422, description = "invalid input, nothing changed", body = ErrorBody),
    )
)]
pub async fn add_user(
    State(state): State<Core>,
    me: CurrentUser,
    ApiJson(u): ApiJson<NewUser>,
) -> Result<Response, ApiError> {
    me.require(Role::Admin)?;
    let role: Role = u
        .role
        .parse()
        .map_err(|e: String| AppError::BadRequest(format!("role: {e}")))?;
    let user = accounts::add_user_for(
        &state.pool,
        u.name.trim(),
        u.person.as_deref(),
        role,
        &u.password,
        state.clock.now_secs(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

#[utoipa::path(
    post,
    path = "/users/{name}/disable",
    operation_id = "disableUser",
    summary = "Disable an account and end its sessions (admin)",
    params(("name" = String, Path, description = "Account name")),
    responses(
        (status = 200, description = "disabled", body = accounts::User),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it, or four-eyes", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    )
)]
pub async fn disable_user(
    State(state): State<Core>,
    me: CurrentUser,
    Path(name): Path<String>,
) -> ApiResult<accounts::User> {
    me.require(Role::Admin)?;
    Ok(Json(accounts::disable_user(&state.pool, &name).await?))
}

#[derive(Serialize, ToSchema)]
pub struct DataCenterSummary {
    pub name: String,
    pub uploaded_by: String,
    pub uploaded_at: i64,
}

#[utoipa::path(
    get,
    path = "/datacenters",
    operation_id = "listDataCenters",
    summary = "List Data Centers",
    responses(
        (status = 200, description = "current versions", body = Vec<DataCenterSummary>),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it, or four-eyes", body = ErrorBody),
    )
)]
pub async fn datacenters(
    State(state): State<Core>,
    me: CurrentUser,
) -> ApiResult<Vec<DataCenterSummary>> {
    me.require(Role::Viewer)?;
    let all = datacenters::list(&state.pool)
        .await
        .map_err(AppError::from)?;
    Ok(Json(
        all.into_iter()
            .map(|d| DataCenterSummary {
                name: d.name,
                uploaded_by: d.uploaded_by,
                uploaded_at: d.uploaded_at,
            })
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Upload {
    /// The inventory file's text.
    #[schema(min_length = 1)]
    pub toml: String,
}

#[derive(Serialize, ToSchema)]
pub struct Problem {
    pub line: Option<usize>,
    pub field: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct UploadRefused {
    pub error: String,
    pub status: u16,
    pub problems: Vec<Problem>,
}

#[derive(Serialize, ToSchema)]
pub struct DataCenterDetail {
    pub name: String,
    /// The inventory as parsed (`knowledge::inventory::Inventory`).
    #[schema(value_type = Object)]
    pub inventory: crate::knowledge::inventory::Inventory,
    pub findings: Vec<Finding>,
}

#[utoipa::path(
    post,
    path = "/datacenters",
    operation_id = "uploadDataCenter",
    summary = "Store an inventory (operator); refused with every problem named",
    request_body = Upload,
    responses(
        (status = 201, description = "stored", body = DataCenterDetail),
        (status = 422, description = "not stored: every problem named (`UploadRefused`), or the request itself refused (`ErrorBody`)", body = UploadRefused),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it, or four-eyes", body = ErrorBody),
    )
)]
pub async fn upload_datacenter(
    State(state): State<Core>,
    State(site): State<Site>,
    me: CurrentUser,
    ApiJson(u): ApiJson<Upload>,
) -> Result<Response, ApiError> {
    me.require(Role::Operator)?;
    match datacenters::save(&state.pool, &u.toml, me.name(), state.clock.now_secs())
        .await
        .map_err(AppError::from)?
    {
        Ok(inv) => {
            let live = site.live_facts(&state).await?;
            let findings =
                crate::knowledge::preflight::preflight_live(&inv, None, &BTreeMap::new(), &live);
            Ok((
                StatusCode::CREATED,
                Json(DataCenterDetail {
                    name: inv.name.clone(),
                    inventory: inv,
                    findings,
                }),
            )
                .into_response())
        }
        Err(e) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(UploadRefused {
                error: "the inventory was not stored".into(),
                status: 422,
                problems: e
                    .problems
                    .into_iter()
                    .map(|p| Problem {
                        line: p.line,
                        field: p.field,
                        message: p.message,
                    })
                    .collect(),
            }),
        )
            .into_response()),
    }
}

#[utoipa::path(
    get,
    path = "/datacenters/{name}",
    operation_id = "getDataCenter",
    summary = "A Data Center with its preflight findings",
    params(("name" = String, Path, description = "Data Center name")),
    responses(
        (status = 200, description = "the Data Center", body = DataCenterDetail),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it, or four-eyes", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
        (status = 409, description = "the run or step is in another state", body = ErrorBody),
    )
)]
pub async fn datacenter(
    State(state): State<Core>,
    State(site): State<Site>,
    me: CurrentUser,
    Path(name): Path<String>,
) -> ApiResult<DataCenterDetail> {
    me.require(Role::Viewer)?;
    let dc = datacenters::current(&state.pool, &name)
        .await
        .map_err(AppError::from)?
        .ok_or_else(|| AppError::NotFound(format!("no Data Center named `{name}`")))?;
    let inv = dc
        .inventory()
        .map_err(|e| AppError::Conflict(format!("the stored inventory no longer parses: {e}")))?;
    let live = site.live_facts(&state).await?;
    let findings = crate::knowledge::preflight::preflight_live(&inv, None, &BTreeMap::new(), &live);
    Ok(Json(DataCenterDetail {
        name: dc.name,
        inventory: inv,
        findings,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct RunbookSummary {
    pub id: String,
    pub title: String,
    pub description: String,
    pub parameters: Vec<crate::knowledge::runbook::Parameter>,
    pub steps: Vec<RunbookStep>,
}

#[derive(Serialize, ToSchema)]
pub struct RunbookStep {
    pub id: String,
    pub title: String,
    pub section: String,
    pub phase: String,
    pub kind: &'static str,
    pub estimate_secs: u64,
}

fn runbook_summary(r: &crate::knowledge::runbook::Runbook) -> RunbookSummary {
    RunbookSummary {
        id: r.id.clone(),
        title: r.title.clone(),
        description: r.description.clone(),
        parameters: r.parameters.clone(),
        steps: r
            .steps
            .iter()
            .map(|s| RunbookStep {
                id: s.id.clone(),
                title: s.title.clone(),
                section: s.section.clone(),
                phase: s.phase.clone(),
                kind: s.kind.as_str(),
                estimate_secs: s.estimate_secs,
            })
            .collect(),
    }
}

#[utoipa::path(
    get,
    path = "/runbooks",
    operation_id = "listRunbooks",
    summary = "The runbook catalog",
    responses(
        (status = 200, description = "runbooks", body = Vec<RunbookSummary>),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it, or four-eyes", body = ErrorBody),
    )
)]
pub async fn runbooks(me: CurrentUser) -> ApiResult<Vec<RunbookSummary>> {
    me.require(Role::Viewer)?;
    Ok(Json(
        runbooks::catalog()?
            .all()
            .iter()
            .map(runbook_summary)
            .collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/runbooks/{id}",
    operation_id = "getRunbook",
    summary = "One runbook with its steps",
    params(("id" = String, Path, description = "Runbook id")),
    responses(
        (status = 200, description = "the runbook", body = RunbookSummary),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it, or four-eyes", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    )
)]
pub async fn runbook(me: CurrentUser, Path(id): Path<String>) -> ApiResult<RunbookSummary> {
    me.require(Role::Viewer)?;
    Ok(Json(runbook_summary(runbooks::runbook(&id)?)))
}

#[utoipa::path(
    get,
    path = "/runs",
    operation_id = "listRuns",
    summary = "Every run, newest first",
    responses(
        (status = 200, description = "runs", body = Vec<RunRecord>),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it, or four-eyes", body = ErrorBody),
    )
)]
pub async fn runs(State(store): State<Store>, me: CurrentUser) -> ApiResult<Vec<RunRecord>> {
    me.require(Role::Viewer)?;
    Ok(Json(store.runs().await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    #[schema(min_length = 1)]
    pub datacenter: String,
    #[schema(min_length = 1)]
    pub runbook: String,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub change_ticket: String,
    /// `YYYY-MM-DDTHH:MM` (UTC)
    #[serde(default)]
    #[schema(pattern = "^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$")]
    pub window_start: Option<String>,
    /// `YYYY-MM-DDTHH:MM` (UTC)
    #[serde(default)]
    #[schema(pattern = "^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$")]
    pub window_end: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RunDetail {
    pub run: RunRecord,
    pub steps: Vec<StepRecord>,
}

#[utoipa::path(
    post,
    path = "/runs",
    operation_id = "createRun",
    summary = "Create a run and submit it for start approval (operator)",
    request_body = CreateRun,
    responses(
        (status = 201, description = "created", body = RunDetail),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it, or four-eyes", body = ErrorBody),
        (status = 409, description = "the run or step is in another state", body = ErrorBody),
        (status = 422, description = "invalid input, nothing changed", body = ErrorBody),
    )
)]
pub async fn create_run(
    State(state): State<Core>,
    me: CurrentUser,
    State(site): State<Site>,
    ApiJson(c): ApiJson<CreateRun>,
) -> Result<Response, ApiError> {
    me.require(Role::Operator)?;
    let req = RunRequest {
        datacenter: c.datacenter.trim().to_string(),
        runbook: c.runbook.trim().to_string(),
        params: c.params,
        change_ticket: c.change_ticket.trim().to_string(),
        window_start: c.window_start.unwrap_or_default().trim().to_string(),
        window_end: c.window_end.unwrap_or_default().trim().to_string(),
    };
    let id = newrun::create_run(&state, &site, &me, &req).await?;
    let detail = run_detail(&state, &id).await?;
    Ok((StatusCode::CREATED, Json(detail)).into_response())
}

async fn run_detail(state: &Core, id: &str) -> Result<RunDetail, AppError> {
    Ok(RunDetail {
        run: state.store.run(id).await?,
        steps: state.store.steps(id).await?,
    })
}

#[utoipa::path(
    get,
    path = "/runs/{id}",
    operation_id = "getRun",
    summary = "A run with its steps",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "the run", body = RunDetail),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it, or four-eyes", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    )
)]
pub async fn run(
    State(state): State<Core>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<RunDetail> {
    me.require(Role::Viewer)?;
    Ok(Json(run_detail(&state, &id).await?))
}

/// What a step's executors said while it ran (every attempt), oldest first.
#[derive(Serialize, ToSchema)]
pub struct StepLogJson {
    /// Lines stored for the step; at most [`crate::engine::steplog::LINES_PER_STEP`] plus the
    /// notice that more was dropped.
    pub total: i64,
    pub lines: Vec<crate::engine::steplog::LogLine>,
}

#[utoipa::path(
    get,
    path = "/runs/{id}/steps/{step}/log",
    operation_id = "getStepLog",
    summary = "What the step's executors said (agent actions, SQL Server messages, probe attempts), every attempt, oldest first; at most 200 lines per step",
    params(("id" = String, Path, description = "Run id"), ("step" = String, Path, description = "Step id")),
    responses(
        (status = 200, description = "the lines", body = StepLogJson),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it, or four-eyes", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    )
)]
pub async fn step_log(
    State(store): State<Store>,
    State(live): State<Arc<Live>>,
    me: CurrentUser,
    Path((id, step)): Path<(String, String)>,
) -> ApiResult<StepLogJson> {
    me.require(Role::Viewer)?;
    // 404 for an unknown run or step, before anything is read from the log.
    store.step(&id, &step).await?;
    let all = crate::engine::steplog::LINES_PER_STEP as usize + 1;
    let tail = live.step_log().tail(&id, &step, all).await?;
    Ok(Json(StepLogJson {
        total: tail.total,
        lines: tail.lines,
    }))
}

#[utoipa::path(
    get,
    path = "/runs/{id}/report",
    operation_id = "getReport",
    summary = "The change record: summary, approvals, overrides, manual tasks, backups, steps with evidence as tables, servers (`record`), and the raw run, steps and events",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "report", body = ReportJson),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it, or four-eyes", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    )
)]
pub async fn report(
    State(state): State<Core>,
    State(site): State<Site>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<ReportJson> {
    me.require(Role::Viewer)?;
    Ok(Json(report::build_json(&state, &site, &id).await?))
}

/// An action body that may be left out entirely (empty means all defaults).
fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, AppError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| AppError::BadRequest(format!("request body: {e}")))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunActionBody {
    /// For `approve`: required.
    #[serde(default)]
    pub comment: String,
    /// For `pause`, `abort`, `undo`, `extend`: required.
    #[serde(default)]
    pub reason: String,
    /// For `extend`: the window's new end, like 2026-11-28T01:30 (UTC).
    #[serde(default)]
    pub until: String,
    /// For `override`: the preflight finding's key, as `preflight` in the run's detail names it.
    #[serde(default)]
    pub finding: String,
    /// For `override`: why this finding does not block this run (at most 2,000 characters).
    #[serde(default)]
    pub justification: String,
}

#[utoipa::path(
    post,
    path = "/runs/{id}/{action}",
    operation_id = "runAction",
    summary = "Run control: submit, approve (start; four-eyes), pause, resume, abort, undo, extend (the window), override (a preflight finding)",
    params(("id" = String, Path, description = "Run id"), ("action" = RunAction, Path, description = "What to do")),
    request_body = Option<RunActionBody>,
    responses(
        (status = 200, description = "the run afterwards", body = RunDetail),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it, or four-eyes", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
        (status = 409, description = "the run or step is in another state", body = ErrorBody),
        (status = 422, description = "invalid input, nothing changed", body = ErrorBody),
    )
)]
pub async fn run_action(
    State(state): State<Core>,
    me: CurrentUser,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<RunDetail> {
    let b: RunActionBody = optional_json(&body)?;
    let input = crate::web::pages::runs::RunForm {
        comment: b.comment,
        reason: b.reason,
        until: b.until,
        finding: b.finding,
        justification: b.justification,
    };
    apply_run_control(&state, &me, &id, &action, &input).await?;
    Ok(Json(run_detail(&state, &id).await?))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepActionBody {
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub content_hash: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub justification: String,
    /// For `resolve`: the evidence (mark done) or the reason (mark failed).
    #[serde(default)]
    pub text: String,
    /// For `resolve`: `done` or `failed`.
    #[serde(default)]
    pub decision: String,
}

#[utoipa::path(
    post,
    path = "/runs/{id}/steps/{step}/{action}",
    operation_id = "stepAction",
    summary = "Step control: approve (or deny), claim, complete, retry, ask again (a denied gate), skip, resolve",
    params(("id" = String, Path, description = "Run id"), ("step" = String, Path, description = "Step id"), ("action" = StepAction, Path, description = "What to do")),
    request_body = Option<StepActionBody>,
    responses(
        (status = 200, description = "the step afterwards", body = StepRecord),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it, or four-eyes", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
        (status = 409, description = "the run or step is in another state", body = ErrorBody),
        (status = 422, description = "invalid input, nothing changed", body = ErrorBody),
    )
)]
pub async fn step_action(
    State(state): State<Core>,
    me: CurrentUser,
    Path((id, step_id, action)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<StepRecord> {
    let b: StepActionBody = optional_json(&body)?;
    let form = StepForm {
        comment: b.comment,
        content_hash: b.content_hash,
        decision: b.decision,
        note: b.note,
        justification: b.justification,
        text: b.text,
    };
    apply_step_control(&state, &me, &id, &step_id, &action, form).await?;
    Ok(Json(state.store.step(&id, &step_id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    #[schema(min_length = 1, max_length = 4000, pattern = "\\S")]
    pub text: String,
    #[serde(default)]
    pub step_id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/runs/{id}/comments",
    operation_id = "addComment",
    summary = "Comment on a run or one of its steps (operator)",
    params(("id" = String, Path, description = "Run id")),
    request_body = CommentBody,
    responses(
        (status = 201, description = "the audit event", body = AuditEvent),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it, or four-eyes", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
        (status = 422, description = "invalid input, nothing changed", body = ErrorBody),
    )
)]
pub async fn comment(
    State(state): State<Core>,
    me: CurrentUser,
    Path(id): Path<String>,
    ApiJson(c): ApiJson<CommentBody>,
) -> Result<Response, ApiError> {
    me.require(Role::Operator)?;
    let text = c.text.trim();
    if text.is_empty() || text.chars().count() > 4000 {
        return Err(AppError::BadRequest("text: write 1 to 4000 characters".into()).into());
    }
    let step = c
        .step_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let event = state
        .store
        .comment(&id, step, &me.actor(), text, state.clock.now())
        .await?;
    Ok((StatusCode::CREATED, Json(event)).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub chain: VerifyReport,
}

#[utoipa::path(
    get,
    path = "/audit",
    operation_id = "audit",
    summary = "Audit events (oldest first) with the chain verification",
    params(AuditFilter),
    responses(
        (status = 200, description = "a page of events", body = AuditPage),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it, or four-eyes", body = ErrorBody),
        (status = 422, description = "invalid input, nothing changed", body = ErrorBody),
    )
)]
pub async fn audit(
    State(store): State<Store>,
    me: CurrentUser,
    ApiQuery(f): ApiQuery<AuditFilter>,
) -> ApiResult<AuditPage> {
    me.require(Role::Viewer)?;
    let (events, total, page, pages) = f.page_of(&store, false).await?;
    let chain = store.verify_audit_incremental().await?;
    Ok(Json(AuditPage {
        events,
        total,
        page,
        pages,
        chain,
    }))
}
