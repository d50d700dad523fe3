//! Route × role authorization matrix over every route: a role below the route's minimum gets
//! 403 and nothing changes; without credentials, pages send to the login form and the API
//! answers 401.

use lockstep::web::auth::{accounts, Role};

use crate::app::{spawn_app, Session, TestApp};

/// (method, path, minimum role, form fields / JSON body)
struct Route {
    method: &'static str,
    path: String,
    min: Role,
    form: Vec<(&'static str, String)>,
    json: Option<serde_json::Value>,
}

fn page(method: &'static str, path: String, min: Role, form: Vec<(&'static str, String)>) -> Route {
    Route {
        method,
        path,
        min,
        form,
        json: None,
    }
}

fn api(method: &'static str, path: String, min: Role, json: serde_json::Value) -> Route {
    Route {
        method,
        path: format!("/api/v1{path}"),
        min,
        form: Vec::new(),
        json: Some(json),
    }
}

const INVENTORY: &str = include_str!("../../examples/standalone.toml");

fn routes(run: &str) -> Vec<Route> {
    use Role::*;
    let s = |v: &str| v.to_string();
    let mut r = vec![
        page("GET", s("/"), Viewer, vec![]),
        page("GET", s("/runs"), Viewer, vec![]),
        page("GET", s("/runs/new"), Operator, vec![]),
        page(
            "POST",
            s("/runs/preview"),
            Operator,
            vec![("datacenter", s("x"))],
        ),
        page(
            "POST",
            s("/runs"),
            Operator,
            vec![
                ("datacenter", s("x")),
                ("runbook", s("upgrade-8.11")),
                ("change_ticket", s("C1")),
            ],
        ),
        page("GET", format!("/runs/{run}"), Viewer, vec![]),
        page("GET", format!("/runs/{run}/report"), Viewer, vec![]),
        page("GET", format!("/runs/{run}/report.json"), Viewer, vec![]),
        page(
            "POST",
            format!("/runs/{run}/comments"),
            Operator,
            vec![("text", s("hello"))],
        ),
        page("POST", format!("/runs/{run}/submit"), Operator, vec![]),
        page(
            "POST",
            format!("/runs/{run}/approve"),
            Approver,
            vec![("comment", s("ok"))],
        ),
        page(
            "POST",
            format!("/runs/{run}/pause"),
            Operator,
            vec![("reason", s("r"))],
        ),
        page("POST", format!("/runs/{run}/resume"), Operator, vec![]),
        // The confirmation pages of the dangerous controls (GET of the control's address).
        page("GET", format!("/runs/{run}/pause"), Operator, vec![]),
        page("GET", format!("/runs/{run}/abort"), Operator, vec![]),
        page("GET", format!("/runs/{run}/undo"), Operator, vec![]),
        page(
            "GET",
            format!("/runs/{run}/steps/gate/skip"),
            Approver,
            vec![],
        ),
        page("GET", s("/overview/events"), Viewer, vec![]),
        page("GET", s("/datacenters/x/drawing"), Viewer, vec![]),
        page("GET", s("/datacenters/x/events"), Viewer, vec![]),
        page("GET", format!("/runs/{run}/steps/gate"), Viewer, vec![]),
        page(
            "GET",
            format!("/runs/{run}/steps/gate/log.txt"),
            Viewer,
            vec![],
        ),
        page(
            "POST",
            format!("/runs/{run}/abort"),
            Operator,
            vec![("reason", s("r"))],
        ),
        page(
            "POST",
            format!("/runs/{run}/undo"),
            Operator,
            vec![("reason", s("r"))],
        ),
        page("GET", s("/datacenters"), Viewer, vec![]),
        page(
            "POST",
            s("/datacenters"),
            Operator,
            vec![("toml", s(INVENTORY))],
        ),
        page("GET", s("/runbooks"), Viewer, vec![]),
        page("GET", s("/runbooks/upgrade-8.11"), Viewer, vec![]),
        page("GET", s("/audit"), Viewer, vec![]),
        page("GET", s("/audit/export.csv"), Viewer, vec![]),
        page("GET", s("/audit/export.jsonl"), Viewer, vec![]),
        page("GET", s("/audit/export.bundle.json"), Viewer, vec![]),
        page("GET", s("/overview/run-history"), Viewer, vec![]),
        page("GET", s("/users"), Admin, vec![]),
        page("GET", s("/agents"), Admin, vec![]),
        page(
            "POST",
            s("/agents/refresh"),
            Operator,
            vec![("back", s("/agents"))],
        ),
        page(
            "POST",
            s("/users"),
            Admin,
            vec![
                ("name", s("newbie")),
                ("role", s("viewer")),
                ("password", s("a long enough passphrase")),
            ],
        ),
        page("POST", s("/users/target/disable"), Admin, vec![]),
        page("GET", s("/account"), Viewer, vec![]),
        page(
            "POST",
            s("/account/tokens"),
            Viewer,
            vec![("label", s("t"))],
        ),
        api("GET", s("/me"), Viewer, serde_json::Value::Null),
        api(
            "POST",
            s("/tokens"),
            Viewer,
            serde_json::json!({"label": "t"}),
        ),
        api("GET", s("/users"), Admin, serde_json::Value::Null),
        api(
            "POST",
            s("/users"),
            Admin,
            serde_json::json!({"name": "newbie2", "role": "viewer", "password": "a long enough passphrase"}),
        ),
        api(
            "POST",
            s("/users/target/disable"),
            Admin,
            serde_json::Value::Null,
        ),
        api("GET", s("/datacenters"), Viewer, serde_json::Value::Null),
        api(
            "POST",
            s("/datacenters"),
            Operator,
            serde_json::json!({"toml": INVENTORY}),
        ),
        api("GET", s("/runbooks"), Viewer, serde_json::Value::Null),
        api(
            "GET",
            s("/runbooks/upgrade-8.11"),
            Viewer,
            serde_json::Value::Null,
        ),
        api("GET", s("/runs"), Viewer, serde_json::Value::Null),
        api(
            "POST",
            s("/runs"),
            Operator,
            serde_json::json!({"datacenter": "x", "runbook": "upgrade-8.11", "change_ticket": "C1"}),
        ),
        api(
            "GET",
            format!("/runs/{run}"),
            Viewer,
            serde_json::Value::Null,
        ),
        api(
            "GET",
            format!("/runs/{run}/report"),
            Viewer,
            serde_json::Value::Null,
        ),
        api(
            "GET",
            format!("/runs/{run}/steps/gate/log"),
            Viewer,
            serde_json::Value::Null,
        ),
        api(
            "POST",
            format!("/runs/{run}/comments"),
            Operator,
            serde_json::json!({"text": "hi"}),
        ),
        api("GET", s("/audit"), Viewer, serde_json::Value::Null),
        api("GET", s("/agents"), Viewer, serde_json::Value::Null),
        api(
            "POST",
            s("/agents/refresh"),
            Operator,
            serde_json::json!({}),
        ),
    ];
    for action in ["submit", "pause", "resume", "abort", "undo"] {
        r.push(api(
            "POST",
            format!("/runs/{run}/{action}"),
            Operator,
            serde_json::json!({"reason": "r"}),
        ));
    }
    r.push(api(
        "POST",
        format!("/runs/{run}/approve"),
        Approver,
        serde_json::json!({"comment": "ok"}),
    ));
    for (action, min) in [
        ("approve", Approver),
        ("deny", Approver),
        ("claim", Operator),
        ("complete", Operator),
        ("retry", Operator),
        ("skip", Approver),
        ("resolve", Operator),
    ] {
        r.push(page(
            "POST",
            format!("/runs/{run}/steps/gate/{action}"),
            min,
            vec![
                ("comment", s("c")),
                ("note", s("n")),
                ("justification", s("j")),
                ("text", s("t")),
            ],
        ));
        r.push(api(
            "POST",
            format!("/runs/{run}/steps/gate/{action}"),
            min,
            serde_json::json!({"comment": "c", "note": "n", "justification": "j", "text": "t"}),
        ));
    }
    r
}

/// Everything a request could change.
async fn snapshot(app: &TestApp) -> (usize, Vec<accounts::User>, i64, i64) {
    let events = app.state.store.all_events().await.unwrap().len();
    let users = accounts::list_users(&app.state.pool).await.unwrap();
    let dcs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM data_centers")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    let tokens: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    (events, users, dcs, tokens)
}

async fn send(app: &TestApp, route: &Route, who: Option<(&Session, &str)>) -> reqwest::Response {
    let url = app.url(&route.path);
    let mut req = match route.method {
        "GET" => app.client.get(url),
        _ => app.client.post(url),
    };
    if route.json.is_some() {
        if let Some((_, token)) = who {
            req = req.bearer_auth(token);
        }
        if let Some(body) = route.json.as_ref().filter(|b| !b.is_null()) {
            req = req.json(body);
        }
    } else {
        if let Some((s, _)) = who {
            req = req.header("cookie", format!("__Host-lockstep={}", s.cookie));
            if route.method == "POST" {
                let mut form = route.form.clone();
                form.push(("csrf", s.csrf.clone()));
                req = req.form(&form);
            }
        } else if route.method == "POST" {
            req = req.form(&route.form);
        }
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn every_route_refuses_roles_below_its_minimum_and_changes_nothing() {
    let app = spawn_app().await;
    app.add_user("target", Role::Viewer).await;
    app.add_user("olga", Role::Operator).await;
    let run = app.submitted_run("olga").await;
    let mut people = Vec::new();
    for role in Role::ALL {
        let name = format!("m-{role}");
        let s = app.login_as(&name, role).await;
        let user = accounts::find_user(&app.state.pool, &name)
            .await
            .unwrap()
            .unwrap();
        let token = accounts::create_token(&app.state.pool, user.id, "matrix", app.clock.now())
            .await
            .unwrap();
        people.push((role, s, token));
    }
    let routes = routes(&run.id);
    let mut checked = 0;
    for route in &routes {
        for (role, s, token) in &people {
            if role.allows(route.min) {
                continue;
            }
            let before = snapshot(&app).await;
            let resp = send(&app, route, Some((s, token))).await;
            assert_eq!(
                resp.status(),
                403,
                "{} {} as {role}",
                route.method,
                route.path
            );
            assert_eq!(
                snapshot(&app).await,
                before,
                "{} {} as {role} changed something",
                route.method,
                route.path
            );
            checked += 1;
        }
        let before = snapshot(&app).await;
        let anon = send(&app, route, None).await;
        if route.json.is_some() {
            assert_eq!(
                anon.status(),
                401,
                "{} {} anonymous",
                route.method,
                route.path
            );
        } else {
            assert_eq!(
                anon.status(),
                303,
                "{} {} anonymous",
                route.method,
                route.path
            );
            assert_eq!(anon.headers()["location"], "/login");
        }
        assert_eq!(
            snapshot(&app).await,
            before,
            "{} {} anonymous changed something",
            route.method,
            route.path
        );
    }
    assert!(checked > 40, "only {checked} refusals checked");
    // And the allowed roles are not refused for their role (they may get 404/409/422 on the
    // made-up input, never 401/403 — except four-eyes, which this matrix avoids).
    for route in &routes {
        for (role, s, token) in &people {
            if !role.allows(route.min) {
                continue;
            }
            let status = send(&app, route, Some((s, token))).await.status();
            if route.method == "POST" && route.path.ends_with("/tokens") && route.json.is_some() {
                // This matrix calls the API with a token, and a token cannot mint tokens
                // (issue #14): refused whatever the role.
                assert_eq!(status, 403, "POST {} with a token", route.path);
                continue;
            }
            assert!(
                status != 401 && status != 403,
                "{} {} as {role}: {status}",
                route.method,
                route.path
            );
        }
    }
}

#[tokio::test]
async fn every_path_in_the_openapi_document_is_served() {
    let app = spawn_app().await;
    app.add_user("root", Role::Admin).await;
    let user = accounts::find_user(&app.state.pool, "root")
        .await
        .unwrap()
        .unwrap();
    let token = accounts::create_token(&app.state.pool, user.id, "t", app.clock.now())
        .await
        .unwrap();
    let doc: serde_json::Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 15);
    for (path, methods) in paths {
        let concrete = path
            .replace("{id}", "no-such-id")
            .replace("{name}", "no-such-name")
            .replace("{step}", "no-such-step")
            .replace("{action}", "approve");
        for method in methods.as_object().unwrap().keys() {
            let url = app.url(&format!("/api/v1{concrete}"));
            let req = match method.as_str() {
                "get" => app.client.get(url),
                "post" => app.client.post(url).json(&serde_json::json!({})),
                other => panic!("unexpected method {other}"),
            };
            let resp = req.bearer_auth(&token).send().await.unwrap();
            let status = resp.status();
            let body = resp.text().await.unwrap();
            assert!(
                status != 405 && !body.contains("no API route"),
                "{method} {path}: {status} {body}"
            );
            assert!(status.as_u16() < 500, "{method} {path}: {status} {body}");
        }
    }
}
