//! A stalled agent: the real `lockstep-agent` process is frozen with SIGSTOP while an action runs.
//! The orchestrator's side (`AgentClient::drive`) gives up within its deadline plus one request
//! timeout and reports outcome unknown; it does not send the action again. After SIGCONT the
//! late result is reconciled by asking for the status by id, and a re-sent start with the same
//! id is answered from the journal: the task ran exactly once.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use lockstep_agent::backend::simulated::{SimState, SimTask};
use lockstep_agent::client::{AgentClient, Driven};
use lockstep_agent::tls::Identity;
use lockstep_protocol::{Action, ActionState};

/// The pid of the agent started with this configuration file (its command line names the file).
fn pid_of(agent: &AgentProcess) -> String {
    let wanted = agent.config_path.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let entry = entry.expect("proc entry");
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("lockstep-agent") && cmdline.contains(&wanted) {
            return entry.file_name().to_string_lossy().into_owned();
        }
    }
    panic!("no lockstep-agent process runs {wanted}");
}

fn signal(pid: &str, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, pid])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill {sig} {pid}");
}

/// Resumes the agent even when an assertion fails, so no frozen process outlives the test.
struct Frozen(String);

impl Drop for Frozen {
    fn drop(&mut self) {
        signal(&self.0, "-CONT");
    }
}

#[tokio::test]
async fn a_frozen_agent_times_out_as_unknown_and_its_late_result_is_reconciled_not_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate("orchestrator").unwrap();
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
    let agent = AgentProcess::start(dir.path(), Some(&seed), &me);
    let request_timeout = Duration::from_secs(1);
    let client = AgentClient::new(&agent.url(), &me, agent.thumbprint, request_timeout).unwrap();
    let req = request(
        "run/weekly@dc1/1",
        Action::ScheduledTaskRun {
            task: "WeeklyMaint".into(),
            timeout_secs: 120,
        },
    );
    let started = client.start(&req).await.unwrap();
    assert_eq!(started.state, ActionState::Running);

    let frozen = Frozen(pid_of(&agent));
    signal(&frozen.0, "-STOP");
    let deadline = Duration::from_secs(2);
    let began = Instant::now();
    let driven = client.drive(&req, deadline).await;
    let took = began.elapsed();
    let Driven::Unknown { reason } = &driven else {
        panic!("a frozen agent gave an answer: {driven:?}")
    };
    println!("frozen agent: unknown after {took:?} ({reason})");
    // Deadline, plus one request that was already waiting, plus margin for a loaded machine.
    assert!(
        took <= deadline + request_timeout + Duration::from_secs(3),
        "the step hung for {took:?} on a frozen agent"
    );
    drop(frozen); // SIGCONT

    // The late result is found by id, not by running it again.
    let late = client
        .status(&req.id, Duration::from_secs(10), 0)
        .await
        .expect("status after the agent resumed");
    assert!(
        matches!(late.state, ActionState::Succeeded { .. }),
        "{late:?}"
    );
    let journal = agent.journal_bytes();
    let again = client.start(&req).await.unwrap();
    assert!(again.replayed, "a second start is a replay");
    assert_eq!(again.state, late.state);
    assert_eq!(
        agent.journal_bytes(),
        journal,
        "the replay appended nothing"
    );
    assert_eq!(agent.sim().executions_of("run/weekly@dc1/1"), 1);
    assert_eq!(
        agent.sim().scheduled_tasks["WeeklyMaint"].runs,
        1,
        "the task ran once"
    );
}
