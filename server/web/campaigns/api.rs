//! The campaigns in the JSON API (`/api/v1/campaigns`): list, create (plan and record), show,
//! and create a stage's run — the pages' code paths, answered as JSON; refusals are the API's
//! `{ "error", "status" }` (422 for a target the planner refuses, 409 for a stage out of order).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{CampaignRequest, StageRunRequest};
use crate::engine::store::campaigns::{CampaignDetail, CampaignRecord};
use crate::web::api::{ApiError, ApiJson, ApiQuery, ApiResult};
use crate::web::auth::{CurrentUser, Role};
use crate::web::error::ErrorBody;
use crate::web::AppError;
use crate::web::{Core, Site};

// The routes are registered with their descriptions in `web::api::documented`.

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only the campaigns of this Data Center.
    datacenter: Option<String>,
}

/// `GET /api/v1/campaigns[?datacenter=NAME]`: newest first.
#[utoipa::path(
    get,
    path = "/campaigns",
    operation_id = "listCampaigns",
    summary = "Campaigns, newest first",
    params(ListQuery),
    responses(
        (status = 200, description = "the campaigns", body = Vec<CampaignRecord>),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it", body = ErrorBody),
        (status = 422, description = "invalid query", body = ErrorBody),
    )
)]
pub async fn list(
    State(core): State<Core>,
    me: CurrentUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Vec<CampaignRecord>> {
    me.require(Role::Viewer)?;
    Ok(Json(core.store.campaigns(q.datacenter.as_deref()).await?))
}

/// `POST /api/v1/campaigns {"datacenter", "target": {"connected", "windows", "sql_server"}}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaign {
    #[schema(min_length = 1)]
    datacenter: String,
    target: TargetJson,
}

/// The estate wanted; a part left out is not changed.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetJson {
    #[schema(example = "8.11")]
    connected: Option<String>,
    #[schema(example = "2016")]
    windows: Option<String>,
    #[schema(example = "2016")]
    sql_server: Option<String>,
}

#[utoipa::path(
    post,
    path = "/campaigns",
    operation_id = "createCampaign",
    summary = "Plan a campaign for a Data Center and a target, and record it",
    request_body = CreateCampaign,
    responses(
        (status = 201, description = "planned and recorded", body = CampaignDetail),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it", body = ErrorBody),
        (status = 404, description = "no such Data Center", body = ErrorBody),
        (status = 409, description = "conflicts with the Data Center's state", body = ErrorBody),
        (status = 422, description = "invalid input or a target the planner refuses; nothing changed", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    get,
    path = "/campaigns/{id}",
    operation_id = "getCampaign",
    summary = "A campaign with its stages in order",
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "the campaign", body = CampaignDetail),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it", body = ErrorBody),
        (status = 404, description = "not found", body = ErrorBody),
    )
)]
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
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStageRun {
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    change_ticket: String,
    /// `YYYY-MM-DDTHH:MM`, UTC.
    #[schema(pattern = "^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$")]
    window_start: Option<String>,
    /// `YYYY-MM-DDTHH:MM`, UTC.
    #[schema(pattern = "^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$")]
    window_end: Option<String>,
}

#[utoipa::path(
    post,
    path = "/campaigns/{id}/stages/{stage}/run",
    operation_id = "createStageRun",
    summary = "Create a stage's run, re-planned on the estate as found, and submit it for start approval",
    params(
        ("id" = String, Path, description = "Campaign id"),
        ("stage" = i64, Path, minimum = 1, description = "Stage number (1, 2, …)"),
    ),
    request_body = CreateStageRun,
    responses(
        (status = 201, description = "the run was created; the campaign afterwards", body = CampaignDetail),
        (status = 401, description = "not authenticated", body = ErrorBody),
        (status = 403, description = "the role does not allow it", body = ErrorBody),
        (status = 404, description = "no such campaign or stage", body = ErrorBody),
        (status = 409, description = "an earlier stage's run has not succeeded, or the stage has a run", body = ErrorBody),
        (status = 422, description = "invalid input, or the estate no longer needs this stage; nothing changed", body = ErrorBody),
    )
)]
pub async fn create_run(
    State(core): State<Core>,
    State(site): State<Site>,
    me: CurrentUser,
    Path((id, stage)): Path<(String, String)>,
    ApiJson(c): ApiJson<CreateStageRun>,
) -> Result<Response, ApiError> {
    me.require(Role::Operator)?;
    // Stage numbers are numbers; any other names no stage (404, as an unknown number would),
    // rather than a path-parsing 400 the API does not document.
    let stage: i64 = stage.parse().map_err(|_| {
        AppError::NotFound(format!(
            "stage {} of campaign {}",
            crate::logtext::escaped(&stage),
            crate::logtext::escaped(&id)
        ))
    })?;
    let req = StageRunRequest {
        change_ticket: c.change_ticket,
        window_start: c.window_start,
        window_end: c.window_end,
    };
    super::create_stage_run(&core, &site, &me, &id, stage, &req).await?;
    let detail = core.store.campaign(&id).await?;
    Ok((StatusCode::CREATED, Json(detail)).into_response())
}
