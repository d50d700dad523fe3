//! Campaigns through the JSON API and the pages, without a browser: planned from a Data Center
//! and a target, refused with the rule's words where the guide cannot reach the target, and the
//! stages' runs refused out of order (409) by the engine whichever door asks.

use lockstep::web::auth::Role;
use serde_json::{json, Value};

use crate::app::{person, spawn_app, TestApp};

const STANDALONE: &str = include_str!("../../examples/standalone.toml");

async fn stored_dc(app: &TestApp) -> String {
    lockstep::web::datacenters::save(&app.state.pool, STANDALONE, "olga", app.clock.now())
        .await
        .unwrap()
        .unwrap()
        .name
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let r = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn target_all() -> Value {
    json!({"connected": "8.11", "windows": "2016", "sql_server": "2016"})
}

#[tokio::test]
async fn a_campaign_is_planned_and_its_second_stage_is_refused_first_by_every_door() {
    let app = spawn_app().await;
    let olga = person(&app, "olga", Role::Operator, "olga@example.com").await;
    let vera = person(&app, "vera", Role::Viewer, "vera@example.com").await;
    let dc = stored_dc(&app).await;

    // A viewer may look but not plan; the operator plans.
    let (status, _) = post(
        &app,
        &vera.token,
        "/api/v1/campaigns",
        json!({"datacenter": dc, "target": target_all()}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, c) = post(
        &app,
        &olga.token,
        "/api/v1/campaigns",
        json!({"datacenter": dc, "target": target_all()}),
    )
    .await;
    assert_eq!(status, 201, "{c}");
    let id = c["campaign"]["id"].as_str().unwrap().to_string();
    let stages = c["stages"].as_array().unwrap();
    assert!(stages.len() >= 2, "{c}");
    for (i, s) in stages.iter().enumerate() {
        assert_eq!(s["ordinal"], i as i64 + 1);
        assert!(!s["reason"].as_str().unwrap().is_empty(), "{s}");
        assert!(!s["section"].as_str().unwrap().is_empty(), "{s}");
        assert!(s["run_id"].is_null());
        assert_eq!(s["estate_after"].as_array().unwrap().len(), 3, "{s}");
    }
    let last = &stages[stages.len() - 1]["estate_after"];
    for server in last.as_array().unwrap() {
        assert_eq!(server["version"], "8.11", "{last}");
        assert_eq!(server["windows"], "2016", "{last}");
    }
    let (status, list) = get(&app, &vera.token, "/api/v1/campaigns").await;
    assert_eq!((status, list.as_array().unwrap().len()), (200, 1), "{list}");
    let (_, none) = get(&app, &vera.token, "/api/v1/campaigns?datacenter=elsewhere").await;
    assert_eq!(none, json!([]));
    let (status, shown) = get(&app, &vera.token, &format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(shown, c);

    // Stage 2 first: the API and the page get the engine's refusal, and nothing is made.
    let ticket = json!({"change_ticket": "CHG-2"});
    let (status, e) = post(
        &app,
        &olga.token,
        &format!("/api/v1/campaigns/{id}/stages/2/run"),
        ticket.clone(),
    )
    .await;
    assert_eq!(status, 409, "{e}");
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.contains("stage 2 of campaign")
            && msg.contains("stage 1")
            && msg.contains("has no run yet"),
        "{msg}"
    );
    let page = app
        .post(
            &olga.session,
            &format!("/campaigns/{id}/stages/2/run"),
            &[("change_ticket", "CHG-2")],
        )
        .await;
    assert_eq!(page.status(), 409);
    let body = page.text().await.unwrap();
    assert!(
        body.contains("id=\"campaign-error\"") && body.contains("has no run yet"),
        "{body}"
    );
    assert!(app.state.store.runs().await.unwrap().is_empty());

    // Stage 1's run: made, linked and waiting for its start approval.
    let (status, after) = post(
        &app,
        &olga.token,
        &format!("/api/v1/campaigns/{id}/stages/1/run"),
        ticket.clone(),
    )
    .await;
    assert_eq!(status, 201, "{after}");
    assert_eq!(after["stages"][0]["run_status"], "awaiting_start_approval");
    let run = after["stages"][0]["run_id"].as_str().unwrap();
    assert_eq!(
        app.state.store.run(run).await.unwrap().change_ticket,
        "CHG-2"
    );
    // A second run of a stage whose run is alive is a conflict; stage 2 still waits.
    let (status, _) = post(
        &app,
        &olga.token,
        &format!("/api/v1/campaigns/{id}/stages/1/run"),
        ticket.clone(),
    )
    .await;
    assert_eq!(status, 409);
    let (status, e) = post(
        &app,
        &olga.token,
        &format!("/api/v1/campaigns/{id}/stages/2/run"),
        ticket,
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("waiting for start approval")
            || e["error"]
                .as_str()
                .unwrap()
                .contains("awaiting start approval"),
        "{e}"
    );

    // The pages: the Data Center lists the campaign; the campaign shows each stage in order,
    // the first opened, the later ones waiting.
    let dc_page = app
        .get(
            &vera.session,
            &format!(
                "/datacenters/{}",
                lockstep::web::pages::datacenters::urlencode(&dc)
            ),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        dc_page.contains(&format!("href=\"/campaigns/{id}\"")),
        "{dc_page}"
    );
    assert!(dc_page.contains("0 of"), "{dc_page}");
    let page = app
        .get(&olga.session, &format!("/campaigns/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"stage-1\"") && page.contains("id=\"stage-2\""));
    assert!(page.contains(&format!("href=\"/runs/{run}\"")), "{page}");
    assert!(page.contains("waits until stage 1 has succeeded"), "{page}");
    assert!(page.contains("/guide?section="), "{page}");
    let events = app.state.store.all_events().await.unwrap();
    assert!(events
        .iter()
        .any(|e| e.kind == "campaign.created" && e.actor == "olga"));
    assert!(events
        .iter()
        .any(|e| e.kind == "campaign.stage_run" && e.run_id.as_deref() == Some(run)));
}

#[tokio::test]
async fn what_a_person_types_wrong_is_named_and_nothing_is_stored() {
    let app = spawn_app().await;
    let olga = person(&app, "olga", Role::Operator, "olga@example.com").await;
    let dc = stored_dc(&app).await;
    let cases = [
        (
            json!({"datacenter": dc, "target": {"windows": "2019"}}),
            "2019",
        ),
        (json!({"datacenter": dc, "target": {}}), "no target given"),
        (
            json!({"datacenter": "", "target": target_all()}),
            "datacenter",
        ),
        (
            json!({"datacenter": "Nowhere", "target": target_all()}),
            "no Data Center named `Nowhere`",
        ),
        (
            json!({"datacenter": dc, "target": target_all(), "extra": 1}),
            "unknown field",
        ),
        (
            json!({"datacenter": dc, "target": {"connected": "8.11", "colour": "blue"}}),
            "unknown field",
        ),
    ];
    for (body, says) in cases {
        let (status, e) = post(&app, &olga.token, "/api/v1/campaigns", body.clone()).await;
        assert_eq!(status, 422, "{body}: {e}");
        assert!(e["error"].as_str().unwrap().contains(says), "{body}: {e}");
    }
    assert!(app.state.store.campaigns(None).await.unwrap().is_empty());
    // The form: a refused plan re-shows the form with the planner's words.
    let r = app
        .post(
            &olga.session,
            "/campaigns",
            &[("datacenter", dc.as_str()), ("windows", "2019")],
        )
        .await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("id=\"campaign-error\"") && body.contains("outside"),
        "{body}"
    );
    // A stage's run needs a change ticket; a stage that does not exist is not found.
    let (_, c) = post(
        &app,
        &olga.token,
        "/api/v1/campaigns",
        json!({"datacenter": dc, "target": target_all()}),
    )
    .await;
    let id = c["campaign"]["id"].as_str().unwrap();
    let (status, e) = post(
        &app,
        &olga.token,
        &format!("/api/v1/campaigns/{id}/stages/1/run"),
        json!({"change_ticket": " "}),
    )
    .await;
    assert_eq!(status, 422, "{e}");
    assert!(
        e["error"].as_str().unwrap().starts_with("change_ticket"),
        "{e}"
    );
    let (status, _) = post(
        &app,
        &olga.token,
        &format!("/api/v1/campaigns/{id}/stages/99/run"),
        json!({"change_ticket": "CHG-1"}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = get(&app, &olga.token, "/api/v1/campaigns/c-nothing").await;
    assert_eq!(status, 404);
    // Without the CSRF token a form post changes nothing.
    let r = app
        .client
        .post(app.url("/campaigns"))
        .header("cookie", format!("__Host-lockstep={}", olga.session.cookie))
        .form(&[("datacenter", dc.as_str()), ("connected", "8.11")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(app.state.store.campaigns(None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_stage_the_estate_no_longer_needs_is_refused_with_the_planners_reason() {
    let app = spawn_app().await;
    let olga = person(&app, "olga", Role::Operator, "olga@example.com").await;
    let dc = stored_dc(&app).await;
    let (status, c) = post(
        &app,
        &olga.token,
        "/api/v1/campaigns",
        json!({"datacenter": dc, "target": {"sql_server": "2016"}}),
    )
    .await;
    assert_eq!(status, 201, "{c}");
    let id = c["campaign"]["id"].as_str().unwrap();
    assert_eq!(c["stages"][0]["runbook"], "upgrade-sql-server", "{c}");
    // Meanwhile someone upgraded SQL Server by hand: the agent reports 2016.
    crate::campaign_facts::report(&app, "FABDC01", "8.8.6", "2012 R2", Some("2016")).await;
    let (status, e) = post(
        &app,
        &olga.token,
        &format!("/api/v1/campaigns/{id}/stages/1/run"),
        json!({"change_ticket": "CHG-1"}),
    )
    .await;
    assert_eq!(status, 409, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("no longer needed: the estate as found is already at the target"),
        "{e}"
    );
    assert!(app.state.store.runs().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_guide_opens_at_a_stages_section() {
    let app = spawn_app().await;
    let vera = app.login_as("vera", Role::Viewer).await;
    let page = app
        .get(&vera, "/guide?section=Upgrade%20SQL%20Server")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<h2 id=\"here\"><mark>Upgrade SQL Server</mark></h2>"),
        "{page}"
    );
    let page = app
        .get(&vera, "/guide?section=%3Cscript%3E")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("No heading named “&#60;script&#62;”"),
        "escaped: {}",
        &page[..page.len().min(2000)]
    );
}
