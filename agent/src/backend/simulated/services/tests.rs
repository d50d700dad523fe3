//! A start or stop shows its pending state for the host's transition time, and takes one write
//! of the state file when there is none.

use std::sync::Arc;

use lockstep_protocol::evidence::ServiceRunState;
use lockstep_protocol::{Action, ActionId, ServiceSelector};

use crate::backend::simulated::{SimState, SimulatedBackend, SimulatedHost};
use crate::backend::{ActionCtx, Backend, Failure};
use crate::config::{AgentConfig, BackendKind};

fn backend(dir: &std::path::Path, transition_ms: u64) -> SimulatedBackend {
    let mut seed = SimState::data_center_server("DC1", "8.8.6");
    seed.service_transition_ms = transition_ms;
    let host = Arc::new(SimulatedHost::create(dir.join("sim.json"), &seed).unwrap());
    let cfg = AgentConfig::new("127.0.0.1:0".parse().unwrap(), dir, BackendKind::Simulated);
    SimulatedBackend::new(host, &cfg)
}

fn named(names: &[&str], start: bool) -> Action {
    let services = ServiceSelector::Named {
        names: names.iter().map(|n| n.to_string()).collect(),
    };
    if start {
        Action::ServicesStart {
            services,
            timeout_secs: 120,
        }
    } else {
        Action::ServicesStop {
            services,
            timeout_secs: 120,
        }
    }
}

fn state_of(b: &SimulatedBackend, service: &str) -> ServiceRunState {
    b.host().read().unwrap().services[service].state
}

#[tokio::test]
async fn a_stop_shows_its_services_pending_for_the_transition_time() {
    let dir = tempfile::tempdir().unwrap();
    let b = Arc::new(backend(dir.path(), 3_600_000));
    let (cancel, rx) = tokio::sync::watch::channel(false);
    let ctx = ActionCtx::new(ActionId::new("stop-1").unwrap(), None, rx);
    let running = {
        let b = b.clone();
        tokio::spawn(async move { b.run(&named(&["W3SVC"], false), &ctx).await })
    };
    // While the action waits out its hour-long transition, the host shows the service stopping
    // (this task only yields, so the action runs up to its wait in between).
    for _ in 0..10_000 {
        if state_of(&b, "W3SVC") == ServiceRunState::StopPending || running.is_finished() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(state_of(&b, "W3SVC"), ServiceRunState::StopPending);
    assert_eq!(b.host().io_counts().writes, 2, "seed, pending");
    cancel.send(true).unwrap();
    let cancelled = running.await.unwrap().unwrap_err();
    assert!(matches!(cancelled, Failure::Cancelled(_)), "{cancelled:?}");
}

#[tokio::test]
async fn without_a_transition_time_a_start_or_stop_writes_the_host_once() {
    let dir = tempfile::tempdir().unwrap();
    let b = backend(dir.path(), 0);
    b.host()
        .update(|s| {
            s.faults
                .services_fail_to_start
                .insert("BackupServer".into());
        })
        .unwrap();
    let (_cancel, rx) = tokio::sync::watch::channel(false);
    let ctx = |id: &str| ActionCtx::new(ActionId::new(id).unwrap(), None, rx.clone());
    let writes = b.host().io_counts().writes;

    b.run(&named(&["W3SVC", "BackupServer"], false), &ctx("stop-1"))
        .await
        .unwrap();
    assert_eq!(b.host().io_counts().writes, writes + 1);
    assert_eq!(state_of(&b, "W3SVC"), ServiceRunState::Stopped);

    // The faults still apply: the service that refuses to start stays stopped, the other runs.
    let refused = b
        .run(&named(&["W3SVC", "BackupServer"], true), &ctx("start-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Failure::Failed { message, .. } if message.contains("BackupServer")),
        "{refused:?}"
    );
    assert_eq!(b.host().io_counts().writes, writes + 2);
    assert_eq!(state_of(&b, "W3SVC"), ServiceRunState::Running);
    assert_eq!(state_of(&b, "BackupServer"), ServiceRunState::Stopped);
    let ids: Vec<String> = b
        .host()
        .read()
        .unwrap()
        .history
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(ids, ["stop-1", "start-1"]);
}
