//! The allowlist holds even if the orchestrator does not: a real `lockstep-agent` process over
//! real mutual TLS, asked by a pinned (compromised) orchestrator for the tricks of issue #20 —
//! a free-text script edit, a SQL script outside the catalog or edited since it was shipped, a
//! probe of loopback or of a host not configured — refuses each, and nothing on the host
//! changes (the simulated host's files and history, the journal).

mod common;

use std::time::Duration;

use common::*;
use lockstep_agent::backend::simulated::{SimState, SimulatedHost};
use lockstep_agent::client::{ClientError, Driven};
use lockstep_agent::config::{AgentConfig, HashedFile};
use lockstep_agent::tls::{client_config, Identity};
use lockstep_protocol::{Action, ActionState, ErrorCode};
use sha2::Digest;

const DC: &str = r"C:\Program Files\Connected\DataCenter";
const DBMAINT: &str = "-- vendor maintenance\nDBCC CHECKDB;\nEXEC sp_updatestats;\n";

fn seed() -> SimState {
    let mut s = SimState::data_center_server("dc1", "8.8.6");
    s.files.insert(format!(r"{DC}\DBMaint.sql"), DBMAINT.into());
    s.files.insert(
        format!(r"{DC}\Evil.sql"),
        "EXEC xp_cmdshell 'net user x /add';".into(),
    );
    s
}

/// An agent whose catalog lists `DBMaint.sql` with its shipped hash and one probe target.
fn agent(dir: &std::path::Path, me: &Identity) -> AgentProcess {
    let first = AgentProcess::start(dir, Some(&seed()), me);
    let config = first.config_path.clone();
    drop(first);
    let mut cfg = AgentConfig::load(&config).unwrap();
    cfg.allow.sql_scripts.push(HashedFile {
        path: "DBMaint.sql".into(),
        sha256: hex::encode(sha2::Sha256::digest(DBMAINT.as_bytes())),
    });
    cfg.allow
        .probe_targets
        .push("supportcenter.contoso.local:443".into());
    std::fs::write(&config, toml::to_string(&cfg).unwrap()).unwrap();
    AgentProcess::run(dir, &config)
}

fn sql(path: &str) -> Action {
    Action::SqlScript {
        path: path.into(),
        database: Some("Registry".into()),
        timeout_secs: 60,
    }
}

#[tokio::test]
async fn script_sql_and_probe_tricks_are_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate("orchestrator").unwrap();
    let agent = agent(dir.path(), &me);
    let client = agent.client(&me);
    let before = agent.sim();
    let journal = agent.journal_bytes();

    // A free-text edit that would put a `net user … /add` line into DailyMaint.cmd: no such
    // operation exists any more, so the request does not even parse.
    let raw = reqwest::Client::builder()
        .use_preconfigured_tls(client_config(&me, vec![agent.thumbprint]).unwrap())
        .build()
        .unwrap();
    let body = serde_json::json!({"protocol": 1, "id": "evil/edit/1", "issued_at": now(),
        "expires_at": now() + 60, "action": {"action": "file_replace", "path": "DailyMaint.cmd",
        "edit": {"edit": "literal", "find": "@echo off", "replace": "@echo off\r\nnet user evil P@ss /add"}}});
    let resp = raw
        .post(format!("{}/v1/actions", agent.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let e: lockstep_protocol::ErrorResponse = resp.json().await.unwrap();
    assert_eq!(e.code, ErrorCode::Malformed, "{}", e.message);

    // A script outside the catalog, and probes of loopback, the agent itself, a cloud metadata
    // address and a listed host on another port: refused before anything is journaled.
    let own = format!("https://127.0.0.1:{}/v1/health", agent.addr.port());
    for (id, action, why) in [
        ("evil/sql/1", sql("Evil.sql"), "not in the agent's catalog"),
        (
            "evil/probe/1",
            Action::HttpProbe {
                url: own,
                timeout_secs: 5,
            },
            "not in the agent's probe_targets",
        ),
        (
            "evil/probe/2",
            Action::HttpProbe {
                url: "http://localhost:22/".into(),
                timeout_secs: 5,
            },
            "not in the agent's probe_targets",
        ),
        (
            "evil/probe/3",
            Action::HttpProbe {
                url: "http://169.254.169.254/latest/meta-data/".into(),
                timeout_secs: 5,
            },
            "not in the agent's probe_targets",
        ),
        (
            "evil/probe/4",
            Action::HttpProbe {
                url: "https://supportcenter.contoso.local:8443/".into(),
                timeout_secs: 5,
            },
            "not in the agent's probe_targets",
        ),
    ] {
        match client.start(&request(id, action)).await {
            Err(ClientError::Refused(e)) => {
                assert_eq!(e.code, ErrorCode::NotAllowed, "{id}: {}", e.message);
                assert!(e.message.contains(why), "{id}: {}", e.message);
            }
            other => panic!("{id} was not refused: {other:?}"),
        }
    }
    assert_eq!(agent.journal_bytes(), journal, "a refusal journals nothing");
    let after = agent.sim();
    assert_eq!(after.files, before.files, "no file changed");
    assert!(after.history.is_empty(), "nothing ran: {:?}", after.history);

    // The catalogued script runs as shipped…
    let ok = client
        .drive(
            &request("dbmaint/1", sql("DBMaint.sql")),
            Duration::from_secs(10),
        )
        .await;
    assert!(
        matches!(&ok, Driven::Finished(r) if matches!(r.state, ActionState::Succeeded { .. })),
        "{ok:?}"
    );
    // …and not once it has been changed on the host (an `xp_cmdshell` line added).
    SimulatedHost::open(dir.path().join("sim.json"))
        .unwrap()
        .update(|s| {
            s.files.insert(
                format!(r"{DC}\DBMaint.sql"),
                format!("{DBMAINT}EXEC xp_cmdshell 'net user evil P@ss /add';\n"),
            );
        })
        .unwrap();
    let edited = client
        .drive(
            &request("dbmaint/2", sql("DBMaint.sql")),
            Duration::from_secs(10),
        )
        .await;
    let Driven::Finished(r) = &edited else {
        panic!("{edited:?}")
    };
    let ActionState::Failed { message, .. } = &r.state else {
        panic!("an edited script ran: {:?}", r.state)
    };
    assert!(message.contains("not the catalogued"), "{message}");
    let host = agent.sim();
    assert_eq!(host.executions_of("dbmaint/1"), 1);
    assert_eq!(host.executions_of("dbmaint/2"), 0, "the edited script ran");
}
