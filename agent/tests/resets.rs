//! A TCP proxy between client and agent resets connections in every phase — start, status,
//! cancel, and the status that carries the result — many times. However the cuts fall, every id
//! is journaled at most once, every journaled id ran exactly once on the host, nothing that was
//! not journaled ran, and every call ended succeeded (or cancelled, when asked) or unknown.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockstep_agent::backend::simulated::{SimState, SimTask};
use lockstep_agent::chaos::ResetProxy;
use lockstep_agent::client::{AgentClient, ClientError, Driven};
use lockstep_agent::core::AgentCore;
use lockstep_agent::simulated_agent::start_simulated_agent;
use lockstep_agent::tls::Identity;
use lockstep_protocol::{Action, ActionId, ActionRequest, ActionState, ServiceSelector};

const KEY: &str = r"HKLM\SOFTWARE\Wow6432Node\Connected\SSWS";

#[derive(Default)]
struct Shared {
    /// The action being driven and whether the next connections carry a cancel.
    id: Option<ActionId>,
    cancel: bool,
    /// Connections since `id` was set.
    ordinal: usize,
}

/// Which phase of a call a new connection carries: the first after a start is the start, a
/// cancel is labelled by the test, and a status connection once the journal holds the final
/// state is the one carrying the result.
fn classify(shared: &Mutex<Shared>, core: &AgentCore) -> String {
    let mut sh = shared.lock().unwrap();
    let ord = sh.ordinal;
    sh.ordinal += 1;
    let finished = sh
        .id
        .as_ref()
        .and_then(|id| core.journal().get(id))
        .is_some_and(|e| e.state.is_terminal());
    let phase = if sh.cancel {
        "cancel"
    } else if ord == 0 {
        "start"
    } else if finished {
        "result"
    } else {
        "status"
    };
    phase.to_string()
}

fn request(id: &str, action: Action) -> ActionRequest {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    ActionRequest::new(ActionId::new(id).unwrap(), action, now, 600)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_in_every_phase_never_run_an_action_twice_or_lose_a_result() {
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = Identity::generate("orchestrator").unwrap();
    let mut seed = SimState::data_center_server("dc1", "8.8.6");
    seed.scheduled_tasks.insert(
        "WeeklyMaint".into(),
        SimTask {
            result: 0,
            runs: 0,
            duration_ms: 400,
            last_run: None,
        },
    );
    let (agent, host) = start_simulated_agent(
        dir.path(),
        "127.0.0.1:0".parse().unwrap(),
        Some(&seed),
        vec![orchestrator.thumbprint()],
        |_| {},
    )
    .await
    .unwrap();
    let shared = Arc::new(Mutex::new(Shared::default()));
    let (sh, core) = (shared.clone(), agent.core.clone());
    let proxy = ResetProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        agent.addr,
        0x10c4_57e9,
        50,
        move || classify(&sh, &core),
    )
    .await
    .unwrap();
    let proxy_addr = proxy.addr;

    let via_proxy = AgentClient::with_pool(
        &format!("https://{proxy_addr}"),
        &orchestrator,
        agent.thumbprint,
        Duration::from_secs(3),
        false,
    )
    .unwrap();
    let direct = AgentClient::new(
        &agent.url(),
        &orchestrator,
        agent.thumbprint,
        Duration::from_secs(5),
    )
    .unwrap();

    let mut outcomes: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut ids = Vec::new();
    for i in 0..60 {
        let id = format!("run/step{i}@dc1/1");
        let cancel = i % 4 == 3;
        let action = if cancel {
            Action::ScheduledTaskRun {
                task: "WeeklyMaint".into(),
                timeout_secs: 60,
            }
        } else if i % 4 == 1 {
            Action::ServicesStop {
                services: ServiceSelector::Named {
                    names: vec!["W3SVC".into()],
                },
                timeout_secs: 30,
            }
        } else if i % 4 == 2 {
            Action::ServicesStart {
                services: ServiceSelector::Named {
                    names: vec!["W3SVC".into()],
                },
                timeout_secs: 30,
            }
        } else {
            Action::RegistrySet {
                key: KEY.into(),
                name: format!("value{i}"),
                value: format!("v{i}"),
            }
        };
        let req = request(&id, action);
        {
            let mut sh = shared.lock().unwrap();
            sh.id = Some(req.id.clone());
            sh.ordinal = 0;
            sh.cancel = false;
        }
        let driven = if cancel {
            // Start, then cancel (through the proxy, which may cut that too), then follow.
            let _ = via_proxy.start(&req).await;
            shared.lock().unwrap().cancel = true;
            let c = via_proxy.cancel(&req.id).await;
            assert!(
                matches!(
                    c,
                    Ok(_) | Err(ClientError::Transport(_)) | Err(ClientError::Refused(_))
                ),
                "{c:?}"
            );
            shared.lock().unwrap().cancel = false;
            via_proxy.drive(&req, Duration::from_secs(8)).await
        } else {
            via_proxy.drive(&req, Duration::from_secs(8)).await
        };
        let label = match &driven {
            Driven::Finished(r) => match r.state {
                ActionState::Succeeded { .. } => "succeeded",
                ActionState::Cancelled { .. } if cancel => "cancelled",
                _ => panic!("{id} ended {r:?}"),
            },
            Driven::Unknown { .. } => "unknown",
            Driven::Refused(e) => panic!("{id} refused: {e:?}"),
        };
        *outcomes.entry(label).or_default() += 1;
        ids.push((req.id.clone(), label));
    }

    // Let anything still running finish, then compare journal, host and what callers were told.
    for (id, _) in &ids {
        let _ = direct.status(id, Duration::from_secs(5), 0).await.unwrap();
    }
    let records = lockstep_agent::journal::read_records(agent.core.journal().path()).unwrap();
    let state = host.read().unwrap();
    for (id, told) in &ids {
        let accepted = records
            .iter()
            .filter(|(r, k)| r == id && *k == "accepted")
            .count();
        let ran = state.executions_of(id.as_str());
        assert!(accepted <= 1, "{id} journaled {accepted} times");
        assert_eq!(ran, accepted, "{id}: ran {ran} times, journaled {accepted}");
        if *told == "succeeded" || *told == "cancelled" {
            assert_eq!(accepted, 1, "{id} was reported {told} but is not journaled");
        }
    }
    let stats = proxy.stats();
    let (connections, cuts) = (stats.connections, stats.resets);
    eprintln!(
        "connections {}, cuts {:?}, outcomes {:?}",
        connections, cuts, outcomes
    );
    for phase in ["start", "status", "cancel", "result"] {
        assert!(
            cuts.get(phase).copied().unwrap_or(0) >= 1,
            "no reset in phase {phase}: {cuts:?}"
        );
    }
    assert!(
        cuts.values().sum::<usize>() >= 40,
        "too few resets to mean anything: {cuts:?}"
    );
    agent.stop().await.unwrap();
}
