//! The fuzzing entry points, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and by
//! the CI test that runs them over a corpus and seeded random inputs
//! (`tests/reliability_fuzz_corpus.rs`). Each takes arbitrary bytes and panics only when a
//! property breaks: a parser must return a value or an error, never panic; the web app must never
//! answer hostile headers with a 5xx.

#![allow(dead_code)]

/// The inventory parser (TOML from people).
pub fn inventory(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(inv) = lockstep::knowledge::inventory::Inventory::parse(text) {
            // What parsed must be usable: the helpers on it do not panic either.
            for server in &inv.servers {
                let _ = server.has_database();
                let _ = server.hosts_web_services();
            }
        }
    }
}

/// The runbook parser (TOML from the site's runbook folder).
pub fn runbook(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lockstep::knowledge::runbook::parse("fuzz.toml", text);
        let _ = lockstep::knowledge::runbook::parse_duration(text);
    }
}

/// The agent's wire decoding: the request bodies its routes accept, the time check every request
/// passes, and the path and registry-key normalisation the allowlist runs on their arguments.
pub fn agent_protocol(data: &[u8]) {
    use lockstep_protocol::{ActionRequest, CancelRequest, StatusQuery, StatusResponse};
    if let Ok(req) = serde_json::from_slice::<ActionRequest>(data) {
        let _ = req.check_time(1_900_000_000);
        let _ = req.check_time(i64::MAX);
        let _ = req.check_time(i64::MIN);
        let _ = serde_json::to_vec(&req).expect("a decoded request encodes again");
    }
    let _ = serde_json::from_slice::<StatusQuery>(data);
    let _ = serde_json::from_slice::<CancelRequest>(data);
    let _ = serde_json::from_slice::<StatusResponse>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lockstep_agent::policy::normalize_path(text);
        let _ = lockstep_agent::policy::normalize_registry_key(text);
        let mid = (text.len() / 2..=text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        let (a, b) = text.split_at(mid);
        let _ = lockstep_agent::policy::is_under(a, b);
    }
}

/// The TDS simulator's packet parsers (PRELOGIN, LOGIN7, RPC in both TDS 7.1 and 7.2+ framing).
pub fn tds(data: &[u8]) {
    use lockstep_simulator::tds::{login, rpc};
    let _ = login::parse_prelogin(data);
    let _ = login::parse_login7(data);
    let _ = rpc::parse_rpc(data, true);
    let _ = rpc::parse_rpc(data, false);
}

/// The dashboard with one signed-in viewer and one run, served in-process: hostile headers
/// (`Last-Event-ID`, `?after=`, cookies, CSRF tokens, `Sec-Fetch-Site`, content types) must get
/// an answer below 500.
pub struct Web {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    cookie: String,
    run_id: String,
    _dir: tempfile::TempDir,
}

impl Web {
    pub fn start() -> Web {
        use lockstep::engine::store::NewRun;
        use lockstep::engine::testkit::{noop_plan, operator};
        use lockstep::web::auth::{accounts, throttle::LoginThrottle, Role};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("lockstep.db");
        let (app, cookie, run_id) = rt.block_on(async {
            let store = lockstep::engine::Store::open(&db).await.expect("store");
            let pool = store.writer().clone();
            let new = NewRun {
                change_ticket: "CHG-FUZZ".into(),
                window_start: None,
                window_end: None,
                plan: noop_plan(3, true, &["h1"]),
            };
            let run = store
                .create_run(new, &operator("olga"), 1)
                .await
                .expect("run");
            let clock: lockstep::web::SharedClock =
                std::sync::Arc::new(lockstep::engine::clock::ManualClock::at(1_900_000_000_000));
            let user = accounts::add_user(
                &pool,
                "vera",
                Role::Viewer,
                "correct horse battery staple",
                1_900_000_000,
            )
            .await
            .expect("user");
            let cookie = accounts::create_session(&pool, user.id, 1_900_000_000)
                .await
                .expect("session");
            let state = lockstep::web::AppState::new(
                store,
                lockstep::web::WebSettings {
                    session_idle_secs: 1800,
                    session_absolute_secs: 12 * 3600,
                    tls: false,
                },
                clock,
                LoginThrottle::new(5, 900),
            );
            (lockstep::web::router(state), cookie, run.id)
        });
        Web {
            rt,
            app,
            cookie,
            run_id,
            _dir: dir,
        }
    }

    /// Sends the bytes as header values (and a query) on the event stream and on a form post.
    pub fn headers(&self, data: &[u8]) {
        use axum::http::{HeaderValue, Request};
        use tower::ServiceExt;
        let value = HeaderValue::from_bytes(data).ok();
        let query: String = data
            .iter()
            .filter(|b| b.is_ascii_alphanumeric() || b"-+.%".contains(b))
            .map(|&b| b as char)
            .take(64)
            .collect();
        let session = format!("__Host-lockstep={}", self.cookie);
        let mut requests = Vec::new();
        let mut stream = Request::get(format!("/runs/{}/events?after={query}", self.run_id))
            .header("cookie", &session);
        if let Some(v) = &value {
            stream = stream.header("last-event-id", v.clone());
        }
        requests.push(stream);
        let mut post = Request::post(format!("/runs/{}/comments", self.run_id))
            .header("cookie", &session)
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(v) = &value {
            post = post
                .header("x-csrf-token", v.clone())
                .header("sec-fetch-site", v.clone());
        }
        requests.push(post);
        if let Some(v) = &value {
            requests.push(Request::get("/").header("cookie", v.clone()));
            requests.push(
                Request::post("/login")
                    .header("content-type", v.clone())
                    .header("origin", v.clone()),
            );
        }
        self.rt.block_on(async {
            for req in requests {
                let req = req
                    .body(axum::body::Body::from(data.to_vec()))
                    .expect("request");
                let what = format!("{} {}", req.method(), req.uri());
                let resp = self.app.clone().oneshot(req).await.expect("infallible");
                assert!(
                    resp.status().as_u16() < 500,
                    "{what} answered {} to hostile input {:?}",
                    resp.status(),
                    String::from_utf8_lossy(data)
                );
            }
        });
    }
}
