//! The JSON API end to end: tokens, data centers, runs, four-eyes, audit.

use lockstep::web::auth::{accounts, Role};

use crate::app::{spawn_app, TestApp};

async fn token_for(app: &TestApp, name: &str, role: Role) -> String {
    app.add_user(name, role).await;
    let user = accounts::find_user(&app.state.pool, name)
        .await
        .unwrap()
        .unwrap();
    accounts::create_token(&app.state.pool, user.id, "test", app.clock.now())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_run_is_created_and_approved_through_the_api_with_four_eyes() {
    let app = spawn_app().await;
    let op = token_for(&app, "olga", Role::Operator).await;
    let boss = token_for(&app, "alan", Role::Approver).await;
    let c = &app.client;
    let dc = c
        .post(app.url("/api/v1/datacenters"))
        .bearer_auth(&op)
        .json(&serde_json::json!({"toml": include_str!("../../examples/standalone.toml")}))
        .send()
        .await
        .unwrap();
    assert_eq!(dc.status(), 201, "{}", dc.text().await.unwrap());
    let dc: serde_json::Value = dc.json().await.unwrap_or_default();
    let _ = dc;
    let dcs: serde_json::Value = c
        .get(app.url("/api/v1/datacenters"))
        .bearer_auth(&op)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let name = dcs[0]["name"].as_str().unwrap().to_string();
    let created = c
        .post(app.url("/api/v1/runs"))
        .bearer_auth(&op)
        .json(&serde_json::json!({"datacenter": name, "runbook": "upgrade-8.11", "change_ticket": "CHG-42"}))
        .send()
        .await
        .unwrap();
    let status = created.status();
    let body: serde_json::Value = created.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["run"]["status"], "awaiting_start_approval");
    let id = body["run"]["id"].as_str().unwrap().to_string();
    assert!(body["steps"].as_array().unwrap().len() > 5);

    let own = c
        .post(app.url(&format!("/api/v1/runs/{id}/approve")))
        .bearer_auth(&op)
        .json(&serde_json::json!({"comment": "me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 403);
    let ok = c
        .post(app.url(&format!("/api/v1/runs/{id}/approve")))
        .bearer_auth(&boss)
        .json(&serde_json::json!({"comment": "go"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let detail: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(detail["run"]["status"], "running");

    let audit: serde_json::Value = c
        .get(app.url(&format!("/api/v1/audit?run={id}")))
        .bearer_auth(&boss)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(audit["total"].as_u64().unwrap() >= 3);
    assert!(audit["chain"]["problem"].is_null());
}

#[tokio::test]
async fn a_bad_inventory_is_refused_with_every_problem_and_nothing_is_stored() {
    let app = spawn_app().await;
    let op = token_for(&app, "olga", Role::Operator).await;
    let r = app
        .client
        .post(app.url("/api/v1/datacenters"))
        .bearer_auth(&op)
        .json(
            &serde_json::json!({"toml": "name = \"x\"\ntopology = \"triangular\"\nservers = []\n"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["problems"][0]["field"]
            .as_str()
            .unwrap()
            .contains("topology"),
        "{body}"
    );
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM data_centers")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn malformed_json_and_bad_tokens_get_json_errors() {
    let app = spawn_app().await;
    let op = token_for(&app, "olga", Role::Operator).await;
    let r = app
        .client
        .post(app.url("/api/v1/runs"))
        .bearer_auth(&op)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], 422);
    let r = app
        .client
        .get(app.url("/api/v1/me"))
        .bearer_auth("lst_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}
