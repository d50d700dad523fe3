//! `GET /v1/facts` over real mutual TLS: a real `lockstep-agent` process reports the simulated
//! host as it is now (after a change made behind its back too), only to a pinned orchestrator,
//! without journaling anything; and the orchestrator's client refuses a facts answer larger than
//! `MAX_FACTS_BYTES` from a fake agent (the real server with a backend that reports too much).

mod common;

use std::sync::Arc;

use common::*;
use lockstep_agent::backend::simulated::SimState;
use lockstep_agent::backend::{ActionCtx, Backend, Failure};
use lockstep_agent::client::ClientError;
use lockstep_agent::config::{AgentConfig, BackendKind};
use lockstep_agent::server::{spawn, AgentSetup};
use lockstep_agent::tls::Identity;
use lockstep_protocol::evidence::ServiceRunState;
use lockstep_protocol::facts::MAX_FACTS_BYTES;
use lockstep_protocol::{Action, Component, Evidence, SiteFacts, StartupType};

#[tokio::test]
async fn a_pinned_orchestrator_reads_the_hosts_facts_as_they_are_now_and_nothing_is_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate("orchestrator").unwrap();
    let mut seed = SimState::data_center_server("dc1", "8.8.6");
    seed.components
        .insert(Component::ManagementApi, "8.8.6".into());
    let agent = AgentProcess::start(dir.path(), Some(&seed), &me);
    let client = agent.client(&me);

    let f = client.facts().await.unwrap();
    assert_eq!(f.hostname, "dc1");
    assert_eq!(f.version_of(Component::DataCenter), Some("8.8.6"));
    assert_eq!(
        f.service("BackupServer").unwrap().state,
        ServiceRunState::Running
    );
    assert!(f.services_missing.is_empty());

    // The host changes (a person disables DCAlerter, Setup upgrades the Data Center only): the
    // next facts say so.
    lockstep_agent::backend::simulated::SimulatedHost::open(dir.path().join("sim.json"))
        .unwrap()
        .update(|s| {
            s.services.get_mut("DCAlerter").unwrap().startup = StartupType::Disabled;
            s.services.remove("dctomcat");
            s.product_version = Some("8.11".into());
        })
        .unwrap();
    let f = client.facts().await.unwrap();
    assert_eq!(
        f.service("DCAlerter").unwrap().startup,
        Some(StartupType::Disabled)
    );
    assert_eq!(f.services_missing, vec!["dctomcat".to_string()]);
    assert_eq!(f.version_of(Component::DataCenter), Some("8.11"));
    assert_eq!(f.version_of(Component::ManagementApi), Some("8.8.6"));
    assert!(
        agent.journal_bytes().is_empty(),
        "facts are never journaled"
    );

    // An orchestrator the agent has not pinned gets nothing.
    let stranger = Identity::generate("orchestrator").unwrap();
    let r = agent.client(&stranger).facts().await;
    assert!(matches!(r, Err(ClientError::Transport(_))), "{r:?}");
}

/// A backend whose facts are larger than an orchestrator reads.
struct Oversized;

#[async_trait::async_trait]
impl Backend for Oversized {
    fn name(&self) -> &'static str {
        "simulated"
    }
    async fn run(&self, _: &Action, _: &ActionCtx) -> Result<Evidence, Failure> {
        Err(Failure::msg("this fake agent runs nothing"))
    }
    async fn facts(&self) -> SiteFacts {
        let mut f = SiteFacts::empty("huge", 0);
        f.errors = vec!["x".repeat(1000); MAX_FACTS_BYTES / 1000 + 10];
        f
    }
}

#[tokio::test]
async fn the_client_refuses_a_facts_answer_larger_than_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate("orchestrator").unwrap();
    let identity = Identity::generate("agent").unwrap();
    let config = AgentConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path(),
        BackendKind::Simulated,
    );
    let running = spawn(AgentSetup {
        config,
        identity,
        client_pins: vec![me.thumbprint()],
        backend: Arc::new(Oversized),
    })
    .await
    .unwrap();
    let client = lockstep_agent::client::AgentClient::new(
        &running.url(),
        &me,
        running.thumbprint,
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    match client.facts().await {
        Err(ClientError::BadAnswer(m)) => {
            assert!(
                m.contains(&format!("larger than {MAX_FACTS_BYTES} bytes")),
                "{m}"
            )
        }
        other => panic!("expected a refusal of the oversize answer, got {other:?}"),
    }
    // The same agent's health still answers: only the oversize document was refused.
    assert!(!client.health().await.unwrap().hostname.is_empty());
    running.stop().await.unwrap();
}
