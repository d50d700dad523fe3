//! The JSON API under `/api/v1`: bearer tokens (or a browser session), the same role checks and
//! the same four-eyes rules as the pages, described by `openapi.json`.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::auth::CurrentUser;
use super::{AppError, AppState};

/// The API's error: the same [`AppError`] answered as JSON `{ "error", "status" }`.
pub struct ApiError(pub AppError);

impl<E: Into<AppError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
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

pub type ApiResult<T> = Result<Json<T>, ApiError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/me", get(me))
        .fallback(api_not_found)
}

async fn api_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(AppError::NotFound(format!("no API route {}", uri.path())))
}

const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[derive(serde::Serialize)]
pub struct Me {
    pub name: String,
    pub role: super::auth::Role,
}

async fn me(user: CurrentUser) -> ApiResult<Me> {
    Ok(Json(Me {
        name: user.user.name.clone(),
        role: user.user.role,
    }))
}
