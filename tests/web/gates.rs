//! Issue 14 over HTTP: preflight gates the start (the API refuses the start naming the error;
//! the run page offers the override only to an approver other than the requester; the override
//! lands in the change record), and the run page shows only the controls the engine's policy
//! allows the person looking.

use lockstep::engine::machine::RunEvent;
use lockstep::engine::store::{DriveLimits, NewRun};
use lockstep::engine::Actor;
use lockstep::web::auth::Role;

use crate::app::{person, small_plan, spawn_app, Person, TestApp};

const INVENTORY: &str = include_str!("../../examples/standalone.toml");
const BAD_CERT: &str = "management-api-certificate@FABAPI01";

fn bad_inventory() -> String {
    INVENTORY.replacen(
        "common_name = \"fabapi01.fabrikam.local\"\nissuer = \"trusted-ca\"",
        "common_name = \"fabapi01.fabrikam.local\"\nissuer = \"self-signed\"",
        1,
    )
}

async fn api(
    app: &TestApp,
    who: &Person,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = app
        .client
        .post(app.url(&format!("/api/v1{path}")))
        .bearer_auth(&who.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

async fn page(app: &TestApp, who: &Person, path: &str) -> String {
    let r = app.get(&who.session, path).await;
    assert_eq!(r.status(), 200, "GET {path}");
    r.text().await.unwrap()
}

#[tokio::test]
async fn a_preflight_error_blocks_the_start_until_another_approver_overrides_it_on_the_page() {
    let app = spawn_app().await;
    let olga = person(&app, "olga", Role::Approver, "olga@example.com").await;
    let carl = person(&app, "carl", Role::Approver, "carl@example.com").await;
    assert_ne!(
        bad_inventory(),
        INVENTORY,
        "the fixture must change the inventory"
    );
    lockstep::web::datacenters::save(&app.state.pool, &bad_inventory(), "olga", 0)
        .await
        .unwrap()
        .unwrap();
    // Olga creates the run through the API; submitting ran preflight and kept its findings.
    let (status, body) = api(
        &app,
        &olga,
        "/runs",
        serde_json::json!({
            "datacenter": "Fabrikam backup (stand-alone)",
            "runbook": "upgrade-8.11",
            "change_ticket": "CHG-14-4",
        }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["run"]["id"].as_str().unwrap().to_string();
    let findings = body["run"]["state"]["preflight"]["findings"]
        .as_array()
        .unwrap();
    assert!(
        findings.iter().any(|f| f["key"] == BAD_CERT),
        "{findings:?}"
    );

    // The start is refused (409) naming the finding.
    let (status, body) = api(
        &app,
        &carl,
        &format!("/runs/{id}/approve"),
        serde_json::json!({ "comment": "CAB agreed" }),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains(BAD_CERT), "{body}");

    // The run page lists the error for both; only Carl gets the override form.
    let as_olga = page(&app, &olga, &format!("/runs/{id}")).await;
    let as_carl = page(&app, &carl, &format!("/runs/{id}")).await;
    for p in [&as_olga, &as_carl] {
        assert!(p.contains("Preflight for the start"));
        assert!(p.contains(BAD_CERT));
        assert!(p.contains("block the start"));
    }
    let form = format!("action=\"/runs/{id}/override\"");
    assert!(
        !as_olga.contains(&form),
        "the requester is offered an override"
    );
    assert!(as_carl.contains(&form));

    // Olga's post is refused anyway (403); Carl's, with the page's CSRF token, is recorded.
    let fields = [
        ("finding", BAD_CERT),
        ("justification", "the CA signs it on Monday"),
    ];
    let r = app
        .post(&olga.session, &format!("/runs/{id}/override"), &fields)
        .await;
    assert_eq!(r.status(), 403);
    let r = app
        .post(&carl.session, &format!("/runs/{id}/override"), &fields)
        .await;
    assert_eq!(r.status(), 303);
    let events = app.state.store.run_events(&id).await.unwrap();
    assert!(events
        .iter()
        .any(|e| e.kind == "run.override_finding" && e.actor == "carl"));

    // The start goes now, and the change record shows the override with its justification.
    let (status, body) = api(
        &app,
        &carl,
        &format!("/runs/{id}/approve"),
        serde_json::json!({ "comment": "CAB agreed" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["run"]["status"], "running");
    let record = page(&app, &carl, &format!("/runs/{id}/report")).await;
    assert!(record.contains(BAD_CERT), "the record names the finding");
    assert!(record.contains("the CA signs it on Monday"));
}

#[tokio::test]
async fn at_a_gate_the_requester_sees_no_approve_or_skip_and_another_approver_does() {
    let app = spawn_app().await;
    let olga = person(&app, "olga", Role::Approver, "olga@example.com").await;
    let carl = person(&app, "carl", Role::Approver, "carl@example.com").await;
    let olga_actor = Actor::new("olga", &[Role::Viewer, Role::Operator, Role::Approver])
        .of_person("olga@example.com");
    let run = app
        .state
        .store
        .create_run(
            NewRun {
                change_ticket: "CHG-14-buttons".into(),
                window_start: None,
                window_end: None,
                plan: small_plan("DC1", "run Setup"),
            },
            &olga_actor,
            app.clock.now_ms(),
        )
        .await
        .unwrap();
    let now = app.clock.now_ms();
    let store = &app.state.store;
    store
        .apply_run_event(&run.id, &RunEvent::Submit { actor: olga_actor }, now)
        .await
        .unwrap();
    // Before the start: the approve-start form only for Carl.
    let id = &run.id;
    assert!(!page(&app, &olga, &format!("/runs/{id}"))
        .await
        .contains("id=\"approve-start-form\""));
    assert!(page(&app, &carl, &format!("/runs/{id}"))
        .await
        .contains("id=\"approve-start-form\""));
    store
        .apply_run_event(
            id,
            &RunEvent::ApproveStart {
                actor: Actor::new("carl", &[Role::Approver]).of_person("carl@example.com"),
                comment: "go".into(),
            },
            now,
        )
        .await
        .unwrap();
    store.claim(id, DriveLimits::default(), now).await.unwrap();
    let approve = format!("action=\"/runs/{id}/steps/gate/approve\"");
    let skip = format!("href=\"/runs/{id}/steps/wizard/skip\"");
    let as_olga = page(&app, &olga, &format!("/runs/{id}")).await;
    let as_carl = page(&app, &carl, &format!("/runs/{id}")).await;
    assert!(
        !as_olga.contains(&approve),
        "the requester is offered Approve"
    );
    assert!(!as_olga.contains(&skip), "the requester is offered Skip");
    assert!(
        as_carl.contains(&approve),
        "another approver is not offered Approve"
    );
    assert!(
        as_carl.contains(&skip),
        "another approver is not offered Skip"
    );
}

#[tokio::test]
async fn a_denied_gate_shows_ask_again_abort_and_undo_and_asking_again_goes_on() {
    let app = spawn_app().await;
    let olga = person(&app, "olga", Role::Approver, "olga@example.com").await;
    let carl = person(&app, "carl", Role::Approver, "carl@example.com").await;
    let dora = person(&app, "dora", Role::Operator, "dora@example.com").await;
    let olga_actor = Actor::new("olga", &[Role::Viewer, Role::Operator, Role::Approver])
        .of_person("olga@example.com");
    let store = &app.state.store;
    let now = app.clock.now_ms();
    let run = store
        .create_run(
            NewRun {
                change_ticket: "CHG-14-hold".into(),
                window_start: None,
                window_end: None,
                plan: small_plan("DC1", "run Setup"),
            },
            &olga_actor,
            now,
        )
        .await
        .unwrap();
    let id = run.id.clone();
    store
        .apply_run_event(&id, &RunEvent::Submit { actor: olga_actor }, now)
        .await
        .unwrap();
    store
        .apply_run_event(
            &id,
            &RunEvent::ApproveStart {
                actor: Actor::new("carl", &[Role::Approver]).of_person("carl@example.com"),
                comment: "go".into(),
            },
            now,
        )
        .await
        .unwrap();
    store.claim(&id, DriveLimits::default(), now).await.unwrap();
    // Carl denies the gate on the page.
    let r = app
        .post(
            &carl.session,
            &format!("/runs/{id}/steps/gate/approve"),
            &[("comment", "not tonight"), ("decision", "deny")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        store.run(&id).await.unwrap().status,
        lockstep::engine::machine::RunStatus::Paused
    );
    // Dora (an operator) reads "on hold" and gets the three choices; no Resume.
    let p = page(&app, &dora, &format!("/runs/{id}")).await;
    assert!(p.contains("on hold: a gate was denied"), "status words");
    assert!(p.contains("not tonight"), "the denial's comment is shown");
    assert!(p.contains(&format!("action=\"/runs/{id}/steps/gate/ask_again\"")));
    assert!(p.contains(&format!("href=\"/runs/{id}/abort\"")));
    assert!(p.contains(&format!("href=\"/runs/{id}/undo\"")));
    assert!(!p.contains(&format!("action=\"/runs/{id}/resume\"")));
    assert!(!p.contains(&format!("action=\"/runs/{id}/steps/gate/retry\"")));
    // Resume is refused whatever the door.
    let r = app
        .post(&olga.session, &format!("/runs/{id}/resume"), &[])
        .await;
    assert_eq!(r.status(), 409);
    // Dora asks again: the run goes on and the gate waits for a new decision, Carl's.
    let r = app
        .post(
            &dora.session,
            &format!("/runs/{id}/steps/gate/ask_again"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        store.run(&id).await.unwrap().status,
        lockstep::engine::machine::RunStatus::Running
    );
    let approve = format!("action=\"/runs/{id}/steps/gate/approve\"");
    assert!(page(&app, &carl, &format!("/runs/{id}"))
        .await
        .contains(&approve));
    assert!(!page(&app, &olga, &format!("/runs/{id}"))
        .await
        .contains(&approve));
}

#[tokio::test]
async fn findings_preflight_could_not_decide_are_listed_beside_approve_start_and_do_not_block() {
    let app = spawn_app().await;
    let olga = person(&app, "olga", Role::Operator, "olga@example.com").await;
    let carl = person(&app, "carl", Role::Approver, "carl@example.com").await;
    // The mirrored example lacks the TLS facts of two servers: "unknown — will be checked live".
    let mirrored = include_str!("../../examples/mirrored.toml");
    let inv = lockstep::web::datacenters::save(&app.state.pool, mirrored, "olga", 0)
        .await
        .unwrap()
        .unwrap();
    let (status, body) = api(
        &app,
        &olga,
        "/runs",
        serde_json::json!({
            "datacenter": inv.name,
            "runbook": "upgrade-8.11",
            "change_ticket": "CHG-14-unknown",
        }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["run"]["id"].as_str().unwrap().to_string();
    let p = page(&app, &carl, &format!("/runs/{id}")).await;
    assert!(p.contains("No error blocks the start."));
    assert!(p.contains("Not known yet"));
    assert!(
        p.contains("tls-same-versions"),
        "the unknown finding is listed"
    );
    assert!(p.contains("id=\"approve-start-form\""));
    let (status, body) = api(
        &app,
        &carl,
        &format!("/runs/{id}/approve"),
        serde_json::json!({ "comment": "looked at the unknowns" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_window_reads_scheduled_before_it_opens_and_a_forecast_past_its_end_offers_an_extension(
) {
    let app = spawn_app().await;
    let olga = person(&app, "olga", Role::Approver, "olga@example.com").await;
    let carl = person(&app, "carl", Role::Approver, "carl@example.com").await;
    let olga_actor = Actor::new("olga", &[Role::Viewer, Role::Operator, Role::Approver])
        .of_person("olga@example.com");
    let carl_actor = Actor::new("carl", &[Role::Approver]).of_person("carl@example.com");
    let store = &app.state.store;
    let now = app.clock.now_ms();
    let hour = 3_600_000;
    let mut ids = Vec::new();
    // One run whose window opens in an hour; one whose window (5 min) cannot hold its plan.
    for (start, end) in [(now + hour, now + 2 * hour), (now - 60_000, now + 300_000)] {
        let run = store
            .create_run(
                NewRun {
                    change_ticket: "CHG-14-window".into(),
                    window_start: Some(start),
                    window_end: Some(end),
                    plan: small_plan("DC1", "run Setup"),
                },
                &olga_actor,
                now,
            )
            .await
            .unwrap();
        store
            .apply_run_event(
                &run.id,
                &RunEvent::Submit {
                    actor: olga_actor.clone(),
                },
                now,
            )
            .await
            .unwrap();
        store
            .apply_run_event(
                &run.id,
                &RunEvent::ApproveStart {
                    actor: carl_actor.clone(),
                    comment: "go".into(),
                },
                now,
            )
            .await
            .unwrap();
        ids.push(run.id);
    }
    let p = page(&app, &carl, &format!("/runs/{}", ids[0])).await;
    assert!(
        p.contains("data-status=\"scheduled\""),
        "the header reads scheduled"
    );
    assert!(p.contains("scheduled: starts when the window opens"));
    assert!(p.contains("Scheduled: nothing starts before the change window opens"));
    // The driver's watch records the warning once; the strip shows it, with Extend for Carl.
    assert!(store.watch_window(&ids[1], now).await.unwrap());
    let form = "id=\"extend-window-form\"";
    let as_carl = page(&app, &carl, &format!("/runs/{}", ids[1])).await;
    let as_olga = page(&app, &olga, &format!("/runs/{}", ids[1])).await;
    assert!(as_carl.contains("the forecast finish passes the end of the change window"));
    assert!(as_olga.contains("the forecast finish passes the end of the change window"));
    assert!(as_carl.contains(form));
    assert!(
        !as_olga.contains(form),
        "the requester is offered the extension"
    );
}
