//! `lockstep agent identity|add|list|health` as a person runs them: the real binary, a real
//! database, and a real simulated agent that pins the identity the CLI printed.

use std::path::Path;
use std::process::{Command, Output};

use lockstep_agent::backend::simulated::SimState;
use lockstep_agent::simulated_agent::start_simulated_agent;
use lockstep_protocol::tls::Thumbprint;

fn lockstep(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .arg("--db")
        .arg(data.join("lockstep.db"))
        .env("LOCKSTEP_DATA_DIR", data)
        .output()
        .expect("run lockstep")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_are_registered_listed_and_health_checked_with_the_printed_identity() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();

    let id = lockstep(data, &["agent", "identity"]);
    assert!(id.status.success(), "{}", stderr(&id));
    let orchestrator = Thumbprint::parse(stdout(&id).trim()).unwrap();
    let again = lockstep(data, &["agent", "identity"]);
    assert_eq!(
        stdout(&again),
        stdout(&id),
        "the identity is kept, not regenerated"
    );

    let (agent, _host) = start_simulated_agent(
        &data.join("dc1"),
        "127.0.0.1:0".parse().unwrap(),
        Some(&SimState::data_center_server("DC1", "8.8.6")),
        vec![orchestrator],
        |_| {},
    )
    .await
    .unwrap();

    let bad = lockstep(
        data,
        &[
            "agent",
            "add",
            "--server",
            "DC1",
            "--url",
            &agent.url(),
            "--thumbprint",
            "12ab",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--thumbprint"), "{}", stderr(&bad));
    let http = lockstep(
        data,
        &[
            "agent",
            "add",
            "--server",
            "DC1",
            "--url",
            "http://dc1:9443",
            "--thumbprint",
            &agent.thumbprint.to_string(),
        ],
    );
    assert_eq!(http.status.code(), Some(2));
    assert!(stderr(&http).contains("https://"), "{}", stderr(&http));

    let t = agent.thumbprint.to_string();
    let add = lockstep(
        data,
        &[
            "agent",
            "add",
            "--server",
            "DC1",
            "--url",
            &agent.url(),
            "--thumbprint",
            &t,
        ],
    );
    assert!(add.status.success(), "{}", stderr(&add));
    // DC2's agent is not running: it shows offline and the command says so with exit code 1.
    let add2 = lockstep(
        data,
        &[
            "agent",
            "add",
            "--server",
            "DC2",
            "--url",
            "https://127.0.0.1:9",
            "--thumbprint",
            &t,
        ],
    );
    assert!(add2.status.success(), "{}", stderr(&add2));

    let list = lockstep(data, &["agent", "list"]);
    assert_eq!(
        stdout(&list).lines().next().unwrap(),
        format!("DC1\t{}\t{t}\tunknown\t-", agent.url())
    );

    let health = lockstep(data, &["agent", "health"]);
    assert_eq!(health.status.code(), Some(1), "{}", stdout(&health));
    let out = stdout(&health);
    assert!(
        out.lines()
            .any(|l| l.starts_with("DC1\tonline\t0.1.0\tsimulated")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("DC2\toffline\t")),
        "{out}"
    );
    let list = stdout(&lockstep(data, &["agent", "list"]));
    assert!(list.contains("\tonline\t0.1.0"), "{list}");
    assert!(list.contains("\toffline\t-"), "{list}");
    agent.stop().await.unwrap();
}
