//! The JSON API under `/api/v1`: bearer tokens (or a browser session with its CSRF header), the
//! same role checks and the same four-eyes rules as the pages (the engine enforces them), and
//! its OpenAPI 3.1 description at `/api/v1/openapi.json`, derived from the handlers' annotations
//! and their types ([`doc`]): a route is registered only together with its description.

mod agents;
mod doc;
mod handlers;

use std::sync::LazyLock;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::FromRequest;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::campaigns::api as campaigns;
use super::{AppError, AppState};

/// The API's error: the same [`AppError`] answered as JSON `{ "error", "status" }`.
pub struct ApiError(pub AppError);

impl<E: Into<AppError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl From<JsonRejection> for AppError {
    fn from(e: JsonRejection) -> Self {
        AppError::BadRequest(format!("request body: {}", e.body_text()))
    }
}

impl From<QueryRejection> for AppError {
    fn from(e: QueryRejection) -> Self {
        AppError::BadRequest(format!("query: {}", e.body_text()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if let AppError::Internal(cause) = &self.0 {
            tracing::error!(error = format!("{cause:#}"), "API request failed");
        }
        if let AppError::Unauthenticated { .. } = self.0 {
            return AppError::Unauthenticated { api: true }.into_response();
        }
        let message = self.0.to_string();
        (
            status,
            Json(super::error::ErrorBody {
                error: &message,
                status: status.as_u16(),
            }),
        )
            .into_response()
    }
}

/// `Json<T>` whose rejections are API errors (JSON, 422) instead of plain text.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `Query<T>` whose rejections are API errors.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

pub type ApiResult<T> = Result<Json<T>, ApiError>;

/// The API's routes. Each is registered with `routes!`, which also puts its `#[utoipa::path]`
/// into the document, so what is served and what is described cannot drift apart.
pub fn routes() -> Router<AppState> {
    let (router, _document) = documented().split_for_parts();
    router.fallback(api_not_found)
}

/// The API as the router registers it, with its OpenAPI document.
fn documented() -> OpenApiRouter<AppState> {
    use handlers as h;
    OpenApiRouter::with_openapi(doc::ApiDoc::openapi())
        .routes(routes!(openapi))
        .routes(routes!(h::me))
        .routes(routes!(h::tokens, h::create_token))
        .routes(routes!(h::revoke_token))
        .routes(routes!(h::users, h::add_user))
        .routes(routes!(h::disable_user))
        .routes(routes!(h::datacenters, h::upload_datacenter))
        .routes(routes!(h::datacenter))
        .routes(routes!(h::runbooks))
        .routes(routes!(h::runbook))
        .routes(routes!(h::runs, h::create_run))
        .routes(routes!(h::run))
        .routes(routes!(h::report))
        .routes(routes!(h::comment))
        .routes(routes!(h::run_action))
        .routes(routes!(h::step_log))
        .routes(routes!(h::step_action))
        .routes(routes!(h::audit))
        .routes(routes!(crate::web::chain::acknowledge_api))
        .routes(routes!(agents::list))
        .routes(routes!(agents::refresh))
        .routes(routes!(campaigns::list, campaigns::create))
        .routes(routes!(campaigns::show))
        .routes(routes!(campaigns::create_run))
}

/// The OpenAPI document of `/api/v1`, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = documented().into_openapi();
    doc::finish(&mut document);
    document
}

/// Middleware: every refusal under `/api/` is JSON `{ "error", "status" }`, including those
/// no handler wrote — axum's own extractor rejections (a malformed path or body), 405 for a
/// method a route does not have, 413 for a body over the limit, and 404 outside `/api/v1` —
/// which would otherwise be plain text or empty. Headers such as `Allow` and `Retry-After` stay.
pub async fn json_refusals(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match status.as_u16() {
        413 => format!(
            "the request body is larger than the {} MiB the server accepts",
            super::MAX_FORM_BYTES / (1024 * 1024)
        ),
        404 if text.is_empty() || text.starts_with('<') => "no API route here".to_string(),
        _ if text.is_empty() || text.starts_with('<') => status
            .canonical_reason()
            .unwrap_or("refused")
            .to_lowercase(),
        _ => text,
    };
    let mut answer = (
        status,
        Json(super::error::ErrorBody {
            error: &message,
            status: status.as_u16(),
        }),
    )
        .into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().append(name.clone(), value.clone());
        }
    }
    answer
}

async fn api_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(AppError::NotFound(format!("no API route {}", uri.path())))
}

/// Built once: the document is fixed for the life of the process.
static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(document);

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    summary = "This OpenAPI document",
    security(()),
    responses((status = 200, description = "the OpenAPI 3.1 document of /api/v1", body = Object))
)]
async fn openapi() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(&DOCUMENT)
}

#[cfg(test)]
mod tests {
    /// axum cannot list a router's routes, so this reads how this module builds its router:
    /// every route goes through `.routes(routes!(handler))`, which puts the handler's
    /// `#[utoipa::path]` into the document; a plain `.route`, `.route_service`, `.nest` or
    /// `.merge` would serve paths the document does not describe.
    #[test]
    fn every_api_route_is_in_the_document() {
        let source = include_str!("api.rs");
        let builder = source
            .split("fn documented()")
            .nth(1)
            .and_then(|rest| rest.split("\n}\n").next())
            .expect("the router builder");
        for bypass in [
            ".route(",
            ".route_service(",
            ".nest(",
            ".merge(",
            ".nest_service(",
        ] {
            assert!(
                !builder.contains(bypass),
                "`{bypass}` registers a route without its OpenAPI description: use \
                 `.routes(routes!(handler))` with `#[utoipa::path]` on the handler"
            );
        }
        let registered = builder.matches("routes!(").count();
        let document = super::document();
        let operations: usize = document
            .paths
            .paths
            .values()
            .map(|item| {
                [&item.get, &item.post, &item.put, &item.patch, &item.delete]
                    .iter()
                    .filter(|op| op.is_some())
                    .count()
            })
            .sum();
        assert!(
            operations >= registered,
            "{registered} registrations, {operations} documented operations"
        );
        for path in document.paths.paths.keys() {
            assert!(path.starts_with('/'), "{path} is relative to /api/v1");
        }
    }

    #[test]
    fn every_operation_names_its_refusals_and_its_ways_in() {
        let document = super::document();
        for (path, item) in &document.paths.paths {
            for op in [&item.get, &item.post].into_iter().flatten() {
                let id = op.operation_id.clone().unwrap_or_default();
                assert!(!id.is_empty(), "{path}: no operationId");
                let security = op.security.as_ref().expect("security");
                if path == "/openapi.json" {
                    continue;
                }
                assert_eq!(security.len(), 2, "{id}: bearer or session");
                assert!(op.responses.responses.contains_key("401"), "{id}: no 401");
            }
        }
        let schemes = document
            .components
            .as_ref()
            .map(|c| c.security_schemes.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        assert_eq!(schemes, ["bearer", "csrf", "session"]);
    }
}
