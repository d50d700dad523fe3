//! The campaigns in the JSON API (`/api/v1/campaigns`): list, create (plan and record), show,
//! and create a stage's run — the pages' code paths, answered as JSON; refusals are the API's
//! `{ "error", "status" }` (422 for a target the planner refuses, 409 for a stage out of order).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{CampaignRequest, StageRunRequest};
use crate::engine::store::campaigns::{CampaignDetail, CampaignRecord};
use crate::web::api::{ApiError, ApiJson, ApiQuery, ApiResult};
use crate::web::auth::{CurrentUser, Role};
use crate::web::{AppState, Core, Site};

/// The routes, merged into the API's router (`/api/v1`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/campaigns", get(list).post(create))
        .route("/campaigns/{id}", get(show))
        .route("/campaigns/{id}/stages/{stage}/run", post(create_run))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    datacenter: Option<String>,
}

/// `GET /api/v1/campaigns[?datacenter=NAME]`: newest first.
pub async fn list(
    State(core): State<Core>,
    me: CurrentUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Vec<CampaignRecord>> {
    me.require(Role::Viewer)?;
    Ok(Json(core.store.campaigns(q.datacenter.as_deref()).await?))
}

/// `POST /api/v1/campaigns {"datacenter", "target": {"connected", "windows", "sql_server"}}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaign {
    datacenter: String,
    target: TargetJson,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TargetJson {
    connected: Option<String>,
    windows: Option<String>,
    sql_server: Option<String>,
}

pub async fn create(
    State(core): State<Core>,
    State(site): State<Site>,
    me: CurrentUser,
    ApiJson(c): ApiJson<CreateCampaign>,
) -> Result<Response, ApiError> {
    me.require(Role::Operator)?;
    let req = CampaignRequest {
        datacenter: c.datacenter,
        connected: c.target.connected.unwrap_or_default(),
        windows: c.target.windows.unwrap_or_default(),
        sql: c.target.sql_server.unwrap_or_default(),
    };
    let record = super::create(&core, &site, &me, &req).await?;
    let detail = core.store.campaign(&record.id).await?;
    Ok((StatusCode::CREATED, Json(detail)).into_response())
}

/// `GET /api/v1/campaigns/{id}`: the campaign, its stages in order and each stage's run status.
pub async fn show(
    State(core): State<Core>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<CampaignDetail> {
    me.require(Role::Viewer)?;
    Ok(Json(core.store.campaign(&id).await?))
}

/// `POST /api/v1/campaigns/{id}/stages/{stage}/run {"change_ticket", "window_start"?,
/// "window_end"?}`: the stage's run, re-planned on the estate as found, submitted for start
/// approval; answers the campaign afterwards.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateStageRun {
    change_ticket: String,
    window_start: Option<String>,
    window_end: Option<String>,
}

pub async fn create_run(
    State(core): State<Core>,
    State(site): State<Site>,
    me: CurrentUser,
    Path((id, stage)): Path<(String, i64)>,
    ApiJson(c): ApiJson<CreateStageRun>,
) -> Result<Response, ApiError> {
    me.require(Role::Operator)?;
    let req = StageRunRequest {
        change_ticket: c.change_ticket,
        window_start: c.window_start,
        window_end: c.window_end,
    };
    super::create_stage_run(&core, &site, &me, &id, stage, &req).await?;
    let detail = core.store.campaign(&id).await?;
    Ok((StatusCode::CREATED, Json(detail)).into_response())
}
