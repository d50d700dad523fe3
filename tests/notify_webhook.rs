//! Notifications through real webhooks on loopback: an axum receiver that verifies every
//! signature with the shared secret and refuses replays, a receiver that fails a few times, and
//! one that always fails while the run carries on. Runs are driven by the real engine on a real
//! database; deliveries are read back from `notification_attempts`.

mod engine_common;

use std::time::Duration;

use axum::http::HeaderMap;
use engine_common::Harness;
use lockstep::engine::machine::RunStatus;
use lockstep::engine::testkit::noop_plan;
use lockstep::notify::{
    self, DeliveryAttempt, Format, NotifyConfig, NotifyKind, ReplayGuard, Webhook,
};
use lockstep_testsupport::webhook::{self, Behaviour, Check, Shared};

const SECRET: &str = "correct horse battery staple";

/// What the documentation tells a receiver to do: verify the signature with the shared secret,
/// then refuse a delivery id it has already accepted.
fn signed_and_new() -> Check {
    let mut guard = ReplayGuard::default();
    Box::new(move |headers: &HeaderMap, body: &[u8], now: i64| {
        notify::verify_signature(SECRET.as_bytes(), headers, body, now)
            .and_then(|id| guard.check(&id, now))
            .map_err(|e| e.to_string())
    })
}

async fn start_receiver(behaviour: Behaviour) -> (Shared, reqwest::Url) {
    webhook::start("/hook", behaviour, signed_and_new).await
}

fn config(url: reqwest::Url, events: &[NotifyKind], max_attempts: u32) -> NotifyConfig {
    NotifyConfig {
        max_attempts,
        backoff_initial_ms: 20,
        backoff_max_ms: 80,
        timeout_secs: 5,
        webhooks: vec![Webhook {
            url,
            format: Format::Json,
            secret: Some(SECRET.into()),
            events: events.to_vec(),
        }],
        ..NotifyConfig::default()
    }
}

/// Waits (real time, generous deadline) until the run's recorded attempts satisfy `done`.
async fn attempts_until(
    h: &Harness,
    run_id: &str,
    done: impl Fn(&[DeliveryAttempt]) -> bool,
) -> Vec<DeliveryAttempt> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rows = notify::deliveries(h.store.pool(), run_id).await.unwrap();
        if done(&rows) {
            return rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out; attempts so far: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_run_and_its_start_gate_reach_a_receiver_that_verifies_the_signature() {
    let (receiver, url) = start_receiver(Behaviour::default()).await;
    let mut h = Harness::new().await;
    let _task = notify::spawn(h.store.clone(), config(url, &NotifyKind::ALL, 3))
        .await
        .unwrap();
    h.start();
    let run = h.started_run(noop_plan(2, true, &["dc1"])).await;
    h.run_reaches(&run.id, RunStatus::Succeeded).await;
    let rows = attempts_until(&h, &run.id, |rows| {
        rows.iter().filter(|a| a.outcome == "delivered").count() == 2
    })
    .await;
    h.stop().await;

    let r = receiver.lock().unwrap();
    assert!(r.refused.is_empty(), "{:?}", r.refused);
    let mut events: Vec<&str> = r
        .accepted
        .iter()
        .map(|b| b["event"].as_str().unwrap())
        .collect();
    events.sort();
    assert_eq!(events, ["gate_waiting", "run_finished"]);
    let finished = r
        .accepted
        .iter()
        .find(|b| b["event"] == "run_finished")
        .unwrap();
    assert_eq!(finished["run_id"], run.id.as_str());
    assert_eq!(finished["status"], "succeeded");
    assert!(rows
        .iter()
        .all(|a| a.attempt == 1 && a.target.starts_with("http://127.0.0.1:")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_twice_gets_the_notification_once_on_the_third_attempt() {
    let (receiver, url) = start_receiver(Behaviour {
        fail_first: 2,
        ..Behaviour::default()
    })
    .await;
    let mut h = Harness::new().await;
    let _task = notify::spawn(h.store.clone(), config(url, &[NotifyKind::RunFinished], 5))
        .await
        .unwrap();
    h.start();
    let run = h.started_run(noop_plan(1, true, &["dc1"])).await;
    h.run_reaches(&run.id, RunStatus::Succeeded).await;
    let rows = attempts_until(&h, &run.id, |rows| {
        rows.iter().any(|a| a.outcome == "delivered")
    })
    .await;
    h.stop().await;

    let outcomes: Vec<(u32, &str, Option<u16>)> = rows
        .iter()
        .map(|a| (a.attempt, a.outcome.as_str(), a.http_status))
        .collect();
    assert_eq!(
        outcomes,
        [
            (1, "failed", Some(503)),
            (2, "failed", Some(503)),
            (3, "delivered", None)
        ]
    );
    assert!(rows.iter().all(|a| a.delivery_id == rows[0].delivery_id));
    let r = receiver.lock().unwrap();
    assert_eq!((r.seen, r.accepted.len()), (3, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_always_fails_never_holds_up_the_run_and_every_attempt_is_recorded() {
    let (receiver, url) = start_receiver(Behaviour {
        always_fail: true,
        ..Behaviour::default()
    })
    .await;
    let mut h = Harness::new().await;
    let mut cfg = config(url, &NotifyKind::ALL, 4);
    // Long enough that the run ends while the first delivery is still being retried.
    cfg.backoff_initial_ms = 1_500;
    cfg.backoff_max_ms = 1_500;
    let _task = notify::spawn(h.store.clone(), cfg).await.unwrap();
    h.start();
    let run = h.started_run(noop_plan(3, true, &["dc1"])).await;
    h.run_reaches(&run.id, RunStatus::Succeeded).await;
    let before_giving_up = notify::deliveries(h.store.pool(), &run.id).await.unwrap();
    assert!(
        !before_giving_up.iter().any(|a| a.outcome == "gave_up"),
        "the run finished only after deliveries gave up: {before_giving_up:#?}"
    );
    let rows = attempts_until(&h, &run.id, |rows| {
        rows.iter().filter(|a| a.outcome == "gave_up").count() == 2
    })
    .await;
    h.stop().await;

    assert_eq!(
        rows.len(),
        8,
        "4 attempts for each of 2 notifications: {rows:#?}"
    );
    for a in rows.iter().filter(|a| a.outcome == "gave_up") {
        assert_eq!((a.attempt, a.http_status), (4, Some(503)));
    }
    assert_eq!(receiver.lock().unwrap().seen, 8);
}
