//! `spawn_app()`: the real dashboard on 127.0.0.1 port 0 with a fresh SQLite database in a
//! temporary folder, plus helpers to log in as a user and to create runs through the engine.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use lockstep::config::{Config, Overrides, Settings};
use lockstep::engine::clock::{ManualClock, TokioClock};
use lockstep::engine::store::{NewRun, RunRecord};
use lockstep::engine::Actor;
use lockstep::knowledge::inventory::Topology;
use lockstep::knowledge::operation::Operation;
use lockstep::knowledge::plan::{Plan, PlannedStep, RetryPolicy, StepKind};
use lockstep::startup::{Application, Options};
use lockstep::web::auth::{accounts, Role};
use lockstep::web::{AppState, SharedClock};

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub state: AppState,
    pub clock: Clock,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

/// A logged-in browser: its session cookie and CSRF token.
#[derive(Clone, Debug)]
pub struct Session {
    pub name: String,
    pub cookie: String,
    pub csrf: String,
}

/// The app's clock as the tests drive it: the engine's clock, read in seconds (accounts,
/// sessions) or milliseconds (the engine), and moved by hand (in seconds) when it is manual.
#[derive(Clone)]
pub struct Clock {
    shared: SharedClock,
    manual: Option<ManualClock>,
}

impl Clock {
    pub fn manual(secs: i64) -> Clock {
        let manual = ManualClock::at(secs * 1000);
        Clock {
            shared: std::sync::Arc::new(manual.clone()),
            manual: Some(manual),
        }
    }

    pub fn system() -> Clock {
        Clock {
            shared: std::sync::Arc::new(TokioClock::new()),
            manual: None,
        }
    }

    /// Unix seconds now.
    pub fn now(&self) -> i64 {
        self.shared.now_secs()
    }

    /// Milliseconds since the epoch (the engine's unit).
    pub fn now_ms(&self) -> i64 {
        self.shared.now()
    }

    /// Moves a manual clock forward; no effect on the system clock.
    pub fn advance(&self, secs: i64) {
        if let Some(m) = &self.manual {
            m.advance(secs * 1000);
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn(Clock::manual(1_900_000_000), false, None).await
}

/// The app on the system clock with the engine's driver running (steps on an in-memory
/// journaling executor), for tests where runs must move by themselves.
pub async fn spawn_app_with_driver() -> TestApp {
    spawn(Clock::system(), true, None).await
}

/// The app on the system clock with the driver running every step on `executor`.
pub async fn spawn_app_with_executor(
    executor: std::sync::Arc<dyn lockstep::engine::executor::Executor>,
) -> TestApp {
    spawn(Clock::system(), true, Some(executor)).await
}

/// [`spawn_app_with_driver`] for a simulated site (as `lockstep demo`): new plans wait for
/// backup sessions to drain without the real five-minute stable period, so a whole runbook can
/// run to success in a test.
pub async fn spawn_app_on_simulated_site() -> TestApp {
    spawn_with(Clock::system(), true, None, true).await
}

async fn spawn(
    clock: Clock,
    driver: bool,
    executor: Option<std::sync::Arc<dyn lockstep::engine::executor::Executor>>,
) -> TestApp {
    spawn_with(clock, driver, executor, false).await
}

async fn spawn_with(
    clock: Clock,
    driver: bool,
    executor: Option<std::sync::Arc<dyn lockstep::engine::executor::Executor>>,
    simulated_site: bool,
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let executor = executor.unwrap_or_else(|| {
        std::sync::Arc::new(lockstep::engine::journal::JournalExecutor::in_memory())
    });
    let mut options = Options::test(
        lockstep::engine::Router::all(executor),
        clock.shared.clone(),
        driver,
    );
    options.simulated_site = simulated_site;
    let app = Application::build(settings(dir.path()), options)
        .await
        .expect("the app builds");
    let addr = app.addr();
    let state = app.state().clone();
    let server = tokio::spawn(async move {
        let _ = app.run_until_stopped(std::future::pending()).await;
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    TestApp {
        base: format!("http://{addr}"),
        addr,
        state,
        clock,
        client,
        _dir: dir,
        _server: server,
    }
}

/// The settings of a test app: defaults, a fresh database in `dir`, port 0 on loopback, and no
/// environment (a developer's `LOCKSTEP_*` variables do not leak into tests).
pub fn settings(dir: &std::path::Path) -> Settings {
    let mut server = Config::load(
        None,
        &|_| None,
        &Overrides {
            listen: Some("127.0.0.1:0".into()),
            db: Some(dir.join("lockstep.db")),
            ..Default::default()
        },
    )
    .expect("test settings");
    server.data_dir = dir.to_path_buf();
    Settings {
        server,
        site: Default::default(),
        notify: Default::default(),
        oidc: None,
        metrics: Default::default(),
    }
}

/// Finds `name="csrf" value="..."` or the hx-headers token in a page.
pub fn csrf_in(page: &str) -> Option<String> {
    let marker = "\"X-CSRF-Token\": \"";
    let start = page.find(marker)? + marker.len();
    let end = page[start..].find('"')? + start;
    Some(page[start..end].to_string())
}

/// The value of our session cookie in a response's Set-Cookie headers.
pub fn session_from(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix("__Host-lockstep=")
                .map(|r| r.split(';').next().unwrap_or("").to_string())
        })
        .filter(|v| !v.is_empty())
}

/// A person with both doors: a browser session (pages, with CSRF) and an API token.
pub struct Person {
    pub session: Session,
    pub token: String,
}

/// Creates `name` with `role` as the person `email` (separation of duties compares persons)
/// and logs them in on both doors.
pub async fn person(app: &TestApp, name: &str, role: Role, email: &str) -> Person {
    accounts::add_user_for(
        &app.state.pool,
        name,
        Some(email),
        role,
        PASSWORD,
        app.clock.now(),
    )
    .await
    .expect("account");
    let user = accounts::find_user(&app.state.pool, name)
        .await
        .unwrap()
        .unwrap();
    let token = accounts::create_token(&app.state.pool, user.id, "tests", app.clock.now())
        .await
        .unwrap();
    Person {
        session: app.login(name).await,
        token,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn add_user(&self, name: &str, role: Role) {
        accounts::add_user(&self.state.pool, name, role, PASSWORD, self.clock.now())
            .await
            .expect("user added");
    }

    /// Creates the user and logs in through the form.
    pub async fn login_as(&self, name: &str, role: Role) -> Session {
        self.add_user(name, role).await;
        self.login(name).await
    }

    pub async fn login(&self, name: &str) -> Session {
        let resp = self
            .client
            .post(self.url("/login"))
            .form(&[("name", name), ("password", PASSWORD)])
            .send()
            .await
            .expect("login");
        assert_eq!(resp.status(), 303, "login of {name} should redirect");
        let cookie = session_from(&resp).expect("session cookie");
        let page = self
            .get_as(&cookie, "/account")
            .await
            .text()
            .await
            .expect("page");
        let csrf = csrf_in(&page).expect("csrf token on the page");
        Session {
            name: name.to_string(),
            cookie,
            csrf,
        }
    }

    pub async fn get_as(&self, cookie: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("cookie", format!("__Host-lockstep={cookie}"))
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, s: &Session, path: &str) -> reqwest::Response {
        self.get_as(&s.cookie, path).await
    }

    /// A form post as a plain browser would send it (CSRF token in the form).
    pub async fn post(
        &self,
        s: &Session,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf", &s.csrf));
        self.client
            .post(self.url(path))
            .header("cookie", format!("__Host-lockstep={}", s.cookie))
            .form(&all)
            .send()
            .await
            .expect("request")
    }

    /// A post as htmx sends it: token in the header, `HX-Request: true`.
    pub async fn hx_post(
        &self,
        s: &Session,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("cookie", format!("__Host-lockstep={}", s.cookie))
            .header("x-csrf-token", &s.csrf)
            .header("hx-request", "true")
            .form(fields)
            .send()
            .await
            .expect("request")
    }

    /// Creates a run requested by `requester` (an operator) through the engine, in `draft`.
    pub async fn create_run(&self, requester: &str, host_name: &str, output: &str) -> RunRecord {
        let actor = Actor::new(requester, &[Role::Viewer, Role::Operator]);
        self.state
            .store
            .create_run(
                NewRun {
                    change_ticket: "CHG-1001".into(),
                    window_start: None,
                    window_end: None,
                    plan: small_plan(host_name, output),
                },
                &actor,
                self.clock.now_ms(),
            )
            .await
            .expect("run created")
    }

    /// Creates a run and submits it for start approval.
    pub async fn submitted_run(&self, requester: &str) -> RunRecord {
        let run = self.create_run(requester, "DC1", "ok").await;
        let actor = Actor::new(requester, &[Role::Viewer, Role::Operator]);
        self.state
            .store
            .apply_run_event(
                &run.id,
                &lockstep::engine::machine::RunEvent::Submit { actor },
                self.clock.now_ms(),
            )
            .await
            .expect("submitted");
        self.state.store.run(&run.id).await.expect("run")
    }
}

pub fn step(
    id: &str,
    kind: StepKind,
    host: &str,
    deps: &[&str],
    instructions: &str,
) -> PlannedStep {
    PlannedStep {
        id: id.into(),
        title: format!("Step {id}"),
        section: "Stop Data Center Services".into(),
        phase: "Prepare".into(),
        kind,
        host: Some(host.into()),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        instructions: instructions.into(),
        operation: match kind {
            StepKind::Manual => Operation::Manual {
                instructions: instructions.into(),
            },
            _ => Operation::None,
        },
        postcondition: None,
        undo: None,
        gate: None,
        retry: RetryPolicy::default(),
        timeout_secs: 60,
        estimate_secs: 120,
    }
}

/// Three steps: an approval gate, a manual task and another gate, all on `host`; `text` lands in
/// the manual task's instructions (hostile-text tests put markup there).
pub fn small_plan(host: &str, text: &str) -> Plan {
    Plan {
        runbook: "upgrade-8.11".into(),
        runbook_title: "Upgrade to 8.11".into(),
        inventory: "Test DC".into(),
        topology: Topology::Standalone,
        params: BTreeMap::new(),
        steps: vec![
            step("gate", StepKind::Approval, host, &[], "Approve the change"),
            step("wizard", StepKind::Manual, host, &["gate"], text),
            step("final", StepKind::Approval, host, &["wizard"], "Sign off"),
        ],
    }
}
