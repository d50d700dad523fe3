//! Issue 14 over HTTP: a route × control × person matrix on a running run (pages and API), where
//! every refusal of the policy table is 403 (role, separation of duties) or 409 (state: the
//! step's inputs are not done, the step is not where the control applies), with a JSON body on
//! the API and nothing changed. And: a second account for an existing person is refused.

use lockstep::engine::machine::{RunEvent, StepStatus};
use lockstep::engine::store::{DriveLimits, NewRun};
use lockstep::engine::Actor;
use lockstep::web::auth::{accounts, Role};

use crate::app::{person, small_plan, spawn_app, Person, TestApp, PASSWORD};

/// Everything a refused control could change: the run's events and every step's status.
async fn snapshot(app: &TestApp, run: &str) -> (usize, Vec<(String, StepStatus)>) {
    let events = app.state.store.run_events(run).await.unwrap().len();
    let steps = app
        .state
        .store
        .steps(run)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id, s.status))
        .collect();
    (events, steps)
}

#[tokio::test]
async fn every_refusal_of_the_policy_is_403_or_409_on_pages_and_api_and_changes_nothing() {
    let app = spawn_app().await;
    // Olga requests the run and is an approver herself; Carl is another approver; Dora an
    // operator; Vic a viewer.
    let olga = person(&app, "olga", Role::Approver, "olga@example.com").await;
    let carl = person(&app, "carl", Role::Approver, "carl@example.com").await;
    let dora = person(&app, "dora", Role::Operator, "dora@example.com").await;
    let vic = person(&app, "vic", Role::Viewer, "vic@example.com").await;
    // The run as the web layer would create it for Olga (her account's person): gate → wizard
    // → final.
    let olga_actor = Actor::new("olga", &[Role::Viewer, Role::Operator, Role::Approver])
        .of_person("olga@example.com");
    let run = app
        .state
        .store
        .create_run(
            NewRun {
                change_ticket: "CHG-14".into(),
                window_start: None,
                window_end: None,
                plan: small_plan("DC1", "run Setup"),
            },
            &olga_actor,
            app.clock.now_ms(),
        )
        .await
        .unwrap();
    app.state
        .store
        .apply_run_event(
            &run.id,
            &RunEvent::Submit { actor: olga_actor },
            app.clock.now_ms(),
        )
        .await
        .unwrap();
    // Olga may not approve her own start, with either door.
    for via_api in [false, true] {
        let path = format!("/runs/{}/approve", run.id);
        let r = send(&app, &olga, via_api, &path, &[("comment", "ok".into())]).await;
        assert_eq!(r.0, 403, "approve start by the requester: {}", r.1);
    }
    app.state
        .store
        .apply_run_event(
            &run.id,
            &RunEvent::ApproveStart {
                actor: Actor::new("carl", &[Role::Approver]).of_person("carl@example.com"),
                comment: "window agreed".into(),
            },
            app.clock.now_ms(),
        )
        .await
        .unwrap();
    app.state
        .store
        .claim(&run.id, DriveLimits::default(), app.clock.now_ms())
        .await
        .unwrap();
    assert_eq!(
        app.state.store.step(&run.id, "gate").await.unwrap().status,
        StepStatus::AwaitingApproval
    );
    let hash = app
        .state
        .store
        .step(&run.id, "gate")
        .await
        .unwrap()
        .content_hash;
    let id = &run.id;
    // (who, path, fields, expected status, what the refusal is about)
    type Case<'a> = (&'a Person, String, Vec<(&'a str, String)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            &olga,
            format!("/runs/{id}/steps/gate/approve"),
            vec![("comment", "ok".into()), ("content_hash", hash.clone())],
            403,
            "four-eyes",
        ),
        (
            &olga,
            format!("/runs/{id}/steps/gate/deny"),
            vec![("comment", "no".into())],
            403,
            "requester",
        ),
        (
            &olga,
            format!("/runs/{id}/steps/wizard/skip"),
            vec![("justification", "not needed".into())],
            403,
            "requester",
        ),
        (
            &carl,
            format!("/runs/{id}/steps/gate/skip"),
            vec![("justification", "not needed".into())],
            403,
            "never skipped",
        ),
        (
            &carl,
            format!("/runs/{id}/steps/wizard/skip"),
            vec![("justification", "not needed".into())],
            409,
            "not done",
        ),
        (
            &carl,
            format!("/runs/{id}/steps/final/skip"),
            vec![("justification", "not needed".into())],
            403,
            "never skipped",
        ),
        (
            &dora,
            format!("/runs/{id}/steps/wizard/skip"),
            vec![("justification", "not needed".into())],
            403,
            "role",
        ),
        (
            &dora,
            format!("/runs/{id}/steps/gate/approve"),
            vec![("comment", "ok".into()), ("content_hash", hash.clone())],
            403,
            "role",
        ),
        (
            &vic,
            format!("/runs/{id}/steps/gate/approve"),
            vec![("comment", "ok".into()), ("content_hash", hash.clone())],
            403,
            "role",
        ),
        (
            &vic,
            format!("/runs/{id}/pause"),
            vec![("reason", "r".into())],
            403,
            "role",
        ),
        (
            &carl,
            format!("/runs/{id}/steps/gate/resolve"),
            vec![("text", "done".into())],
            409,
            "mark_done",
        ),
        (
            &carl,
            format!("/runs/{id}/steps/wizard/claim"),
            vec![],
            409,
            "claim",
        ),
        (&dora, format!("/runs/{id}/resume"), vec![], 409, "resume"),
        (
            &olga,
            format!("/runs/{id}/extend"),
            vec![
                ("reason", "late".into()),
                ("until", "2030-01-01T00:00".into()),
            ],
            403,
            "requester",
        ),
        (
            &vic,
            format!("/runs/{id}/extend"),
            vec![
                ("reason", "late".into()),
                ("until", "2030-01-01T00:00".into()),
            ],
            403,
            "role",
        ),
        (
            &carl,
            format!("/runs/{id}/extend"),
            vec![
                ("reason", "late".into()),
                ("until", "2000-01-01T00:00".into()),
            ],
            403,
            "past",
        ),
    ];
    let mut checked = 0;
    for (who, path, fields, expected, about) in &cases {
        for via_api in [false, true] {
            let before = snapshot(&app, id).await;
            let (status, body) = send(&app, who, via_api, path, fields).await;
            assert_eq!(
                status, *expected,
                "{path} by {} ({about}, api: {via_api}): {body}",
                who.session.name
            );
            if via_api {
                let json: serde_json::Value = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("{path}: the API refusal is JSON ({e}): {body}"));
                assert_eq!(json["status"], *expected);
                assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()));
            }
            assert_eq!(
                snapshot(&app, id).await,
                before,
                "{path} by {} changed something",
                who.session.name
            );
            checked += 1;
        }
    }
    assert_eq!(checked, cases.len() * 2);
    // And the table lets the right person through: Carl approves the gate.
    let (status, body) = send(
        &app,
        &carl,
        true,
        &format!("/runs/{id}/steps/gate/approve"),
        &[("comment", "ok".into()), ("content_hash", hash)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn send(
    app: &TestApp,
    who: &Person,
    via_api: bool,
    path: &str,
    fields: &[(&str, String)],
) -> (u16, String) {
    let resp = if via_api {
        let body: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
            .collect();
        app.client
            .post(app.url(&format!("/api/v1{path}")))
            .bearer_auth(&who.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    } else {
        let mut form: Vec<(&str, String)> = fields.to_vec();
        form.push(("csrf", who.session.csrf.clone()));
        app.client
            .post(app.url(path))
            .header("cookie", format!("__Host-lockstep={}", who.session.cookie))
            .form(&form)
            .send()
            .await
            .unwrap()
    };
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn a_second_account_for_an_existing_person_is_refused_on_the_api_and_the_admin_page() {
    let app = spawn_app().await;
    let root = person(&app, "root", Role::Admin, "root@example.com").await;
    person(&app, "carl", Role::Approver, "carl@example.com").await;
    let before = accounts::list_users(&app.state.pool).await.unwrap();
    let r = app
        .client
        .post(app.url("/api/v1/users"))
        .bearer_auth(&root.token)
        .json(&serde_json::json!({
            "name": "carl.alt", "role": "approver", "password": PASSWORD,
            "person": "Carl@Example.com"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("carl@example.com"),
        "{body}"
    );
    let r = app
        .post(
            &root.session,
            "/users",
            &[
                ("name", "carl.alt"),
                ("role", "approver"),
                ("password", PASSWORD),
                ("person", "carl@example.com"),
            ],
        )
        .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("one person, one account"));
    // A person that is not an e-mail address is named as the problem.
    let r = app
        .client
        .post(app.url("/api/v1/users"))
        .bearer_auth(&root.token)
        .json(&serde_json::json!({
            "name": "eve", "role": "viewer", "password": PASSWORD, "person": "eve at home"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(accounts::list_users(&app.state.pool).await.unwrap(), before);
}
