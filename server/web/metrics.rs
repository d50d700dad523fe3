//! Prometheus `GET /metrics`, written by the official `prometheus_client` crate in the
//! OpenMetrics text format (Prometheus asks for it and reads it; the series names are the same
//! as in the older 0.0.4 text format: a counter family `lockstep_http_requests` is sampled as
//! `lockstep_http_requests_total`).
//!
//! What it tells, read from the database at each scrape ([`database`]): runs by state, steps
//! by state and kind, agent health (up, and seconds since the last heartbeat). Counted as it
//! happens ([`counted`]): how long ready steps waited to be dispatched (a histogram fed by the
//! audit events as they commit), open live streams (SSE watchers), and HTTP requests by route
//! and status with their latency (from a middleware, [`track`]).
//!
//! Who may scrape: with a token configured (`[metrics] token_file` or `LOCKSTEP_METRICS_TOKEN`),
//! whoever sends `Authorization: Bearer <token>`. Without one, anyone who can reach the port —
//! which is why that is allowed only while Lockstep listens on a loopback address; on a network
//! address without a token, `/metrics` answers 403 and says what to set. The route sits outside
//! the session/API-token check, so the metrics token is never mistaken for an API token.
//!
//! The token is a setting (`crate::config::metrics`).

mod counted;
mod database;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use prometheus_client::encoding::text::{encode_eof, encode_registry};

use crate::engine::Store;
use crate::web::{AppError, Core};

use counted::{Counted, HttpLabels};

/// The OpenMetrics text format that `prometheus_client` writes (Prometheus negotiates it).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Who may scrape (see the module documentation).
#[derive(Clone, Default)]
pub struct MetricsAccess {
    pub token: Option<String>,
    /// Lockstep listens on a network address: a token is required.
    pub network_listener: bool,
}

/// The counters the process keeps; database figures are read at scrape time.
pub struct Metrics {
    counted: Counted,
    access: Mutex<MetricsAccess>,
}

impl Metrics {
    /// Starts the counters and the task that reads dispatch latency from committed events.
    pub fn start(store: &Store) -> Arc<Metrics> {
        let metrics = Arc::new(Metrics {
            counted: Counted::new(),
            access: Mutex::new(MetricsAccess::default()),
        });
        let mut events = store.subscribe();
        let weak = Arc::downgrade(&metrics);
        tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let Some(metrics) = weak.upgrade() else {
                    return;
                };
                metrics.counted.saw_event(&event);
            }
        });
        metrics
    }

    /// Sets who may scrape.
    pub fn set_access(&self, access: MetricsAccess) {
        *self.access.lock().unwrap_or_else(|p| p.into_inner()) = access;
    }
}

/// Counts one open live stream while alive.
struct StreamGuard(Arc<Metrics>);

impl StreamGuard {
    fn new(m: Arc<Metrics>) -> StreamGuard {
        m.counted.watchers.inc();
        StreamGuard(m)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.counted.watchers.dec();
    }
}

fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts and times every request under its route template (`/runs/{id}`, never
/// the concrete path, so the number of series stays fixed), and counts open event streams.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = HttpLabels {
        route,
        method,
        status: response.status().as_u16(),
    };
    metrics
        .counted
        .observe_http(labels, started.elapsed().as_secs_f64());
    let streaming = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !streaming {
        return response;
    }
    let (parts, body) = response.into_parts();
    let guard = StreamGuard::new(metrics);
    let stream = body.into_data_stream().map(move |chunk| {
        let _alive = &guard;
        chunk
    });
    Response::from_parts(parts, axum::body::Body::from_stream(stream))
}

/// Why a scrape is refused, as the answer to send; `None`: allowed.
fn refusal(access: &MetricsAccess, headers: &HeaderMap) -> Option<Response> {
    match &access.token {
        Some(token) => {
            let sent = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            if sent.is_some_and(|s| crate::web::auth::extract::same_secret(s, token)) {
                None
            } else {
                let mut r = (
                    StatusCode::UNAUTHORIZED,
                    "metrics need `Authorization: Bearer <token>` with the [metrics] token\n",
                )
                    .into_response();
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"lockstep-metrics\""),
                );
                Some(r)
            }
        }
        None if access.network_listener => Some(
            (
                StatusCode::FORBIDDEN,
                "Lockstep listens on a network address, so /metrics needs a token: set [metrics] \
             token_file or LOCKSTEP_METRICS_TOKEN\n",
            )
                .into_response(),
        ),
        None => None,
    }
}

/// `GET /metrics`.
pub async fn scrape(
    State(metrics): State<Arc<Metrics>>,
    State(core): State<Core>,
    headers: HeaderMap,
) -> Response {
    let access = metrics
        .access
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if let Some(refused) = refusal(&access, &headers) {
        return refused;
    }
    match render(&metrics, &core).await {
        Ok(text) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            text,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// The exposition: this scrape's database figures, then the counted ones, then `# EOF`.
async fn render(m: &Metrics, core: &Core) -> Result<String, AppError> {
    let database = database::figures(core).await?;
    let mut out = String::with_capacity(8 * 1024);
    encode_registry(&mut out, &database)
        .and_then(|()| encode_registry(&mut out, &m.counted.registry))
        .and_then(|()| encode_eof(&mut out))
        .map_err(|e| AppError::Internal(anyhow::anyhow!("writing the metrics: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_token_only_a_loopback_listener_is_open() {
        let h = HeaderMap::new();
        assert!(refusal(&MetricsAccess::default(), &h).is_none());
        let net = MetricsAccess {
            token: None,
            network_listener: true,
        };
        assert_eq!(refusal(&net, &h).unwrap().status(), 403);
        let tok = MetricsAccess {
            token: Some("0123456789abcdef".into()),
            network_listener: true,
        };
        assert_eq!(refusal(&tok, &h).unwrap().status(), 401);
        let mut good = HeaderMap::new();
        good.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer 0123456789abcdef"),
        );
        assert!(refusal(&tok, &good).is_none());
    }
}
