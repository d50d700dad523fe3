//! Security headers on every response — pages, errors, 404s, static files and event streams.
//!
//! The CSP allows scripts and styles only from this origin (no inline code, no eval), forbids
//! framing, `<base>` and posting forms elsewhere.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use std::sync::Arc;

use super::WebSettings;

pub const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// Middleware: an htmx request that failed shows its message in the page's `#flash` region
/// instead of replacing the control it came from.
pub async fn htmx_errors(request: Request, next: Next) -> Response {
    let htmx = request.headers().contains_key("hx-request");
    let mut response = next.run(request).await;
    let status = response.status();
    if htmx && status.as_u16() >= 400 && !response.headers().contains_key("hx-redirect") {
        let h = response.headers_mut();
        h.insert("hx-retarget", HeaderValue::from_static("#flash"));
        h.insert("hx-reswap", HeaderValue::from_static("innerHTML"));
    }
    response
}

/// Middleware adding the headers to whatever the inner service answered.
pub async fn add_headers(
    State(settings): State<Arc<WebSettings>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if settings.tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}
