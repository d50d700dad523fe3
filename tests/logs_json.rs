//! Structured logs of a real `lockstep serve --log-format json` process: every request gets a
//! request id (a sane incoming `X-Request-Id` is kept, anything else replaced), the response
//! echoes it, and the request's log lines carry it — and the run id when the route names a run.

mod serve_process;

use std::time::{Duration, Instant};

use serde_json::Value;
use serve_process::Serve;

fn start_serve() -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_process::command(dir.path());
    cmd.args(["--log-format", "json"]);
    serve_process::start(cmd, dir)
}

impl Serve {
    /// Log lines (JSON objects) until one satisfies `want`; every JSON line must parse.
    fn wait_for(&self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line with {what}"));
            if !line.starts_with('{') {
                continue;
            }
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
            if want(&v) {
                return v;
            }
        }
    }
}

async fn get(base: &str, path: &str, request_id: Option<&str>) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client.get(format!("{base}{path}"));
    if let Some(id) = request_id {
        req = req.header("x-request-id", id);
    }
    req.send().await.unwrap()
}

fn echoed(resp: &reqwest::Response) -> String {
    resp.headers()["x-request-id"].to_str().unwrap().to_string()
}

fn span_field<'v>(v: &'v Value, field: &str) -> Option<&'v str> {
    v.get("span")?.get(field)?.as_str()
}

#[tokio::test]
async fn each_request_is_logged_with_its_request_id_and_the_run_it_concerns() {
    let serve = start_serve();

    let resp = get(&serve.base, "/healthz", Some("lb-4711.trace")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(echoed(&resp), "lb-4711.trace");
    let line = serve.wait_for("request_id lb-4711.trace", |v| {
        span_field(v, "request_id") == Some("lb-4711.trace")
    });
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["fields"]["status"], 200);
    assert_eq!(span_field(&line, "route"), Some("/healthz"));

    let resp = get(&serve.base, "/runs/run-0042/report", Some("page-7")).await;
    assert_eq!(echoed(&resp), "page-7");
    let line = serve.wait_for("request_id page-7", |v| {
        span_field(v, "request_id") == Some("page-7")
    });
    assert_eq!(span_field(&line, "run_id"), Some("run-0042"));
    assert_eq!(span_field(&line, "route"), Some("/runs/{id}/report"));
}

#[tokio::test]
async fn a_missing_or_unsafe_incoming_id_is_replaced_by_a_fresh_one() {
    let serve = start_serve();
    let hostile = "x\" injected=1";
    let resp = get(&serve.base, "/healthz", Some(hostile)).await;
    let id = echoed(&resp);
    assert_ne!(id, hostile);
    uuid::Uuid::parse_str(&id).expect("a generated id is a UUID");
    serve.wait_for("the generated id", |v| {
        span_field(v, "request_id") == Some(id.as_str())
    });

    let first = echoed(&get(&serve.base, "/healthz", None).await);
    let second = echoed(&get(&serve.base, "/healthz", None).await);
    uuid::Uuid::parse_str(&first).expect("UUID");
    assert_ne!(first, second, "each request gets its own id");
}
