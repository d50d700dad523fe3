//! One error type for the web layer. Each variant names its HTTP status; people see a clear
//! message (an HTML page, or JSON under `/api/`), and internal causes go to the log only.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::engine::{EngineError, Refusal};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No (valid) session or token. Pages redirect to the login form; the API answers 401.
    #[error("log in first")]
    Unauthenticated { api: bool },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// Input that names what is wrong; nothing was changed.
    #[error("{0}")]
    BadRequest(String),
    /// The action no longer fits the current state (e.g. the step moved on); nothing changed.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooManyRequests(String),
    /// Overloaded for a moment (every password-checking slot busy): 503 with `Retry-After`.
    #[error("{0}")]
    Busy(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An engine error seen by people: refusals keep their words, with the status that fits.
impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Refused(r) => match r {
                Refusal::MissingRole { .. }
                | Refusal::FourEyes { .. }
                | Refusal::PolicyViolation(_)
                | Refusal::AlreadyApproved { .. } => AppError::Forbidden(r.to_string()),
                Refusal::CommentRequired
                | Refusal::NoteRequired
                | Refusal::JustificationRequired
                | Refusal::EvidenceRequired
                | Refusal::ReasonRequired => AppError::BadRequest(r.to_string()),
                other => AppError::Conflict(other.to_string()),
            },
            EngineError::Conflict(_) | EngineError::ChainBroken(_) => {
                AppError::Conflict(e.to_string())
            }
            EngineError::NotFound(what) => AppError::NotFound(format!("{what} not found")),
            EngineError::Invalid(m) => AppError::BadRequest(m),
            other => AppError::Internal(other.into()),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Internal(e.into())
    }
}

impl From<crate::web::auth::accounts::AccountError> for AppError {
    fn from(e: crate::web::auth::accounts::AccountError) -> Self {
        use crate::web::auth::accounts::AccountError as E;
        match e {
            E::Invalid(m) => AppError::BadRequest(m),
            E::Exists(_) | E::PersonTaken { .. } => AppError::Conflict(e.to_string()),
            E::NotFound(_) => AppError::NotFound(e.to_string()),
            E::Db(d) => AppError::Internal(d.into()),
            E::Other(o) => AppError::Internal(o),
            E::Busy(b) => AppError::Busy(b.to_string()),
        }
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        AppError::Internal(e.into())
    }
}

/// The error page (no navigation, so it never needs a user).
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub status: u16,
    pub title: &'a str,
    pub message: &'a str,
}

/// JSON error body of the API.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    pub error: &'a str,
    pub status: u16,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let AppError::Internal(cause) = &self {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        let message = self.to_string();
        match self {
            AppError::Unauthenticated { api: false } => {
                let mut r = Redirect::to("/login").into_response();
                // htmx follows this header instead of swapping the login page into a fragment.
                r.headers_mut()
                    .insert("hx-redirect", HeaderValue::from_static("/login"));
                r
            }
            AppError::Unauthenticated { api: true } => {
                let mut r = (
                    status,
                    axum::Json(ErrorBody {
                        error: &message,
                        status: status.as_u16(),
                    }),
                )
                    .into_response();
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
            AppError::Busy(_) => {
                let mut r = error_response(status, &message);
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
                r
            }
            _ => error_response(status, &message),
        }
    }
}

/// Renders an error as HTML. API routes turn errors into JSON in `api::json_errors`.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let page = ErrorPage {
        status: status.as_u16(),
        title,
        message,
    };
    match page.render() {
        Ok(html) => (status, axum::response::Html(html)).into_response(),
        Err(_) => (status, message.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Engine errors answer with the status that fits and keep their words.
    #[test]
    fn engine_errors_map_to_the_status_that_fits() {
        let cases: Vec<(EngineError, StatusCode, &str)> = vec![
            (
                Refusal::CommentRequired.into(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "a comment is required",
            ),
            (
                Refusal::NotClaimed.into(),
                StatusCode::CONFLICT,
                "the task must be claimed before it is completed",
            ),
            (
                EngineError::Conflict("run r1".into()),
                StatusCode::CONFLICT,
                "run r1 changed meanwhile; reload and try again",
            ),
            (
                EngineError::ChainBroken("event 7 was altered".into()),
                StatusCode::CONFLICT,
                "event 7 was altered",
            ),
            (
                EngineError::NotFound("run r9".into()),
                StatusCode::NOT_FOUND,
                "run r9 not found",
            ),
            (
                EngineError::Invalid("window_end: before the start".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
                "window_end: before the start",
            ),
            (
                EngineError::Audit("signing key unreadable".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            ),
        ];
        for (engine, status, message) in cases {
            let e = AppError::from(engine);
            assert_eq!((e.status(), e.to_string().as_str()), (status, message));
        }
    }
}
