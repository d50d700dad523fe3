//! The figures the process counts as things happen — HTTP requests and their latency, how long
//! ready steps waited for dispatch, open live streams — kept in one long-lived
//! `prometheus_client` [`Registry`] for the life of the server.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::engine::audit::AuditEvent;

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Ready steps remembered while waiting for dispatch (a bound on memory).
const MAX_WAITING: usize = 100_000;

/// One HTTP series: the route template (never the concrete path, so the number of series stays
/// fixed), the method and the status answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct HttpLabels {
    pub route: String,
    pub method: &'static str,
    pub status: u16,
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The counted figures and the registry that writes them out.
pub(super) struct Counted {
    pub registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<HttpLabels, Histogram, fn() -> Histogram>,
    dispatch: Histogram,
    /// Open event streams (SSE watchers); a [`super::StreamGuard`] holds one while alive.
    pub watchers: Gauge,
    /// (run, step) → when it became ready (ms): the start of a dispatch latency.
    waiting: Mutex<HashMap<(String, String), i64>>,
}

impl Counted {
    pub fn new() -> Counted {
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration: Family<HttpLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let dispatch = latency_histogram();
        let watchers = Gauge::default();
        let mut registry = Registry::default();
        // The client adds the final full stop to each help text, and `_total` to a counter's
        // samples: the series is `lockstep_http_requests_total`, as before.
        registry.register(
            "lockstep_step_dispatch_latency_seconds",
            "Time from a step becoming ready to its dispatch",
            dispatch.clone(),
        );
        registry.register(
            "lockstep_sse_watchers",
            "Open live streams (run pages being watched)",
            watchers.clone(),
        );
        registry.register(
            "lockstep_http_requests",
            "HTTP requests by route, method and status",
            http_requests.clone(),
        );
        registry.register(
            "lockstep_http_request_duration_seconds",
            "Time to answer (to the response head)",
            http_duration.clone(),
        );
        Counted {
            registry,
            http_requests,
            http_duration,
            dispatch,
            watchers,
            waiting: Mutex::new(HashMap::new()),
        }
    }

    pub fn observe_http(&self, labels: HttpLabels, secs: f64) {
        self.http_requests.get_or_create(&labels).inc();
        self.http_duration.get_or_create(&labels).observe(secs);
    }

    /// Feeds the dispatch latency from a committed audit event: a step's `ready` starts the
    /// clock, its `dispatched` stops it, any other state forgets it.
    pub fn saw_event(&self, e: &AuditEvent) {
        let (Some(run), Some(step)) = (&e.run_id, &e.step_id) else {
            return;
        };
        if !e.kind.is_step() {
            return;
        }
        let to = e.payload.get("to").and_then(|v| v.as_str());
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let key = (run.clone(), step.clone());
        match to {
            Some("ready") if waiting.len() < MAX_WAITING => {
                waiting.insert(key, e.at);
            }
            Some("dispatched") => {
                if let Some(ready_at) = waiting.remove(&key) {
                    self.dispatch
                        .observe((e.at - ready_at).max(0) as f64 / 1000.0);
                }
            }
            Some(_) => {
                waiting.remove(&key);
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(c: &Counted) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode_registry(&mut out, &c.registry).unwrap();
        out
    }

    #[test]
    fn a_request_is_counted_under_its_route_and_timed_into_every_bucket_at_or_above_it() {
        let c = Counted::new();
        let labels = HttpLabels {
            route: "/runs/{id}".into(),
            method: "GET",
            status: 200,
        };
        for secs in [0.003, 0.2, 100.0] {
            c.observe_http(labels.clone(), secs);
        }
        let out = text(&c);
        let series = r#"route="/runs/{id}",method="GET",status="200""#;
        assert!(
            out.contains("# TYPE lockstep_http_requests counter\n"),
            "{out}"
        );
        assert!(
            out.contains(&format!("lockstep_http_requests_total{{{series}}} 3\n")),
            "{out}"
        );
        let h = "lockstep_http_request_duration_seconds_bucket";
        assert!(
            out.contains(&format!("{h}{{le=\"0.005\",{series}}} 1\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("{h}{{le=\"0.25\",{series}}} 2\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("{h}{{le=\"30.0\",{series}}} 2\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("{h}{{le=\"+Inf\",{series}}} 3\n")),
            "{out}"
        );
    }
}
