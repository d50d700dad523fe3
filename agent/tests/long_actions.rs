//! Long actions are accepted at once and polled with their log lines; waiting phases can be
//! cancelled, writes cannot; injected faults (fail, hang, wrong version after Setup) show up as
//! the orchestrator would see them on a real server.

use std::time::Duration;

use lockstep_agent::backend::simulated::{SimInstaller, SimState, SimTask};
use lockstep_agent::client::{AgentClient, ClientError, Driven};
use lockstep_agent::config::InstallerEntry;
use lockstep_agent::simulated_agent::start_simulated_agent;
use lockstep_agent::tls::Identity;
use lockstep_protocol::{
    Action, ActionId, ActionKind, ActionRequest, ActionState, ErrorCode, Evidence,
};

fn request(id: &str, action: Action) -> ActionRequest {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    ActionRequest::new(ActionId::new(id).unwrap(), action, now, 300)
}

const SETUP: &str = r"D:\Media\DataCenterSetup.exe";

async fn agent(
    seed: SimState,
) -> (
    tempfile::TempDir,
    lockstep_agent::RunningAgent,
    std::sync::Arc<lockstep_agent::backend::simulated::SimulatedHost>,
    AgentClient,
) {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate("orchestrator").unwrap();
    let (agent, host) = start_simulated_agent(
        dir.path(),
        "127.0.0.1:0".parse().unwrap(),
        Some(&seed),
        vec![me.thumbprint()],
        |c| {
            c.allow.installers.push(InstallerEntry {
                path: SETUP.into(),
                sha256: "ab".repeat(32),
                args: vec!["/quiet".into()],
            });
        },
    )
    .await
    .unwrap();
    let client =
        AgentClient::new(&agent.url(), &me, agent.thumbprint, Duration::from_secs(5)).unwrap();
    (dir, agent, host, client)
}

fn seed() -> SimState {
    let mut s = SimState::data_center_server("dc1", "8.8.6");
    s.scheduled_tasks.insert(
        "WeeklyMaint".into(),
        SimTask {
            result: 0,
            runs: 0,
            duration_ms: 60_000,
            last_run: None,
        },
    );
    s.installers.insert(
        SETUP.into(),
        SimInstaller {
            sha256: "ab".repeat(32),
            installs_version: "8.11".into(),
            exit_code: 0,
            duration_ms: 10,
        },
    );
    s
}

#[tokio::test]
async fn a_long_task_is_accepted_at_once_polled_with_its_log_and_cancelled_in_its_wait() {
    let (_d, agent, host, client) = agent(seed()).await;
    let req = request(
        "run/weekly@dc1/1",
        Action::ScheduledTaskRun {
            task: "WeeklyMaint".into(),
            timeout_secs: 600,
        },
    );
    let started = client.start(&req).await.unwrap();
    assert_eq!(started.state, ActionState::Running, "accepted at once");
    assert!(started.cancellable);
    let polled = client
        .status(&req.id, Duration::from_millis(300), 0)
        .await
        .unwrap();
    assert_eq!(polled.state, ActionState::Running);
    let lines: Vec<&str> = polled.log.iter().map(|l| l.text.as_str()).collect();
    assert!(lines.contains(&"task WeeklyMaint running"), "{lines:?}");
    // Log lines already seen are not sent again.
    let later = client
        .status(&req.id, Duration::ZERO, polled.log.len())
        .await
        .unwrap();
    assert!(later.log.is_empty() && later.log_from == polled.log.len());

    client.cancel(&req.id).await.unwrap();
    let end = client
        .status(&req.id, Duration::from_secs(5), 0)
        .await
        .unwrap();
    assert!(
        matches!(end.state, ActionState::Cancelled { .. }),
        "{end:?}"
    );
    assert_eq!(
        host.read().unwrap().scheduled_tasks["WeeklyMaint"].runs,
        0,
        "the run never completed"
    );
    // A finished action cannot be cancelled again.
    let Err(ClientError::Refused(e)) = client.cancel(&req.id).await else {
        panic!("cancelled twice")
    };
    assert_eq!(e.code, ErrorCode::NotCancellable);
    agent.stop().await.unwrap();
}

#[tokio::test]
async fn a_registry_write_cannot_be_cancelled_and_unknown_ids_are_not_found() {
    let mut s = seed();
    s.faults.delay_ms.insert(ActionKind::RegistrySet, 500);
    let (_d, agent, host, client) = agent(s).await;
    let req = request(
        "run/set@dc1/1",
        Action::RegistrySet {
            key: r"HKLM\SOFTWARE\Wow6432Node\Connected\SSWS".into(),
            name: "com.connected.ssw.validateSSL".into(),
            value: "false".into(),
        },
    );
    client.start(&req).await.unwrap();
    let Err(ClientError::Refused(e)) = client.cancel(&req.id).await else {
        panic!("write cancelled")
    };
    assert_eq!(e.code, ErrorCode::NotCancellable);
    assert!(e.message.contains("registry_set"), "{}", e.message);
    let Driven::Finished(done) = client.drive(&req, Duration::from_secs(5)).await else {
        panic!()
    };
    assert!(matches!(done.state, ActionState::Succeeded { .. }));
    assert_eq!(
        host.read()
            .unwrap()
            .registry_value(
                r"HKLM\SOFTWARE\Wow6432Node\Connected\SSWS",
                "com.connected.ssw.validateSSL"
            )
            .unwrap(),
        "false"
    );
    let none = client
        .status(&ActionId::new("never/sent/1").unwrap(), Duration::ZERO, 0)
        .await
        .unwrap();
    assert_eq!(none.state, ActionState::NotFound);
    let Err(ClientError::Refused(e)) = client.cancel(&ActionId::new("never/sent/1").unwrap()).await
    else {
        panic!()
    };
    assert_eq!(e.code, ErrorCode::NotFound);
    agent.stop().await.unwrap();
}

#[tokio::test]
async fn injected_failures_hangs_and_a_wrong_version_after_setup_are_reported_as_such() {
    let mut s = seed();
    s.faults
        .fail
        .insert(ActionKind::IisReset, "W3SVC did not restart".into());
    s.faults.hang.insert(ActionKind::ServicesStart);
    s.faults.version_after_setup = Some("8.8.6".into());
    let (_d, agent, host, client) = agent(s).await;

    let Driven::Finished(r) = client
        .drive(
            &request("run/iis@dc1/1", Action::IisReset {}),
            Duration::from_secs(5),
        )
        .await
    else {
        panic!()
    };
    let ActionState::Failed { message, .. } = r.state else {
        panic!("{r:?}")
    };
    assert!(message.contains("W3SVC did not restart"), "{message}");

    let hang = request(
        "run/start@dc1/1",
        Action::ServicesStart {
            services: lockstep_protocol::ServiceSelector::Connected,
            timeout_secs: 60,
        },
    );
    let driven = client.drive(&hang, Duration::from_millis(600)).await;
    assert!(
        matches!(driven, Driven::Unknown { .. }),
        "a hang is not a success: {driven:?}"
    );
    client.cancel(&hang.id).await.unwrap();
    let end = client
        .status(&hang.id, Duration::from_secs(5), 0)
        .await
        .unwrap();
    assert!(
        matches!(end.state, ActionState::Cancelled { .. }),
        "{end:?}"
    );

    let setup = request(
        "run/setup@dc1/1",
        Action::InstallerRun {
            path: SETUP.into(),
            sha256: "AB".repeat(32),
            timeout_secs: 600,
        },
    );
    let Driven::Finished(r) = client.drive(&setup, Duration::from_secs(5)).await else {
        panic!()
    };
    let ActionState::Succeeded {
        evidence: Evidence::Installed {
            product_version, ..
        },
    } = r.state
    else {
        panic!("{r:?}")
    };
    assert_eq!(
        product_version.as_deref(),
        Some("8.8.6"),
        "the fault left the old version"
    );
    let Driven::Finished(v) = client
        .drive(
            &request("run/ver@dc1/1", Action::ProductVersion { component: None }),
            Duration::from_secs(5),
        )
        .await
    else {
        panic!()
    };
    assert_eq!(
        v.state,
        ActionState::Succeeded {
            evidence: Evidence::ProductVersion {
                version: Some("8.8.6".into()),
                component: None,
            }
        }
    );
    assert_eq!(host.read().unwrap().executions_of("run/setup@dc1/1"), 1);

    // An installer whose file on the host no longer hashes to the allowlisted value is not run.
    host.update(|s| s.installers.get_mut(SETUP).unwrap().sha256 = "cd".repeat(32))
        .unwrap();
    let again = request(
        "run/setup@dc1/2",
        Action::InstallerRun {
            path: SETUP.into(),
            sha256: "ab".repeat(32),
            timeout_secs: 600,
        },
    );
    let Driven::Finished(r) = client.drive(&again, Duration::from_secs(5)).await else {
        panic!()
    };
    let ActionState::Failed { message, .. } = r.state else {
        panic!("{r:?}")
    };
    assert!(message.contains("not run"), "{message}");
    assert_eq!(host.read().unwrap().executions_of("run/setup@dc1/2"), 0);
    agent.stop().await.unwrap();
}

#[tokio::test]
async fn a_quick_action_answers_its_result_on_the_start_and_a_replay_answers_at_once() {
    let (_d, _agent, _host, client) = agent(seed()).await;
    let req = request(
        "run/version@dc1/1",
        Action::ProductVersion { component: None },
    );
    let started = client.start(&req).await.unwrap();
    let ActionState::Succeeded { evidence } = &started.state else {
        panic!("a read of the product version was not finished on the start's answer: {started:?}")
    };
    assert!(
        matches!(evidence, Evidence::ProductVersion { .. }),
        "{evidence:?}"
    );
    assert!(!started.replayed);
    let again = client.start(&req).await.unwrap();
    assert!(again.replayed, "the same id is a replay, not a second run");
    assert_eq!(again.state, started.state);
}
