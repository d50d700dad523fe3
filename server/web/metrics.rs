//! Prometheus `GET /metrics` in the text exposition format (version 0.0.4).
//!
//! What it tells: runs by state and steps by state and kind (counted in the database at each
//! scrape), how long ready steps waited to be dispatched (a histogram fed by the audit events as
//! they commit), agent health (up, and seconds since the last heartbeat), open live streams (SSE
//! watchers), and HTTP requests by route and status with their latency (from a middleware,
//! [`track`]).
//!
//! Who may scrape: with a token configured (`[metrics] token_file` or `LOCKSTEP_METRICS_TOKEN`),
//! whoever sends `Authorization: Bearer <token>`. Without one, anyone who can reach the port —
//! which is why that is allowed only while Lockstep listens on a loopback address; on a network
//! address without a token, `/metrics` answers 403 and says what to set. The route sits outside
//! the session/API-token check, so the metrics token is never mistaken for an API token.
//!
//! The token is a setting (`crate::config::metrics`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use sqlx::Row;

use crate::engine::Store;
use crate::web::{AppError, Core};

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Run states, so that every state is reported (with 0) from the first scrape.
const RUN_STATES: [&str; 9] = [
    "draft",
    "awaiting_start_approval",
    "running",
    "paused",
    "succeeded",
    "failed",
    "aborted",
    "undoing",
    "undone",
];
/// Ready steps remembered while waiting for dispatch (a bound on memory).
const MAX_WAITING: usize = 100_000;

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {}",
                self.counts[i]
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Who may scrape (see the module documentation).
#[derive(Clone, Default)]
pub struct MetricsAccess {
    pub token: Option<String>,
    /// Lockstep listens on a network address: a token is required.
    pub network_listener: bool,
}

/// The counters the process keeps; database figures are read at scrape time.
#[derive(Default)]
pub struct Metrics {
    http: Mutex<HashMap<(String, &'static str, u16), Histogram>>,
    dispatch: Mutex<Histogram>,
    /// (run, step) → when it became ready (ms).
    waiting: Mutex<HashMap<(String, String), i64>>,
    streams: AtomicI64,
    access: Mutex<MetricsAccess>,
}

impl Metrics {
    /// Starts the counters and the task that reads dispatch latency from committed events.
    pub fn start(store: &Store) -> Arc<Metrics> {
        let metrics = Arc::new(Metrics::default());
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
                metrics.saw_event(&event);
            }
        });
        metrics
    }

    /// Sets who may scrape.
    pub fn set_access(&self, access: MetricsAccess) {
        *self.access.lock().unwrap_or_else(|p| p.into_inner()) = access;
    }

    fn saw_event(&self, e: &crate::engine::audit::AuditEvent) {
        let (Some(run), Some(step)) = (&e.run_id, &e.step_id) else {
            return;
        };
        if !e.kind.is_step() {
            return;
        }
        let to = e.payload.get("to").and_then(|v| v.as_str());
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        match to {
            Some("ready") if waiting.len() < MAX_WAITING => {
                waiting.insert((run.clone(), step.clone()), e.at);
            }
            Some("dispatched") => {
                if let Some(ready_at) = waiting.remove(&(run.clone(), step.clone())) {
                    let secs = (e.at - ready_at).max(0) as f64 / 1000.0;
                    self.dispatch
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .observe(secs);
                }
            }
            Some(_) => {
                waiting.remove(&(run.clone(), step.clone()));
            }
            None => {}
        }
    }

    fn observe_http(&self, route: String, method: &'static str, status: u16, secs: f64) {
        self.http
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((route, method, status))
            .or_default()
            .observe(secs);
    }
}

/// Counts one open live stream while alive.
struct StreamGuard(Arc<Metrics>);

impl StreamGuard {
    fn new(m: Arc<Metrics>) -> StreamGuard {
        m.streams.fetch_add(1, Ordering::SeqCst);
        StreamGuard(m)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::SeqCst);
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
    metrics.observe_http(
        route,
        method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
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

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn render(m: &Metrics, state: &Core) -> Result<String, AppError> {
    let mut out = String::with_capacity(8 * 1024);

    let mut runs: HashMap<String, i64> = RUN_STATES.iter().map(|s| (s.to_string(), 0)).collect();
    for row in sqlx::query("SELECT status, COUNT(*) AS n FROM runs GROUP BY status")
        .fetch_all(&state.pool)
        .await?
    {
        runs.insert(row.try_get("status")?, row.try_get("n")?);
    }
    let mut runs: Vec<_> = runs.into_iter().collect();
    runs.sort();
    out.push_str("# HELP lockstep_runs Runs by state.\n# TYPE lockstep_runs gauge\n");
    for (s, n) in runs {
        let _ = writeln!(out, "lockstep_runs{{state=\"{}\"}} {n}", escape(&s));
    }

    out.push_str("# HELP lockstep_steps Steps of all runs by state and kind.\n");
    out.push_str("# TYPE lockstep_steps gauge\n");
    for row in sqlx::query(
        "SELECT status, kind, COUNT(*) AS n FROM steps GROUP BY status, kind ORDER BY status, kind",
    )
    .fetch_all(&state.pool)
    .await?
    {
        let (s, k, n): (String, String, i64) = (
            row.try_get("status")?,
            row.try_get("kind")?,
            row.try_get("n")?,
        );
        let _ = writeln!(
            out,
            "lockstep_steps{{state=\"{}\",kind=\"{}\"}} {n}",
            escape(&s),
            escape(&k)
        );
    }

    out.push_str(
        "# HELP lockstep_step_dispatch_latency_seconds Time from a step becoming ready to its dispatch.\n\
         # TYPE lockstep_step_dispatch_latency_seconds histogram\n",
    );
    let dispatch = m.dispatch.lock().unwrap_or_else(|p| p.into_inner()).clone();
    dispatch.write(&mut out, "lockstep_step_dispatch_latency_seconds", "");

    let now = state.clock.now_secs();
    let agents = crate::executors::agent::registry::list(&state.pool)
        .await
        .map_err(AppError::Internal)?;
    out.push_str(
        "# HELP lockstep_agent_up Whether the agent answered its last heartbeat (1) or not (0).\n\
         # TYPE lockstep_agent_up gauge\n",
    );
    for a in &agents {
        let up = i32::from(a.status == "online");
        let _ = writeln!(
            out,
            "lockstep_agent_up{{agent=\"{}\"}} {up}",
            escape(&a.server)
        );
    }
    out.push_str(
        "# HELP lockstep_agent_heartbeat_age_seconds Seconds since the agent's last heartbeat.\n\
         # TYPE lockstep_agent_heartbeat_age_seconds gauge\n",
    );
    for a in &agents {
        if let Some(at) = a.checked_at {
            let _ = writeln!(
                out,
                "lockstep_agent_heartbeat_age_seconds{{agent=\"{}\"}} {}",
                escape(&a.server),
                (now - at).max(0)
            );
        }
    }

    let _ = writeln!(
        out,
        "# HELP lockstep_sse_watchers Open live streams (run pages being watched).\n\
         # TYPE lockstep_sse_watchers gauge\nlockstep_sse_watchers {}",
        m.streams.load(Ordering::SeqCst)
    );

    let http = m.http.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut series: Vec<_> = http.into_iter().collect();
    series.sort_by(|a, b| a.0.cmp(&b.0));
    out.push_str(
        "# HELP lockstep_http_requests_total HTTP requests by route, method and status.\n\
         # TYPE lockstep_http_requests_total counter\n",
    );
    for ((route, method, status), h) in &series {
        let _ = writeln!(
            out,
            "lockstep_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {}",
            escape(route),
            h.count
        );
    }
    out.push_str(
        "# HELP lockstep_http_request_duration_seconds Time to answer (to the response head).\n\
         # TYPE lockstep_http_request_duration_seconds histogram\n",
    );
    for ((route, method, status), h) in &series {
        let labels = format!(
            "route=\"{}\",method=\"{method}\",status=\"{status}\"",
            escape(route)
        );
        h.write(&mut out, "lockstep_http_request_duration_seconds", &labels);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_each_observation_into_every_bucket_at_or_above_it() {
        let mut h = Histogram::default();
        h.observe(0.003);
        h.observe(0.2);
        h.observe(100.0);
        let mut out = String::new();
        h.write(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"0.005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.25\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"30\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count 3\n"), "{out}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

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
