//! Change tickets reported back: a change-management system subscribed to `run_status` hears
//! about every status a run enters, each message signed and naming the run's change ticket and
//! its link, so the system can update the ticket. The receiver verifies every signature and
//! refuses replays; the run is driven by the real engine on a real database.

mod engine_common;

use std::time::Duration;

use axum::http::HeaderMap;
use engine_common::Harness;
use lockstep::engine::machine::RunStatus;
use lockstep::engine::testkit::noop_plan;
use lockstep::notify::{self, Format, NotifyConfig, NotifyKind, ReplayGuard, Webhook};
use lockstep_testsupport::webhook::{self, Behaviour, Check};

const SECRET: &str = "itsm shared secret for lockstep";

/// The change system checks every message as the documentation says: the signature with the
/// shared secret, then a delivery id it has not accepted before.
fn signed_and_new() -> Check {
    let mut guard = ReplayGuard::default();
    Box::new(move |headers: &HeaderMap, body: &[u8], now: i64| {
        notify::verify_signature(SECRET.as_bytes(), headers, body, now)
            .and_then(|id| guard.check(&id, now))
            .map_err(|e| e.to_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_a_run_enters_is_reported_with_its_change_ticket_and_link() {
    let (shared, url) =
        webhook::start("/itsm/lockstep", Behaviour::default(), signed_and_new).await;

    let config = NotifyConfig {
        backoff_initial_ms: 20,
        backoff_max_ms: 80,
        webhooks: vec![Webhook {
            url,
            format: Format::Json,
            secret: Some(SECRET.into()),
            events: vec![NotifyKind::RunStatus],
        }],
        ticket_url: Some("https://itsm.corp.example/change/{ticket}".into()),
        ..NotifyConfig::default()
    };
    let mut h = Harness::new().await;
    let _task = notify::spawn(h.store.clone(), config).await.unwrap();
    h.start();
    let run = h.started_run(noop_plan(2, true, &["dc1"])).await;
    h.run_reaches(&run.id, RunStatus::Succeeded).await;

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut updates = loop {
        let got = shared.lock().unwrap().accepted.clone();
        if got.iter().any(|u| u["status"] == "succeeded") && got.len() >= 3 {
            break got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "updates so far: {got:#?}; attempts: {:#?}",
            notify::deliveries(h.store.pool(), &run.id).await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    h.stop().await;
    assert!(shared.lock().unwrap().refused.is_empty());

    // Deliveries run side by side; the audit event id gives the order the run went through.
    updates.sort_by_key(|u| u["audit_event_id"].as_i64().unwrap());
    let statuses: Vec<&str> = updates
        .iter()
        .map(|u| u["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["awaiting_start_approval", "running", "succeeded"],
        "{updates:#?}"
    );
    for u in &updates {
        assert_eq!(u["event"], "run_status");
        assert_eq!(u["run_id"], run.id.as_str());
        assert_eq!(u["change_ticket"], "CHG-42");
        assert_eq!(
            u["change_ticket_url"],
            "https://itsm.corp.example/change/CHG-42"
        );
        assert!(
            u["summary"].as_str().unwrap().contains("(change CHG-42)"),
            "{u}"
        );
    }
}

#[test]
fn a_ticket_link_template_without_the_placeholder_is_refused() {
    let err = lockstep::config::Settings::load(
        None,
        &|k| (k == "LOCKSTEP_NOTIFY_TICKET_URL").then(|| "https://itsm.corp.example/change".into()),
        &lockstep::config::Overrides::default(),
    )
    .err()
    .expect("refused");
    assert_eq!(err.setting, "notify.ticket_url");
    let ok = lockstep::config::Settings::load(
        None,
        &|k| {
            (k == "LOCKSTEP_NOTIFY_TICKET_URL")
                .then(|| "https://itsm.corp.example/c/{ticket}".into())
        },
        &lockstep::config::Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .notify;
    assert_eq!(
        ok.ticket_link("CHG 7/8").as_deref(),
        Some("https://itsm.corp.example/c/CHG%207%2F8")
    );
}
