//! Real `lockstep-agent` processes over real mutual TLS: every kind of refusal leaves the journal
//! and the host untouched; replays return the journaled result; a crash mid-action reads as
//! outcome unknown after restart and is never run again.

mod common;

use std::time::Duration;

use common::*;
use lockstep_agent::backend::simulated::SimState;
use lockstep_agent::client::{AgentClient, ClientError, Driven};
use lockstep_agent::tls::{client_config, Identity, Thumbprint};
use lockstep_protocol::{Action, ActionKind, ActionState, ErrorCode, Evidence, ServiceSelector};

const KEY: &str = r"HKLM\SOFTWARE\Wow6432Node\SupportCenter";

fn seed() -> SimState {
    let mut s = SimState::data_center_server("dc1", "8.8.6");
    s.set_registry(KEY, "RegistryConnect", "DRIVER={SQL Server Native Client 11.0};SERVER=SERVER1;DATABASE=Registry;Trusted_Connection=Yes");
    s
}

fn set_action() -> Action {
    Action::RegistrySet {
        key: KEY.into(),
        name: "RegistryConnect".into(),
        value: "SERVER=SERVER2".into(),
    }
}

#[tokio::test]
async fn a_client_with_an_unpinned_certificate_is_refused_in_the_handshake_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = Identity::generate("orchestrator").unwrap();
    let agent = AgentProcess::start(dir.path(), Some(&seed()), &orchestrator);
    let before = agent.journal_bytes();

    let stranger = Identity::generate("orchestrator").unwrap();
    let r = agent
        .client(&stranger)
        .start(&request("run/s1/1", set_action()))
        .await;
    assert!(matches!(r, Err(ClientError::Transport(_))), "{r:?}");
    assert_eq!(agent.journal_bytes(), before, "journal unchanged");
    assert!(agent.sim().history.is_empty(), "nothing ran");
    // The pinned orchestrator still gets through, so the refusal was about the certificate.
    let ok = agent.client(&orchestrator).health().await.unwrap();
    assert_eq!(ok.backend, "simulated");
}

#[tokio::test]
async fn a_server_whose_certificate_is_not_the_pinned_one_is_refused_by_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = Identity::generate("orchestrator").unwrap();
    let agent = AgentProcess::start(dir.path(), Some(&seed()), &orchestrator);
    let before = agent.journal_bytes();
    let wrong_pin = Identity::generate("impostor").unwrap().thumbprint();
    let client = AgentClient::new(
        &agent.url(),
        &orchestrator,
        wrong_pin,
        Duration::from_secs(5),
    )
    .unwrap();
    let r = client.start(&request("run/s1/1", set_action())).await;
    let Err(ClientError::Transport(msg)) = r else {
        panic!("expected a TLS failure, got {r:?}")
    };
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");
    assert_eq!(agent.journal_bytes(), before);
    assert!(agent.sim().history.is_empty());
}

#[tokio::test]
async fn expired_skewed_out_of_allowlist_and_other_version_requests_are_refused_and_journal_unchanged(
) {
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = Identity::generate("orchestrator").unwrap();
    let agent = AgentProcess::start(dir.path(), Some(&seed()), &orchestrator);
    let client = agent.client(&orchestrator);
    let before = agent.journal_bytes();

    let mut expired = request("run/s1/1", set_action());
    expired.issued_at -= 200;
    expired.expires_at = expired.issued_at + 100;
    let Err(ClientError::Refused(e)) = client.start(&expired).await else {
        panic!("expired accepted")
    };
    assert_eq!(e.code, ErrorCode::Expired, "{}", e.message);

    let mut skewed = request("run/s1/2", set_action());
    skewed.issued_at += 3600;
    skewed.expires_at += 3600;
    let Err(ClientError::Refused(e)) = client.start(&skewed).await else {
        panic!("skew accepted")
    };
    assert_eq!(e.code, ErrorCode::ClockSkew);

    for (id, action) in [
        (
            "run/s2/1",
            Action::RegistrySet {
                key: r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run".into(),
                name: "x".into(),
                value: "evil.exe".into(),
            },
        ),
        (
            "run/s3/1",
            Action::FileReplace {
                path: r"C:\Program Files\Connected\DataCenter\..\..\..\Windows\win.ini".into(),
                edit: lockstep_protocol::TextEdit::OsqlToolsFolder {
                    folder: "130".into(),
                },
            },
        ),
        (
            "run/s4/1",
            Action::InstallerRun {
                path: r"D:\Setup.exe".into(),
                sha256: "00".repeat(32),
                timeout_secs: 60,
            },
        ),
        (
            "run/s5/1",
            Action::ScheduledTaskRun {
                task: "cmd /c del".into(),
                timeout_secs: 60,
            },
        ),
    ] {
        let Err(ClientError::Refused(e)) = client.start(&request(id, action)).await else {
            panic!("{id} accepted")
        };
        assert_eq!(e.code, ErrorCode::NotAllowed, "{id}: {}", e.message);
    }

    // A different protocol version, sent raw over the same pinned mutual TLS.
    let raw = reqwest::Client::builder()
        .use_preconfigured_tls(client_config(&orchestrator, vec![agent.thumbprint]).unwrap())
        .build()
        .unwrap();
    let body = serde_json::json!({"protocol": 2, "id": "run/s6/1", "issued_at": now(), "expires_at": now() + 60,
        "action": {"action": "iis_reset"}});
    let resp = raw
        .post(format!("{}/v1/actions", agent.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let e: lockstep_protocol::ErrorResponse = resp.json().await.unwrap();
    assert_eq!(e.code, ErrorCode::UnsupportedVersion);
    assert!(e.message.contains("version 2"), "{}", e.message);

    assert_eq!(
        agent.journal_bytes(),
        before,
        "no refusal touched the journal"
    );
    assert!(
        agent.sim().history.is_empty(),
        "no refusal touched the host"
    );
}

#[tokio::test]
async fn a_replayed_id_returns_the_journaled_result_and_never_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = Identity::generate("orchestrator").unwrap();
    let agent = AgentProcess::start(dir.path(), Some(&seed()), &orchestrator);
    let client = agent.client(&orchestrator);
    let req = request("run/redirect@web1/1", set_action());

    let Driven::Finished(first) = client.drive(&req, Duration::from_secs(10)).await else {
        panic!("not finished")
    };
    let ActionState::Succeeded {
        evidence: Evidence::RegistryChanged { previous, now, .. },
    } = &first.state
    else {
        panic!("{first:?}")
    };
    assert!(previous.as_deref().unwrap().contains("SERVER=SERVER1"));
    assert_eq!(now, "SERVER=SERVER2");
    let journal_after_first = agent.journal_bytes();

    // The same request again, and the same id with the original value restored in between.
    agent_sim_set(&agent, "SERVER=SERVER1");
    let again = client.start(&req).await.unwrap();
    assert!(again.replayed);
    assert_eq!(
        again.state, first.state,
        "the journaled result, not a new run"
    );
    assert_eq!(
        agent.sim().registry_value(KEY, "RegistryConnect").unwrap(),
        "SERVER=SERVER1"
    );
    assert_eq!(agent.sim().executions_of("run/redirect@web1/1"), 1);
    assert_eq!(
        agent.journal_bytes(),
        journal_after_first,
        "replay appends nothing"
    );

    // The same id for a different action is a conflict.
    let mut other = req.clone();
    other.action = Action::IisReset {};
    let Err(ClientError::Refused(e)) = client.start(&other).await else {
        panic!("conflict accepted")
    };
    assert_eq!(e.code, ErrorCode::IdConflict);
}

fn agent_sim_set(agent: &AgentProcess, value: &str) {
    let host = lockstep_agent::backend::simulated::SimulatedHost::open(agent.dir.join("sim.json"))
        .unwrap();
    host.update(|s| s.set_registry(KEY, "RegistryConnect", value))
        .unwrap();
}

#[tokio::test]
async fn an_agent_that_crashes_mid_action_reports_outcome_unknown_after_restart_and_does_not_rerun()
{
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = Identity::generate("orchestrator").unwrap();
    let mut s = seed();
    s.faults.crash.insert(ActionKind::ServicesStop);
    let mut agent = AgentProcess::start(dir.path(), Some(&s), &orchestrator);
    let req = request(
        "run/stop@dc1/1",
        Action::ServicesStop {
            services: ServiceSelector::Connected,
            timeout_secs: 30,
        },
    );
    let driven = agent
        .client(&orchestrator)
        .drive(&req, Duration::from_secs(2))
        .await;
    assert!(matches!(driven, Driven::Unknown { .. }), "{driven:?}");
    assert!(!agent.wait_exit().success(), "the agent aborted");

    // Restart without the fault: the journaled id reads unknown and is not run again.
    lockstep_agent::backend::simulated::SimulatedHost::open(dir.path().join("sim.json"))
        .unwrap()
        .update(|s| s.faults.crash.clear())
        .unwrap();
    let (d, c) = (agent.dir.clone(), agent.config_path.clone());
    drop(agent);
    let agent = AgentProcess::run(&d, &c);
    let client = agent.client(&orchestrator);
    let st = client.status(&req.id, Duration::ZERO, 0).await.unwrap();
    assert!(matches!(st.state, ActionState::Unknown { .. }), "{st:?}");
    let again = client.start(&req).await.unwrap();
    assert!(again.replayed && matches!(again.state, ActionState::Unknown { .. }));
    assert_eq!(agent.sim().executions_of("run/stop@dc1/1"), 0, "never ran");
    let listed = std::process::Command::new(BIN)
        .args(["journal", "--config", agent.config_path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "run/stop@dc1/1\tunknown\n"
    );
    assert!(agent
        .sim()
        .services
        .values()
        .all(|svc| svc.state == lockstep_protocol::evidence::ServiceRunState::Running));
    let _: Thumbprint = agent.thumbprint;
}
