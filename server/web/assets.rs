//! The browser files under `/static/`, compiled into the binary so an installed `lockstep` needs
//! nothing beside it. Only the files listed here exist; anything else is a 404.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppError;

/// (path under /static/, content type, bytes)
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/app.css"),
    ),
    (
        "records.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/records.css"),
    ),
    (
        "records.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/records.js"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/app.js"),
    ),
    (
        "vendor/htmx-2.0.11.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/htmx-2.0.11.min.js"),
    ),
    (
        "vendor/htmx-ext-sse-2.2.4.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/htmx-ext-sse-2.2.4.min.js"),
    ),
    (
        "vendor/htmx.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../static/vendor/htmx.LICENSE"),
    ),
    (
        "vendor/htmx-ext-sse.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../static/vendor/htmx-ext-sse.LICENSE"),
    ),
    (
        "favicon.ico",
        "image/x-icon",
        include_bytes!("../../static/favicon.ico"),
    ),
    (
        "vendor/README",
        "text/plain; charset=utf-8",
        include_bytes!("../../static/vendor/README"),
    ),
];

pub async fn asset(Path(path): Path<String>) -> Result<Response, AppError> {
    let (_, content_type, bytes) = ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .ok_or_else(|| AppError::NotFound(format!("no file /static/{path}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        *bytes,
    )
        .into_response())
}

/// `/favicon.ico`: browsers ask for it on every page whatever the `<link rel="icon">` says.
pub async fn favicon() -> Result<Response, AppError> {
    asset(Path("favicon.ico".to_string())).await
}
