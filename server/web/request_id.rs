//! Request ids: every request gets one, so a person reporting a problem, the reverse proxy's
//! log and Lockstep's own log lines can be matched up.
//!
//! An incoming `X-Request-Id` is kept when it is sane (1 to 128 characters of letters, digits
//! and `-_.:@`) — a proxy or load balancer usually sets one — and otherwise replaced by a fresh
//! UUID. The id is echoed in the response's `X-Request-Id`, and the request's tracing span
//! ([`span`]) carries it together with the run id when the route names a run, so with
//! `--log-format json` every line logged while handling the request has `request_id` (and
//! `run_id`) in its `span` object.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Whether an incoming id is kept as is.
pub fn is_sane(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b))
}

/// Middleware (outermost): assigns the id and echoes it.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, v);
    }
    response
}

/// The run a request is about: the path segment where the route template has `{id}` right
/// after `runs` (`/runs/{id}/…`, `/api/v1/runs/{id}/…`).
pub fn run_id_of(template: &str, path: &str) -> Option<String> {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.windows(2)
        .position(|w| w[0] == "runs" && w[1] == "{id}")
        .and_then(|i| p.get(i + 1))
        .filter(|s| !s.is_empty())
        .map(|s| s.to_string())
}

/// The span every request is handled in (for `TraceLayer::make_span_with`).
pub fn span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.as_str())
        .unwrap_or("");
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str())
        .unwrap_or("unmatched");
    let run_id = run_id_of(route, request.uri().path());
    tracing::info_span!(
        "request",
        request_id = %id,
        run_id = run_id.as_deref().unwrap_or(""),
        method = %request.method(),
        route = %route,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_incoming_ids_are_kept_and_others_are_not() {
        assert!(is_sane("req-1234_abc.def:9@lb"));
        assert!(is_sane(&"a".repeat(128)));
        for bad in [
            "",
            "has space",
            "new\nline",
            "quote\"",
            "ü",
            &"a".repeat(129),
        ] {
            assert!(!is_sane(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_run_id_is_read_where_the_route_names_a_run() {
        assert_eq!(
            run_id_of(
                "/runs/{id}/steps/{step}/{action}",
                "/runs/r-1/steps/s/claim"
            ),
            Some("r-1".into())
        );
        assert_eq!(
            run_id_of("/api/v1/runs/{id}", "/api/v1/runs/r-2"),
            Some("r-2".into())
        );
        assert_eq!(run_id_of("/runs", "/runs"), None);
        assert_eq!(run_id_of("/datacenters/{name}", "/datacenters/x"), None);
    }
}
