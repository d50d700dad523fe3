//! The run page and its controls: roles, four-eyes, IDOR, escaping, live updates.

use std::time::Duration;

use futures_util::StreamExt;
use lockstep::engine::machine::{RunStatus, StepStatus};
use lockstep::web::auth::Role;

use crate::app::spawn_app;

#[tokio::test]
async fn another_approver_approves_the_start_and_the_run_moves_on() {
    let app = spawn_app().await;
    let _op = app.login_as("olga", Role::Operator).await;
    let appr = app.login_as("alan", Role::Approver).await;
    let run = app.submitted_run("olga").await;
    assert_eq!(run.status, RunStatus::AwaitingStartApproval);
    let page = app
        .get(&appr, &format!("/runs/{}", run.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Approve start"), "approver sees the control");
    let r = app
        .post(
            &appr,
            &format!("/runs/{}/approve", run.id),
            &[("comment", "window agreed")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let after = app.state.store.run(&run.id).await.unwrap();
    assert_eq!(after.status, RunStatus::Running);
    assert_eq!(after.state.approved_by.as_deref(), Some("alan"));
}

#[tokio::test]
async fn approval_by_the_requester_is_refused() {
    let app = spawn_app().await;
    // An approver may request a run, but never approve their own request.
    let s = app.login_as("alan", Role::Approver).await;
    let run = app.submitted_run("alan").await;
    let page = app
        .get(&s, &format!("/runs/{}", run.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("Approve start"),
        "the requester is not offered the approval"
    );
    let events_before = app.state.store.run_events(&run.id).await.unwrap().len();
    let r = app
        .post(
            &s,
            &format!("/runs/{}/approve", run.id),
            &[("comment", "self")],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("four-eyes"));
    assert_eq!(
        app.state.store.run(&run.id).await.unwrap().status,
        RunStatus::AwaitingStartApproval
    );
    assert_eq!(
        app.state.store.run_events(&run.id).await.unwrap().len(),
        events_before
    );
}

#[tokio::test]
async fn a_viewer_cannot_approve_and_does_not_see_the_control() {
    let app = spawn_app().await;
    let v = app.login_as("vera", Role::Viewer).await;
    app.add_user("olga", Role::Operator).await;
    let run = app.submitted_run("olga").await;
    let page = app
        .get(&v, &format!("/runs/{}", run.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("Approve start"));
    let r = app
        .post(
            &v,
            &format!("/runs/{}/approve", run.id),
            &[("comment", "x")],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        app.state.store.run(&run.id).await.unwrap().status,
        RunStatus::AwaitingStartApproval
    );
}

/// Drives a run to its first gate being open (the engine's driver steps, done by hand here).
async fn open_first_gate(app: &crate::app::TestApp, run_id: &str) {
    use lockstep::engine::machine::StepEvent;
    let now = app.clock.now_ms();
    app.state
        .store
        .apply_step_event(run_id, "gate", &StepEvent::Unblock, now)
        .await
        .unwrap();
    app.state
        .store
        .apply_step_event(run_id, "gate", &StepEvent::Start, now)
        .await
        .unwrap();
    assert_eq!(
        app.state.store.step(run_id, "gate").await.unwrap().status,
        StepStatus::AwaitingApproval
    );
}

async fn approved_running_run(app: &crate::app::TestApp, requester: &str, host: &str) -> String {
    use lockstep::engine::machine::RunEvent;
    use lockstep::engine::Actor;
    let run = app.create_run(requester, host, "ok").await;
    let now = app.clock.now_ms();
    let store = &app.state.store;
    store
        .apply_run_event(
            &run.id,
            &RunEvent::Submit {
                actor: Actor::new(requester, &[Role::Viewer, Role::Operator]),
            },
            now,
        )
        .await
        .unwrap();
    store
        .apply_run_event(
            &run.id,
            &RunEvent::ApproveStart {
                actor: Actor::new("boss", &[Role::Viewer, Role::Operator, Role::Approver]),
                comment: "go".into(),
            },
            now,
        )
        .await
        .unwrap();
    open_first_gate(app, &run.id).await;
    run.id
}

#[tokio::test]
async fn an_approval_shown_for_one_run_cannot_be_used_in_another() {
    let app = spawn_app().await;
    let appr = app.login_as("alan", Role::Approver).await;
    app.add_user("olga", Role::Operator).await;
    let a = approved_running_run(&app, "olga", "DC1").await;
    let b = approved_running_run(&app, "olga", "DC2").await;
    let hash_a = app.state.store.step(&a, "gate").await.unwrap().content_hash;
    // Posting run A's approval (its content hash) against run B's gate is refused.
    let r = app
        .post(
            &appr,
            &format!("/runs/{b}/steps/gate/approve"),
            &[
                ("comment", "ok"),
                ("content_hash", &hash_a),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        app.state.store.step(&b, "gate").await.unwrap().status,
        StepStatus::AwaitingApproval
    );
    assert!(app
        .state
        .store
        .step(&b, "gate")
        .await
        .unwrap()
        .state
        .approvals
        .is_empty());
    // A step id from nowhere is a 404.
    let r = app
        .post(
            &appr,
            &format!("/runs/{b}/steps/nope/approve"),
            &[("comment", "ok")],
        )
        .await;
    assert_eq!(r.status(), 404);
    // The right hash in the right run works.
    let r = app
        .post(
            &appr,
            &format!("/runs/{a}/steps/gate/approve"),
            &[
                ("comment", "ok"),
                ("content_hash", &hash_a),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        app.state.store.step(&a, "gate").await.unwrap().status,
        StepStatus::Succeeded
    );
}

#[tokio::test]
async fn a_gate_approval_by_the_run_requester_is_refused() {
    let app = spawn_app().await;
    let s = app.login_as("alan", Role::Approver).await;
    let run = approved_running_run(&app, "alan", "DC1").await;
    let hash = app
        .state
        .store
        .step(&run, "gate")
        .await
        .unwrap()
        .content_hash;
    let r = app
        .post(
            &s,
            &format!("/runs/{run}/steps/gate/approve"),
            &[("comment", "mine"), ("content_hash", &hash)],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        app.state.store.step(&run, "gate").await.unwrap().status,
        StepStatus::AwaitingApproval
    );
}

#[tokio::test]
async fn a_denial_with_a_comment_fails_the_gate() {
    let app = spawn_app().await;
    let appr = app.login_as("alan", Role::Approver).await;
    app.add_user("olga", Role::Operator).await;
    let run = approved_running_run(&app, "olga", "DC1").await;
    let r = app
        .hx_post(
            &appr,
            &format!("/runs/{run}/steps/gate/approve"),
            &[("comment", "not tonight"), ("decision", "deny")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let card = r.text().await.unwrap();
    assert!(
        card.starts_with("<article id=\"step-0\""),
        "htmx gets the card alone: {card}"
    );
    let step = app.state.store.step(&run, "gate").await.unwrap();
    assert_eq!(step.status, StepStatus::Failed);
}

#[tokio::test]
async fn hostile_text_is_shown_escaped_in_server_names_comments_and_step_text() {
    let app = spawn_app().await;
    let op = app.login_as("olga", Role::Operator).await;
    let evil = "<script>alert(1)</script>\"'{{ x }}{% if %}";
    let run = app.create_run("olga", evil, evil).await;
    let r = app
        .post(
            &op,
            &format!("/runs/{}/comments", run.id),
            &[("text", evil)],
        )
        .await;
    assert_eq!(r.status(), 303);
    let page = app
        .get(&op, &format!("/runs/{}", run.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<script>alert(1)"), "raw markup leaked");
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || page.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
    );
    assert!(
        page.contains("{{ x }}"),
        "template syntax is shown as text, not evaluated"
    );
    assert!(!page.contains("\"'{{"), "quotes are escaped");
}

#[tokio::test]
async fn the_event_stream_has_the_security_headers_and_needs_a_session() {
    let app = spawn_app().await;
    let v = app.login_as("vera", Role::Viewer).await;
    app.add_user("olga", Role::Operator).await;
    let run = app.submitted_run("olga").await;
    let r = app.get(&v, &format!("/runs/{}/events", run.id)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let anon = app
        .client
        .get(app.url(&format!("/runs/{}/events", run.id)))
        .send()
        .await
        .unwrap();
    assert_ne!(anon.status(), 200);
    let missing = app.get(&v, "/runs/no-such-run/events").await;
    assert_eq!(missing.status(), 404);
}

/// Reads SSE frames until one contains `needle`, or fails after `secs`.
pub async fn read_until(resp: reqwest::Response, needle: &str, secs: u64) -> String {
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(secs), async {
        while let Some(chunk) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
            if seen.contains(needle) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(found, "stream never said {needle:?}; got:\n{seen}");
    seen
}

#[tokio::test]
async fn a_watcher_sees_an_approval_made_by_someone_else() {
    let app = spawn_app().await;
    let watcher = app.login_as("olga", Role::Operator).await;
    let appr = app.login_as("alan", Role::Approver).await;
    let run = app.submitted_run("olga").await;
    let shown = app
        .state
        .store
        .run_events(&run.id)
        .await
        .unwrap()
        .last()
        .unwrap()
        .id;
    let stream = app
        .get(&watcher, &format!("/runs/{}/events?after={shown}", run.id))
        .await;
    assert_eq!(stream.status(), 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = app
        .post(
            &appr,
            &format!("/runs/{}/approve", run.id),
            &[("comment", "go")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let seen = read_until(stream, "status running", 5).await;
    assert!(seen.contains("event: update"));
    assert!(seen.contains("hx-swap-oob=\"true\""));
    assert!(seen.contains("id: "));
}

#[tokio::test]
async fn reconnecting_with_last_event_id_replays_what_was_missed() {
    let app = spawn_app().await;
    let watcher = app.login_as("olga", Role::Operator).await;
    app.login_as("alan", Role::Approver).await;
    let run = app.submitted_run("olga").await;
    let events = app.state.store.run_events(&run.id).await.unwrap();
    let last_seen = events.last().unwrap().id;
    // While the watcher is away, the run is approved and a comment is written.
    use lockstep::engine::machine::RunEvent;
    use lockstep::engine::Actor;
    app.state
        .store
        .apply_run_event(
            &run.id,
            &RunEvent::ApproveStart {
                actor: Actor::new("alan", &[Role::Viewer, Role::Operator, Role::Approver]),
                comment: "go".into(),
            },
            app.clock.now_ms(),
        )
        .await
        .unwrap();
    let r = app
        .client
        .get(app.url(&format!("/runs/{}/events", run.id)))
        .header("cookie", format!("__Host-lockstep={}", watcher.cookie))
        .header("last-event-id", last_seen.to_string())
        .send()
        .await
        .unwrap();
    let seen = read_until(r, "status running", 5).await;
    let newest = app
        .state
        .store
        .run_events(&run.id)
        .await
        .unwrap()
        .last()
        .unwrap()
        .id;
    assert!(
        seen.contains(&format!("id: {newest}")),
        "replay carries the newest id: {seen}"
    );
}
