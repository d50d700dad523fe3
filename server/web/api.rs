//! The JSON API under `/api/v1`: bearer tokens (or a browser session with its CSRF header), the
//! same role checks and the same four-eyes rules as the pages (the engine enforces them), and a
//! hand-written OpenAPI 3 description at `/api/v1/openapi.json` kept in step with these routes
//! by the tests.

mod agents;
mod handlers;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::FromRequest;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

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

pub fn routes() -> Router<AppState> {
    use handlers as h;
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/me", get(h::me))
        .route("/tokens", get(h::tokens).post(h::create_token))
        .route("/tokens/{id}/revoke", post(h::revoke_token))
        .route("/users", get(h::users).post(h::add_user))
        .route("/users/{name}/disable", post(h::disable_user))
        .route(
            "/datacenters",
            get(h::datacenters).post(h::upload_datacenter),
        )
        .route("/datacenters/{name}", get(h::datacenter))
        .route("/runbooks", get(h::runbooks))
        .route("/runbooks/{id}", get(h::runbook))
        .route("/runs", get(h::runs).post(h::create_run))
        .route("/runs/{id}", get(h::run))
        .route("/runs/{id}/report", get(h::report))
        .route("/runs/{id}/comments", post(h::comment))
        .route("/runs/{id}/{action}", post(h::run_action))
        .route("/runs/{id}/steps/{step}/log", get(h::step_log))
        .route("/runs/{id}/steps/{step}/{action}", post(h::step_action))
        .route("/audit", get(h::audit))
        .route(
            "/audit/acknowledge",
            post(crate::web::chain::acknowledge_api),
        )
        .route("/agents", get(agents::list))
        .route("/agents/refresh", post(agents::refresh))
        .merge(crate::web::campaigns::api::routes())
        .fallback(api_not_found)
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

pub const OPENAPI: &str = include_str!("api/openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
