//! Certificate rotation while a step runs: the orchestrator gets a new certificate, the operator
//! pins it on the agent (`lockstep-agent trust NEW`, which keeps the old pin beside it), and the
//! orchestrator, now presenting the new certificate, follows the action that was started under
//! the old one to its end. No step fails, nothing runs twice, and the old certificate keeps
//! working until it is rotated out.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use lockstep_agent::backend::simulated::{SimState, SimTask};
use lockstep_agent::client::AgentClient;
use lockstep_agent::tls::Identity;
use lockstep_protocol::{Action, ActionState};

#[tokio::test]
async fn a_second_pin_added_while_an_action_runs_lets_the_new_certificate_finish_it() {
    let dir = tempfile::tempdir().unwrap();
    let old = Identity::generate("orchestrator").unwrap();
    let new = Identity::generate("orchestrator").unwrap();
    let mut seed = SimState::data_center_server("dc1", "8.8.6");
    seed.scheduled_tasks.insert(
        "WeeklyMaint".into(),
        SimTask {
            result: 0,
            runs: 0,
            duration_ms: 1_500,
            last_run: None,
        },
    );
    let agent = AgentProcess::start(dir.path(), Some(&seed), &old);
    let timeout = Duration::from_secs(5);
    let old_client = AgentClient::new(&agent.url(), &old, agent.thumbprint, timeout).unwrap();
    let req = request(
        "run/weekly@dc1/1",
        Action::ScheduledTaskRun {
            task: "WeeklyMaint".into(),
            timeout_secs: 120,
        },
    );
    let started = old_client.start(&req).await.unwrap();
    assert_eq!(started.state, ActionState::Running);

    let state_dir = dir.path().join("state");
    let out = Command::new(BIN)
        .args(["trust", &new.thumbprint().to_string(), "--state-dir"])
        .arg(&state_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let new_client = AgentClient::new(&agent.url(), &new, agent.thumbprint, timeout).unwrap();
    let end = new_client
        .status(&req.id, Duration::from_secs(10), 0)
        .await
        .expect("the new certificate is accepted while the action runs");
    assert!(
        matches!(end.state, ActionState::Succeeded { .. }),
        "{end:?}"
    );
    old_client
        .health()
        .await
        .expect("the old certificate still works during rotation");
    assert_eq!(agent.sim().executions_of("run/weekly@dc1/1"), 1);
}

/// Rotating the old certificate out (its pin removed from `trusted.txt`) closes the connections
/// it has open at once: a kept-alive connection does not outlive the trust it was opened under.
#[tokio::test]
async fn removing_a_pin_closes_the_connections_open_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let old = Identity::generate("orchestrator").unwrap();
    let new = Identity::generate("orchestrator").unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        Some(&SimState::data_center_server("dc1", "8.8.6")),
        &old,
    );
    let timeout = Duration::from_secs(5);
    // Pooled: the second request rides on the first one's connection.
    let old_client = AgentClient::new(&agent.url(), &old, agent.thumbprint, timeout).unwrap();
    old_client.health().await.unwrap();
    old_client.health().await.unwrap();

    std::fs::write(
        dir.path().join("state").join("trusted.txt"),
        format!("{}\n", new.thumbprint()),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let r = old_client.health().await;
    assert!(r.is_err(), "the removed pin still works: {r:?}");
    let new_client = AgentClient::new(&agent.url(), &new, agent.thumbprint, timeout).unwrap();
    new_client.health().await.expect("the remaining pin works");
}
