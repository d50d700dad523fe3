//! Single sign-on against a real OpenID provider: the `oidc-provider` npm package (pinned in
//! tests/oidc/package.json, installed by `npm ci` in scripts/test) started on loopback for each
//! test, with a fresh RSA key, one client and three people. A real HTTP client plays the browser
//! through the provider's own login and consent pages.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;

#[path = "web/app.rs"]
mod app;

use lockstep::config::{Overrides, Settings};
use lockstep::engine::clock::{ManualClock, TokioClock};
use lockstep::engine::Router;
use lockstep::startup::{Application, Options};
use lockstep::web::auth::oidc::Sso;
use lockstep::web::auth::{accounts, Role};
use lockstep::web::{AppState, SharedClock};
use tokio::io::AsyncBufReadExt;

const CLIENT_SECRET: &str = "test client secret, never in a file";

/// The provider process; killed when dropped.
struct Provider {
    issuer: String,
    /// Commands to the provider (tests/oidc/provider.mjs: which key signs, which are published).
    commands: tokio::process::ChildStdin,
    /// Its answers, one JSON line each.
    answers: tokio::sync::mpsc::UnboundedReceiver<String>,
    _child: tokio::process::Child,
}

impl Provider {
    async fn start(redirect_uri: &str) -> Provider {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "tests/oidc/node_modules is missing: run `npm ci` in tests/oidc (scripts/test does) — \
             the single sign-on tests need the real OpenID provider"
        );
        let mut child = tokio::process::Command::new("node")
            .arg("provider.mjs")
            .arg(redirect_uri)
            .arg(CLIENT_SECRET)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (Node.js 20 or later must be installed)");
        let commands = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
        // Keep reading, so the provider never writes into a closed pipe.
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
        let line = next_answer(&mut answers).await;
        let v: serde_json::Value = serde_json::from_str(&line).expect("issuer line is JSON");
        Provider {
            issuer: v["issuer"].as_str().expect("issuer").to_string(),
            commands,
            answers,
            _child: child,
        }
    }

    /// From now on ID tokens are signed with the key `sign` and the key set lists `publish`
    /// (keys are made on first mention; the first is "k1"). Returns how often the key set has
    /// been fetched so far.
    async fn keys(&mut self, sign: &str, publish: &[&str]) -> u64 {
        let command = serde_json::json!({"sign": sign, "publish": publish});
        self.command(command).await
    }

    /// How often the key set has been fetched so far.
    async fn key_set_fetches(&mut self) -> u64 {
        self.command(serde_json::json!({})).await
    }

    async fn command(&mut self, command: serde_json::Value) -> u64 {
        use tokio::io::AsyncWriteExt;
        let line = format!("{command}\n");
        self.commands
            .write_all(line.as_bytes())
            .await
            .expect("command the provider");
        let answer = next_answer(&mut self.answers).await;
        let v: serde_json::Value = serde_json::from_str(&answer).expect("answer is JSON");
        v["jwks_requests"].as_u64().expect("jwks_requests")
    }
}

/// The provider's next line; a guard against a hung provider, not a measure of speed.
async fn next_answer(answers: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(30), answers.recv())
        .await
        .expect("the provider answers within 30 s")
        .expect("the provider is running")
}

struct App {
    base: String,
    state: AppState,
    provider: Provider,
    _dir: tempfile::TempDir,
}

fn config_text(issuer: &str, redirect: &str) -> String {
    format!(
        r#"
[oidc]
issuer = "{issuer}"
client_id = "lockstep"
redirect_url = "{redirect}"
scopes = ["openid", "profile", "email", "groups"]
[[oidc.role]]
value = "dc-admins"
role = "admin"
[[oidc.role]]
value = "change-board"
role = "approver"
[[oidc.role]]
value = "staff"
role = "viewer"
"#
    )
}

async fn spawn_app() -> App {
    spawn_app_with_clock(std::sync::Arc::new(TokioClock::new())).await
}

async fn spawn_app_with_clock(clock: SharedClock) -> App {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let redirect = format!("{base}/login/sso/callback");
    let provider = Provider::start(&redirect).await;
    let file = dir.path().join("lockstep.toml");
    std::fs::write(&file, config_text(&provider.issuer, &redirect)).expect("write config");
    let config = Settings::load(
        Some(&file),
        &|k| (k == "LOCKSTEP_OIDC_CLIENT_SECRET").then(|| CLIENT_SECRET.to_string()),
        &Overrides::default(),
    )
    .expect("valid [oidc] table")
    .oidc
    .expect("single sign-on configured");
    let mut settings = app::settings(dir.path());
    settings.oidc = Some(config);
    let mut options = Options::test(Router::new(), clock, false);
    // Bound before the settings were written: the redirect address names its port.
    options.listener = Some(listener);
    let built = Application::build(settings, options)
        .await
        .expect("the app builds");
    let state = built.state().clone();
    tokio::spawn(built.run_until_stopped(std::future::pending()));
    App {
        base,
        state,
        provider,
        _dir: dir,
    }
}

/// A browser: follows nothing by itself, keeps cookies per host:port.
struct Browser {
    http: reqwest::Client,
    jar: HashMap<(String, String), String>,
}

fn authority(url: &reqwest::Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port().unwrap_or(0)
    )
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            jar: HashMap::new(),
        }
    }

    fn cookie_header(&self, url: &reqwest::Url) -> String {
        let host = authority(url);
        self.jar
            .iter()
            .filter(|((h, _), _)| *h == host)
            .map(|((_, n), v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, url: &reqwest::Url, resp: &reqwest::Response) {
        for v in resp.headers().get_all("set-cookie") {
            let text = v.to_str().unwrap_or("");
            let first = text.split(';').next().unwrap_or("");
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let key = (authority(url), name.trim().to_string());
            if value.is_empty() || text.to_ascii_lowercase().contains("max-age=0") {
                self.jar.remove(&key);
            } else {
                self.jar.insert(key, value.to_string());
            }
        }
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let url = reqwest::Url::parse(url).expect("url");
        let resp = self
            .http
            .get(url.clone())
            .header("cookie", self.cookie_header(&url))
            .send()
            .await
            .expect("GET");
        self.keep_cookies(&url, &resp);
        resp
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let url = reqwest::Url::parse(url).expect("url");
        let resp = self
            .http
            .post(url.clone())
            .header("cookie", self.cookie_header(&url))
            .form(form)
            .send()
            .await
            .expect("POST");
        self.keep_cookies(&url, &resp);
        resp
    }

    fn session(&self, app: &App) -> Option<String> {
        let url = reqwest::Url::parse(&app.base).expect("base");
        self.jar
            .get(&(authority(&url), "__Host-lockstep".to_string()))
            .cloned()
    }

    /// Starts at `/login/sso` and goes through the provider's login and consent pages as
    /// `login`; returns the callback URL the provider sends the browser to (not yet visited).
    async fn sign_in_at_provider(&mut self, app: &App, login: &str) -> String {
        let mut resp = self.get(&format!("{}/login/sso", app.base)).await;
        for _ in 0..12 {
            let here = resp.url().clone();
            if resp.status().is_redirection() {
                let location = resp.headers()["location"].to_str().expect("location");
                let next = here.join(location).expect("absolute location").to_string();
                if next.starts_with(&format!("{}/login/sso/callback", app.base)) {
                    return next;
                }
                resp = self.get(&next).await;
                continue;
            }
            assert_eq!(resp.status(), 200, "provider page at {here}");
            let page = resp.text().await.expect("page");
            let action = form_action(&page).unwrap_or_else(|| panic!("a form on {here}: {page}"));
            let action = here.join(&action).expect("form action").to_string();
            resp = if page.contains("value=\"login\"") {
                self.post(
                    &action,
                    &[("prompt", "login"), ("login", login), ("password", "pw")],
                )
                .await
            } else if page.contains("value=\"consent\"") {
                self.post(&action, &[("prompt", "consent")]).await
            } else {
                panic!("unexpected provider page at {here}: {page}");
            };
        }
        panic!("the provider never sent the browser back to Lockstep");
    }
}

impl Browser {
    /// Starts a sign-in and presses the provider's Cancel link; returns the callback URL.
    async fn cancel_at_provider(&mut self, app: &App) -> String {
        let mut resp = self.get(&format!("{}/login/sso", app.base)).await;
        let mut cancelled = false;
        for _ in 0..12 {
            let here = resp.url().clone();
            if resp.status().is_redirection() {
                let location = resp.headers()["location"].to_str().expect("location");
                let next = here.join(location).expect("absolute location").to_string();
                if next.starts_with(&format!("{}/login/sso/callback", app.base)) {
                    assert!(cancelled, "the provider answered before the cancel");
                    return next;
                }
                resp = self.get(&next).await;
                continue;
            }
            let page = resp.text().await.expect("page");
            let start = page.find("/abort").expect("a Cancel link");
            let href_start = page[..start].rfind('"').expect("href") + 1;
            let abort = here
                .join(&page[href_start..start + "/abort".len()])
                .unwrap();
            cancelled = true;
            resp = self.get(abort.as_str()).await;
        }
        panic!("the provider never sent the browser back to Lockstep");
    }
}

fn form_action(page: &str) -> Option<String> {
    let start = page.find("action=\"")? + "action=\"".len();
    let end = page[start..].find('"')? + start;
    Some(page[start..end].replace("&amp;", "&"))
}

fn replace_param(url: &str, name: &str, value: &str) -> String {
    let mut u = reqwest::Url::parse(url).expect("url");
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

fn param(url: &str, name: &str) -> String {
    reqwest::Url::parse(url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn user_count(app: &App) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&app.state.pool)
        .await
        .expect("count")
}

async fn session_total(app: &App) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(&app.state.pool)
        .await
        .expect("count")
}

#[tokio::test]
async fn people_in_mapped_groups_sign_in_with_their_role_as_sso_accounts() {
    let app = spawn_app().await;
    let mut browser = Browser::new();
    let login_page = browser.get(&format!("{}/login", app.base)).await;
    assert!(login_page
        .text()
        .await
        .unwrap()
        .contains("href=\"/login/sso\""));

    let callback = browser.sign_in_at_provider(&app, "alice").await;
    assert_eq!(param(&callback, "iss"), app.provider.issuer);
    let resp = browser.get(&callback).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("Signed in"));
    let cookie = browser.session(&app).expect("a session cookie");
    let account = browser.get(&format!("{}/account", app.base)).await;
    assert_eq!(account.status(), 200);
    assert!(account.text().await.unwrap().contains("alice"));
    let alice = accounts::find_user(&app.state.pool, "alice")
        .await
        .unwrap()
        .expect("alice's account was created");
    assert_eq!(alice.role, Role::Admin, "dc-admins beats staff");
    assert_eq!(
        accounts::is_sso_user(&app.state.pool, "alice")
            .await
            .unwrap(),
        Some(true)
    );
    assert!(!cookie.is_empty());

    // An SSO account has no password to log in with at the local form.
    let local = browser
        .post(
            &format!("{}/login", app.base),
            &[("name", "alice"), ("password", "!sso")],
        )
        .await;
    assert_eq!(local.status(), 401);

    let mut other = Browser::new();
    let callback = other.sign_in_at_provider(&app, "carol").await;
    assert_eq!(other.get(&callback).await.status(), 200);
    let carol = accounts::find_user(&app.state.pool, "carol")
        .await
        .unwrap()
        .expect("carol's account");
    assert_eq!(carol.role, Role::Approver);

    // An admin sees which accounts sign in through the provider.
    let users = browser.get(&format!("{}/users", app.base)).await;
    assert_eq!(users.status(), 200);
    let users = users.text().await.unwrap();
    assert!(
        users.contains("<td class=\"sign-in\">single sign-on</td>"),
        "{users}"
    );

    // Signing in again finds the same account instead of making another.
    let mut again = Browser::new();
    let callback = again.sign_in_at_provider(&app, "alice").await;
    assert_eq!(again.get(&callback).await.status(), 200);
    assert_eq!(user_count(&app).await, 2);
}

#[tokio::test]
async fn a_person_without_a_mapped_group_is_refused_and_no_account_is_made() {
    let app = spawn_app().await;
    let mut browser = Browser::new();
    let callback = browser.sign_in_at_provider(&app, "bob").await;
    let resp = browser.get(&callback).await;
    assert_eq!(resp.status(), 403);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("your account has no Lockstep role; ask an admin"),
        "{page}"
    );
    assert!(browser.session(&app).is_none());
    assert_eq!(user_count(&app).await, 0);
    assert_eq!(session_total(&app).await, 0);
}

#[tokio::test]
async fn a_tampered_state_or_another_browser_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let mut browser = Browser::new();
    let callback = browser.sign_in_at_provider(&app, "alice").await;

    let tampered = replace_param(&callback, "state", "attacker-chosen-state");
    let resp = browser.get(&tampered).await;
    assert_eq!(resp.status(), 401);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("was not started in this browser"));

    // The genuine answer, delivered to a browser that did not start the sign-in (login CSRF).
    let mut stranger = Browser::new();
    let resp = stranger.get(&callback).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(user_count(&app).await, 0);
    assert_eq!(session_total(&app).await, 0);

    // Neither attempt used up the sign-in of the browser that started it.
    assert_eq!(browser.get(&callback).await.status(), 200);
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn a_replayed_code_is_refused() {
    let app = spawn_app().await;
    let mut browser = Browser::new();
    let callback = browser.sign_in_at_provider(&app, "alice").await;
    assert_eq!(browser.get(&callback).await.status(), 200);
    assert_eq!(session_total(&app).await, 1);

    // The same answer again: its state was used up.
    let resp = browser.get(&callback).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("already used"));

    // The old code under a fresh sign-in's state: the provider refuses the code itself.
    let fresh = browser.get(&format!("{}/login/sso", app.base)).await;
    assert_eq!(fresh.status(), 303);
    let location = fresh.headers()["location"].to_str().unwrap().to_string();
    let replay = replace_param(&callback, "state", &param(&location, "state"));
    let resp = browser.get(&replay).await;
    assert_eq!(resp.status(), 401);
    let page = resp.text().await.unwrap();
    assert!(page.contains("refused the sign-in code"), "{page}");
    assert_eq!(session_total(&app).await, 1);
}

#[tokio::test]
async fn a_provider_that_does_not_answer_is_reported_and_local_accounts_still_work() {
    let app = spawn_app().await;
    // Same settings, but the issuer is a port nobody listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let file = app._dir.path().join("down.toml");
    std::fs::write(
        &file,
        config_text(&issuer, &format!("{}/login/sso/callback", app.base)),
    )
    .unwrap();
    let config = Settings::load(Some(&file), &|_| None, &Overrides::default())
        .unwrap()
        .oidc
        .unwrap();
    let state = app.state.clone().with_sso(Sso::new(config).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = lockstep::web::router(state.clone());
    tokio::spawn(async move {
        let _ = lockstep::web::serve(listener, router, None, std::future::pending()).await;
    });
    let mut browser = Browser::new();
    let resp = browser.get(&format!("{base}/login/sso")).await;
    assert_eq!(resp.status(), 502);
    let page = resp.text().await.unwrap();
    assert!(page.contains("did not answer"), "{page}");
    assert!(page.contains("use a local account"), "{page}");

    accounts::add_user(
        &state.pool,
        "breakglass",
        Role::Admin,
        "correct horse battery staple",
        state.clock.now_secs(),
    )
    .await
    .unwrap();
    let resp = browser
        .post(
            &format!("{base}/login"),
            &[
                ("name", "breakglass"),
                ("password", "correct horse battery staple"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 303);
}

#[tokio::test]
async fn single_sign_on_never_takes_over_a_local_account_of_the_same_name() {
    let app = spawn_app().await;
    accounts::add_user(
        &app.state.pool,
        "alice",
        Role::Viewer,
        "correct horse battery staple",
        app.state.clock.now_secs(),
    )
    .await
    .unwrap();
    let mut browser = Browser::new();
    let callback = browser.sign_in_at_provider(&app, "alice").await;
    let resp = browser.get(&callback).await;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("already exists"));
    let alice = accounts::find_user(&app.state.pool, "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.role, Role::Viewer, "the local account is unchanged");
    assert_eq!(session_total(&app).await, 0);
}

#[tokio::test]
async fn an_id_token_already_expired_by_lockstep_s_clock_is_refused() {
    // Lockstep's clock two hours ahead of the provider's: its one-hour ID tokens arrive expired.
    let ahead = time::OffsetDateTime::now_utc().unix_timestamp() + 2 * 3600;
    let app = spawn_app_with_clock(std::sync::Arc::new(ManualClock::at(ahead * 1000))).await;
    let mut browser = Browser::new();
    let callback = browser.sign_in_at_provider(&app, "alice").await;
    let resp = browser.get(&callback).await;
    assert_eq!(resp.status(), 401);
    let page = resp.text().await.unwrap();
    assert!(page.contains("the ID token expired"), "{page}");
    assert_eq!(user_count(&app).await, 0);
    assert_eq!(session_total(&app).await, 0);
}

#[tokio::test]
async fn a_sign_in_cancelled_at_the_provider_is_reported_and_changes_nothing() {
    let app = spawn_app().await;
    let mut browser = Browser::new();
    let callback = browser.cancel_at_provider(&app).await;
    assert_eq!(param(&callback, "error"), "access_denied");
    let resp = browser.get(&callback).await;
    assert_eq!(resp.status(), 401);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("the identity provider refused the sign-in: access_denied"),
        "{page}"
    );
    assert_eq!(user_count(&app).await, 0);
    assert_eq!(session_total(&app).await, 0);
}

/// A fresh browser goes through the provider as `login` and back to Lockstep's callback.
async fn sign_in(app: &App, login: &str) -> reqwest::Response {
    let mut browser = Browser::new();
    let callback = browser.sign_in_at_provider(app, login).await;
    browser.get(&callback).await
}

#[tokio::test]
async fn a_rotated_signing_key_is_fetched_once_and_old_or_unknown_keys_are_refused() {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let clock = std::sync::Arc::new(ManualClock::at(now * 1000));
    let mut app = spawn_app_with_clock(clock.clone()).await;

    // The first sign-in fetched discovery and, with it, the key set: {k1}.
    assert_eq!(sign_in(&app, "alice").await.status(), 200);
    assert_eq!(app.provider.key_set_fetches().await, 1);

    // The provider rotates: it signs with k2 and publishes only k2. Lockstep meets a key it
    // has not seen, fetches the set again, and the sign-in goes through.
    app.provider.keys("k2", &["k2"]).await;
    let resp = sign_in(&app, "carol").await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(app.provider.key_set_fetches().await, 2);
    // k2 is known now: the next sign-in fetches nothing.
    assert_eq!(sign_in(&app, "alice").await.status(), 200);
    assert_eq!(app.provider.key_set_fetches().await, 2);

    // A token signed with a key the provider never published is refused — and, within a minute
    // of the last fetch, without fetching the set again (a stream of made-up key ids cannot
    // make Lockstep hammer the provider).
    app.provider.keys("forged", &["k2"]).await;
    let resp = sign_in(&app, "alice").await;
    assert_eq!(resp.status(), 401);
    let page = resp.text().await.unwrap();
    assert!(page.contains("published no key `forged`"), "{page}");
    assert_eq!(app.provider.key_set_fetches().await, 2);

    // A minute later, a token signed with the old key k1, retired at the rotation: Lockstep
    // fetches the set once more, and k1 is not in it.
    clock.advance(61_000);
    app.provider.keys("k1", &["k2"]).await;
    let resp = sign_in(&app, "alice").await;
    assert_eq!(resp.status(), 401);
    let page = resp.text().await.unwrap();
    assert!(page.contains("published no key `k1`"), "{page}");
    assert_eq!(app.provider.key_set_fetches().await, 3);

    // Refused sign-ins made no account and no session.
    assert_eq!(user_count(&app).await, 2);
    assert_eq!(session_total(&app).await, 3);
}
