//! Bounds at the smaller doors (issue #14): the Audit page and API read one page of events in SQL
//! however long the log is; API tokens expire, are listed and revoked (page and API), and a
//! token cannot create tokens; every refusal under `/api/` is JSON, including the ones no
//! handler writes; the CLI ends quietly when its reader closes the pipe.

#[path = "web/app.rs"]
mod app;

use app::spawn_app;
use lockstep::engine::store::EventFilter;
use lockstep::web::auth::{accounts, Role};

#[tokio::test]
async fn the_audit_page_of_twenty_thousand_events_reads_one_page_of_rows() {
    let app = spawn_app().await;
    let run = app.create_run("olga", "DC1", "ok").await;
    let olga = lockstep::engine::testkit::operator("olga");
    for chunk in 0..20 {
        let texts: Vec<String> = (0..1000)
            .map(|i| format!("note {} of the night shift", chunk * 1000 + i))
            .collect();
        app.state
            .store
            .comment_many(&run.id, &olga, &texts, app.clock.now_ms())
            .await
            .unwrap();
    }
    let store = &app.state.store;
    let (page, total) = store
        .events_page(&EventFilter::default(), true, 50, 0)
        .await
        .unwrap();
    assert!(total > 20_000, "{total}");
    assert_eq!(page.len(), 50, "one page of rows, not the log");
    assert!(page[0].id > page[49].id, "newest first");
    // Filters run in SQL: words in the person's text, the kind, the person.
    let words = EventFilter {
        words: Some("NOTE 19999 OF".into()),
        ..EventFilter::default()
    };
    let (found, n) = store.events_page(&words, true, 50, 0).await.unwrap();
    assert_eq!((found.len(), n), (1, 1), "{found:?}");
    let by_kind = EventFilter {
        kind_prefix: Some("run.".into()),
        actor: Some("olga".into()),
        ..EventFilter::default()
    };
    let (_, n) = store.events_page(&by_kind, false, 50, 0).await.unwrap();
    assert_eq!(n, 1, "run.created only");

    let s = app.login_as("ada", Role::Viewer).await;
    let page = app.get(&s, "/audit?page=2").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert_eq!(
        html.matches("<tr").count() - 1,
        50,
        "one page of rows shown"
    );
    let page = app
        .get(&s, "/audit?q=note+12345+of")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("note 12345 of the night shift"),
        "search finds it"
    );
    let token = app.api_token("ada").await;
    let api: serde_json::Value = app
        .client
        .get(app.url("/api/v1/audit?page=3"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["events"].as_array().unwrap().len(), 50);
    assert_eq!(api["page"], 3);
    assert_eq!(api["chain"]["problem"], serde_json::Value::Null, "{api}");
    let first = api["events"][0]["id"].as_i64().unwrap();
    assert_eq!(first, 101, "the API pages oldest first, as before");
}

trait Tokens {
    async fn api_token(&self, name: &str) -> String;
}

impl Tokens for app::TestApp {
    async fn api_token(&self, name: &str) -> String {
        let user = accounts::find_user(&self.state.pool, name)
            .await
            .unwrap()
            .unwrap();
        accounts::create_token(&self.state.pool, user.id, "test", self.clock.now())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn tokens_expire_are_revoked_and_cannot_mint_tokens() {
    let app = spawn_app().await;
    let s = app.login_as("olga", Role::Operator).await;
    let page = app.get(&s, "/account").await.text().await.unwrap();
    assert!(page.contains("No tokens yet"), "empty state");

    // A token made from the session, for 10 days.
    let made = app
        .client
        .post(app.url("/api/v1/tokens"))
        .header("cookie", format!("__Host-lockstep={}", s.cookie))
        .header("x-csrf-token", &s.csrf)
        .json(&serde_json::json!({ "label": "ci", "expires_in_days": 10 }))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let made: serde_json::Value = made.json().await.unwrap();
    let token = made["token"].as_str().unwrap().to_string();
    assert_eq!(made["expires_at"], app.clock.now() + 10 * 86_400);
    let me = |t: String| {
        let client = app.client.clone();
        let url = app.url("/api/v1/me");
        async move {
            client
                .get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(me(token.clone()).await, 200);

    // A token cannot mint tokens: 403, JSON, and nothing made.
    let minted = app
        .client
        .post(app.url("/api/v1/tokens"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "label": "child" }))
        .send()
        .await
        .unwrap();
    assert_eq!(minted.status(), 403);
    let body: serde_json::Value = minted.json().await.unwrap();
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("cannot create tokens"));
    // Too long a life is refused.
    let too_long = app
        .client
        .post(app.url("/api/v1/tokens"))
        .header("cookie", format!("__Host-lockstep={}", s.cookie))
        .header("x-csrf-token", &s.csrf)
        .json(&serde_json::json!({ "label": "forever", "expires_in_days": 4000 }))
        .send()
        .await
        .unwrap();
    assert_eq!(too_long.status(), 422);

    // Listed (never the text), then expired after its 10 days: 401.
    let listed: serde_json::Value = app
        .client
        .get(app.url("/api/v1/tokens"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["state"], "active");
    assert!(!listed.to_string().contains(&token));
    app.clock.advance(10 * 86_400);
    assert_eq!(me(token.clone()).await, 401, "expired");
    // Ten days later the browser session has ended too: log in again.
    let s = app.login("olga").await;
    let page = app.get(&s, "/account").await.text().await.unwrap();
    assert!(page.contains("expired"), "the page says so");

    // A second token, revoked on the page: the next request with it gets 401.
    let page = app
        .post(
            &s,
            "/account/tokens",
            &[("label", "deploy"), ("expires_in_days", "")],
        )
        .await
        .text()
        .await
        .unwrap();
    let start = page.find("id=\"new-token\">").unwrap() + "id=\"new-token\">".len();
    let second = page[start..page[start..].find('<').unwrap() + start].to_string();
    assert_eq!(me(second.clone()).await, 200);
    let id = accounts::list_tokens(&app.state.pool, 1)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.label == "deploy")
        .unwrap()
        .id;
    let revoked = app
        .post(&s, &format!("/account/tokens/{id}/revoke"), &[])
        .await;
    assert_eq!(revoked.status(), 303);
    assert_eq!(me(second.clone()).await, 401, "revoked");
    // Revoking through the API, and someone else's token is not found.
    let third = app.api_token("olga").await;
    let third_id = id + 1;
    app.add_user("bob", Role::Operator).await;
    let bobs = app.api_token("bob").await;
    let r = app
        .client
        .post(app.url(&format!("/api/v1/tokens/{third_id}/revoke")))
        .bearer_auth(&bobs)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "not bob's");
    let r = app
        .client
        .post(app.url(&format!("/api/v1/tokens/{third_id}/revoke")))
        .bearer_auth(&third)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r: serde_json::Value = r.json().await.unwrap();
    assert_eq!(r["state"], "revoked");
    assert_eq!(me(third).await, 401);
}

#[tokio::test]
async fn every_refusal_under_the_api_is_json() {
    let app = spawn_app().await;
    app.add_user("olga", Role::Operator).await;
    let token = app.api_token("olga").await;
    let big = "x".repeat(lockstep::web::MAX_FORM_BYTES + 10);
    let c = &app.client;
    let url = |p: &str| app.url(p);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        ("no token", c.get(url("/api/v1/runs")), 401),
        (
            "a wrong token",
            c.get(url("/api/v1/runs")).bearer_auth("lst_nope"),
            401,
        ),
        (
            "an unknown API route",
            c.get(url("/api/v1/nope")).bearer_auth(&token),
            404,
        ),
        (
            "outside /api/v1",
            c.get(url("/api/v2/runs")).bearer_auth(&token),
            404,
        ),
        (
            "a method the route lacks",
            c.put(url("/api/v1/runs")).bearer_auth(&token),
            405,
        ),
        (
            "a token id that is not a number (names no token)",
            c.post(url("/api/v1/tokens/abc/revoke")).bearer_auth(&token),
            404,
        ),
        (
            "a body that is not JSON",
            c.post(url("/api/v1/runs"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{not json"),
            400,
        ),
        (
            "a body without a JSON content type",
            c.post(url("/api/v1/runs")).bearer_auth(&token).body("{}"),
            422,
        ),
        (
            "a query that does not parse",
            c.get(url("/api/v1/audit?page=abc")).bearer_auth(&token),
            422,
        ),
        (
            "a body over the limit",
            c.post(url("/api/v1/datacenters"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(format!("{{\"toml\": \"{big}\"}}")),
            413,
        ),
    ];
    for (what, req, expected) in cases {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let kind = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = r.text().await.unwrap();
        assert!(
            status == expected
                || (expected == 400 && status == 422)
                || (expected == 422 && status == 400),
            "{what}: {status} {body}"
        );
        assert!(
            kind.starts_with("application/json"),
            "{what}: {kind} {body}"
        );
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: {body}"));
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {body}"
        );
        assert_eq!(v["status"], status, "{what}: {body}");
    }
}

#[tokio::test]
async fn the_cli_ends_quietly_when_its_reader_closes_the_pipe() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lockstep.db");
    {
        let store = lockstep::engine::Store::open(&db).await.unwrap();
        let run = store
            .create_run(
                lockstep::engine::store::NewRun {
                    change_ticket: "CHG-1".into(),
                    window_start: None,
                    window_end: None,
                    plan: lockstep::engine::testkit::noop_plan(2, false, &[]),
                },
                &lockstep::engine::testkit::operator("olga"),
                1,
            )
            .await
            .unwrap();
        let texts: Vec<String> = (0..5000)
            .map(|i| format!("line {i} {}", "x".repeat(80)))
            .collect();
        store
            .comment_many(
                &run.id,
                &lockstep::engine::testkit::operator("olga"),
                &texts,
                2,
            )
            .await
            .unwrap();
    }
    for format in ["jsonl", "csv"] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
            .args(["audit", "export", "--format", format, "--db"])
            .arg(&db)
            .env_remove("LOCKSTEP_AUDIT_KEY")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut first = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty());
        // The reader is gone (dropped above), like `| head -1`.
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        use std::os::unix::process::ExitStatusExt;
        assert!(
            out.status.success() || out.status.signal() == Some(libc_sigpipe()),
            "{format}: {:?} {stderr}",
            out.status
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("error"),
            "{format}: quiet, but said: {stderr}"
        );
    }
}

/// SIGPIPE's number on Linux and the BSDs.
fn libc_sigpipe() -> i32 {
    13
}

#[tokio::test]
async fn a_join_is_order_not_work_on_the_run_page_and_in_the_change_record() {
    use lockstep::engine::testkit::{agent_step, plan_of};
    use lockstep::knowledge::plan::StepKind;
    let app = spawn_app().await;
    let mut steps: Vec<_> = ["a", "b"]
        .iter()
        .map(|id| agent_step(id, Some("DC1")))
        .collect();
    let mut join = agent_step("a.all", None);
    join.kind = StepKind::Barrier;
    join.title = "Every a step is done".into();
    join.operation = lockstep::knowledge::operation::Operation::None;
    join.depends_on = vec!["a".into(), "b".into()];
    let mut after = agent_step("after", Some("DC1"));
    after.depends_on = vec!["a.all".into()];
    steps.push(join);
    steps.push(after);
    let run = app
        .state
        .store
        .create_run(
            lockstep::engine::store::NewRun {
                change_ticket: "CHG-7".into(),
                window_start: None,
                window_end: None,
                plan: plan_of(steps),
            },
            &lockstep::engine::testkit::operator("olga"),
            app.clock.now_ms(),
        )
        .await
        .unwrap();
    let s = app.login_as("vera", Role::Viewer).await;
    let page = app.get(&s, &format!("/runs/{}", run.id)).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("Step after"), "the work is shown");
    assert!(
        !page.contains("Every a step is done"),
        "no card for the join"
    );
    assert!(
        page.contains("3 steps") || !page.contains("4 steps"),
        "counts leave it out"
    );
    let record = app.get(&s, &format!("/runs/{}/report", run.id)).await;
    assert_eq!(record.status(), 200);
    let record = record.text().await.unwrap();
    assert!(record.contains("Step after"));
    assert!(
        !record.contains("Every a step is done"),
        "the record lists work only"
    );
}
