//! The agent executor against several simulated agents on 127.0.0.x, over real mutual TLS:
//! a real plan (the SQL Server upgrade of the mirrored example) walked step by step, with the
//! agents found through the registry; then the edges — replays, undo, ambiguous registry
//! spellings, an agent that is offline.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use lockstep::engine::executor::{ActionStatus, Dispatch, Executor, IdempotencyKey, Outcome};
use lockstep::executors::agent::{registry, AgentEndpoint, AgentExecutor};
use lockstep::knowledge::inventory::Inventory;
use lockstep::knowledge::operation::{Operation, RedirectValue};
use lockstep::knowledge::plan::{PlannedStep, StepKind};
use lockstep::knowledge::runbook::Catalog;
use lockstep_agent::backend::simulated::{SimState, SimulatedHost};
use lockstep_agent::simulated_agent::start_simulated_agent;
use lockstep_agent::RunningAgent;
use lockstep_protocol::tls::Identity;

const SC_KEY: &str = r"HKLM\SOFTWARE\Wow6432Node\Connected\SupportCenter";
const OUTFLOW_KEY: &str = r"HKLM\SOFTWARE\Wow6432Node\Outflow";
const CONNECT: &str =
    "DRIVER={SQL Server Native Client 11.0};SERVER=DC1;DATABASE=Registry;Trusted_Connection=Yes";

fn seed(name: &str) -> SimState {
    let mut s = SimState::data_center_server(name, "8.8.6");
    s.sql_server = Some("2014 SP2".into());
    match name {
        "DC1" => {
            s.backup_sessions = 12;
            s.sessions_drain_per_query = 4;
        }
        // The guide spells this key three ways; this host uses the chapter-3 one.
        "WEB1" => s.set_registry(SC_KEY, "RegistryConnect", CONNECT),
        "DT1" => s.set_registry(OUTFLOW_KEY, "DB_PreferedRegistry", "DC1"),
        _ => {}
    }
    s
}

struct Estate {
    _dir: tempfile::TempDir,
    agents: BTreeMap<String, (RunningAgent, Arc<SimulatedHost>)>,
    executor: AgentExecutor,
}

/// One simulated agent per inventory server on its own loopback address, registered in a real
/// SQLite registry, and an executor built from that registry.
async fn estate(inventory: &Inventory) -> Estate {
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = Identity::generate("lockstep-orchestrator").unwrap();
    let store = lockstep::engine::Store::open(&dir.path().join("lockstep.db"))
        .await
        .unwrap();
    let pool = store.writer().clone();
    let mut agents = BTreeMap::new();
    for (i, server) in inventory.servers.iter().enumerate() {
        let addr = format!("127.0.0.{}:0", i + 2).parse().unwrap();
        let (agent, host) = start_simulated_agent(
            &dir.path().join(&server.name),
            addr,
            Some(&seed(&server.name)),
            vec![orchestrator.thumbprint()],
            |_| {},
        )
        .await
        .unwrap();
        registry::add(&pool, &server.name, &agent.url(), agent.thumbprint, 0)
            .await
            .unwrap();
        agents.insert(server.name.clone(), (agent, host));
    }
    let executor = AgentExecutor::from_registry(&pool, orchestrator)
        .await
        .unwrap();
    Estate {
        _dir: dir,
        agents,
        executor,
    }
}

fn dispatch(step: &str, host: &str, operation: Operation) -> Dispatch {
    Dispatch {
        key: IdempotencyKey {
            run_id: "run1".into(),
            step_id: step.into(),
            attempt: 1,
        },
        host: Some(host.into()),
        operation,
        timeout_secs: 30,
    }
}

fn step_dispatch(s: &PlannedStep, op: &Operation) -> Dispatch {
    dispatch(&s.id, s.host.as_deref().unwrap_or("none"), op.clone())
}

/// What people and the other executors do in this walk-through: the SQL Server Setup wizard
/// leaves SQL Server 2016 installed; SQL and approval steps are not the agent's.
fn perform_manual(step: &PlannedStep, estate: &Estate) {
    if step.id.contains("upgrade-sql-registry") {
        let host = step.host.as_deref().unwrap();
        estate.agents[host]
            .1
            .update(|s| s.sql_server = Some("2016".into()))
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_plan_runs_step_by_step_against_several_simulated_agents() {
    let inventory = Inventory::load(Path::new("examples/mirrored.toml")).unwrap();
    let catalog = Catalog::builtin().unwrap();
    let params = BTreeMap::from([("target".to_string(), "2016".to_string())]);
    let plan = lockstep::knowledge::expand::expand(
        catalog.get("upgrade-sql-server").unwrap(),
        &inventory,
        &params,
    )
    .unwrap();
    let estate = estate(&inventory).await;
    let addrs: Vec<String> = estate
        .agents
        .values()
        .map(|(a, _)| a.addr.ip().to_string())
        .collect();
    let distinct: std::collections::BTreeSet<&String> = addrs.iter().collect();
    assert_eq!(
        distinct.len(),
        4,
        "one loopback address per agent: {addrs:?}"
    );
    assert!(addrs.iter().all(|a| a.starts_with("127.0.0.")));

    let mut ran = 0;
    for step in &plan.steps {
        match step.kind {
            StepKind::Agent => {
                let out = estate
                    .executor
                    .execute(&step_dispatch(step, &step.operation))
                    .await;
                assert!(
                    matches!(out, Outcome::Succeeded { .. }),
                    "{}: {out:?}",
                    step.id
                );
                ran += 1;
            }
            StepKind::Wait => {
                // The engine polls a wait step with `check` until it holds.
                let d = step_dispatch(step, &step.operation);
                let mut polls = 0;
                while !matches!(estate.executor.check(&d).await, Outcome::Succeeded { .. }) {
                    polls += 1;
                    assert!(polls < 10, "{} never held", step.id);
                }
                ran += 1;
            }
            StepKind::Manual => perform_manual(step, &estate),
            _ => {}
        }
        if let (Some(post), Some(_)) = (&step.postcondition, &step.host) {
            let out = estate.executor.check(&step_dispatch(step, post)).await;
            assert!(
                matches!(out, Outcome::Succeeded { .. }),
                "post-condition of {}: {out:?}",
                step.id
            );
        }
    }
    assert!(ran >= 20, "only {ran} agent steps ran");

    // The redirect went out and came back, on the one key spelling the host has.
    let web = estate.agents["WEB1"].1.read().unwrap();
    assert_eq!(
        web.registry_value(SC_KEY, "RegistryConnect").unwrap(),
        CONNECT
    );
    assert_eq!(web.iis_resets, 2);
    assert_eq!(
        estate.agents["DT1"]
            .1
            .read()
            .unwrap()
            .registry_value(OUTFLOW_KEY, "DB_PreferedRegistry")
            .unwrap(),
        "DC1"
    );
    // Maintenance scripts now call SQL Server 2016's OSQL, with backups of the originals.
    for dc in ["DC1", "DC2"] {
        let s = estate.agents[dc].1.read().unwrap();
        let daily = s
            .files
            .iter()
            .find(|(k, _)| k.ends_with(r"\DailyMaint.cmd"))
            .unwrap()
            .1;
        assert!(
            daily.contains(r"Microsoft SQL Server\130\Tools\BINN\OSQL.EXE"),
            "{daily}"
        );
        assert_eq!(s.files.keys().filter(|k| k.ends_with(".bak")).count(), 2);
        assert!(s
            .services
            .values()
            .all(|svc| svc.state == lockstep_protocol::evidence::ServiceRunState::Running));
    }
    // Nothing ran twice anywhere.
    for (name, (_, host)) in &estate.agents {
        let h = host.read().unwrap();
        let mut ids: Vec<&str> = h.history.iter().map(|x| x.id.as_str()).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "{name} ran an action id twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_records_before_and_after_replays_without_rerunning_and_undoes_exactly() {
    let inventory = Inventory::load(Path::new("examples/mirrored.toml")).unwrap();
    let estate = estate(&inventory).await;
    let d = dispatch(
        "redirect@WEB1",
        "WEB1",
        Operation::Redirect {
            value: RedirectValue::RegistryConnect,
            to_server: "DC2".into(),
        },
    );
    let Outcome::Succeeded { evidence } = estate.executor.execute(&d).await else {
        panic!("redirect failed")
    };
    assert_eq!(evidence["key"], SC_KEY);
    assert_eq!(evidence["previous"], CONNECT);
    assert!(evidence["now"].as_str().unwrap().contains("SERVER=DC2;"));
    assert_eq!(
        evidence["probed"].as_array().unwrap().len(),
        3,
        "all three spellings read"
    );

    // The same key again: the agent replays its journal; nothing runs a second time.
    let again = estate.executor.execute(&d).await;
    assert!(matches!(again, Outcome::Succeeded { .. }), "{again:?}");
    let host = &estate.agents["WEB1"].1;
    assert_eq!(
        host.read().unwrap().executions_of("run1/redirect@WEB1/1"),
        1
    );
    assert!(matches!(
        estate.executor.status(&d.key, Some("WEB1")).await,
        ActionStatus::Finished {
            outcome: Outcome::Succeeded { .. }
        }
    ));

    // Undo restores exactly the recorded previous value.
    let mut u = dispatch(
        "undo-redirect@WEB1",
        "WEB1",
        Operation::Redirect {
            value: RedirectValue::RegistryConnect,
            to_server: "DC1".into(),
        },
    );
    u.key.step_id = "undo-redirect@WEB1".into();
    assert!(matches!(
        estate.executor.undo(&u, &evidence).await,
        Outcome::Succeeded { .. }
    ));
    assert_eq!(
        host.read()
            .unwrap()
            .registry_value(SC_KEY, "RegistryConnect")
            .unwrap(),
        CONNECT
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_fails_clearly_when_no_key_or_several_keys_hold_the_value_and_changes_nothing() {
    let inventory = Inventory::load(Path::new("examples/mirrored.toml")).unwrap();
    let estate = estate(&inventory).await;
    // DC1 has no RegistryConnect at all.
    let d = dispatch(
        "redirect@DC1",
        "DC1",
        Operation::Redirect {
            value: RedirectValue::RegistryConnect,
            to_server: "DC2".into(),
        },
    );
    let Outcome::Failed { message, .. } = estate.executor.execute(&d).await else {
        panic!("no key, yet succeeded")
    };
    assert!(message.contains("none of"), "{message}");
    // WEB1 with a second spelling present too.
    let host = &estate.agents["WEB1"].1;
    host.update(|s| {
        s.set_registry(
            r"HKLM\SOFTWARE\Wow6432Node\SupportCenter",
            "RegistryConnect",
            CONNECT,
        )
    })
    .unwrap();
    let d = dispatch(
        "redirect@WEB1",
        "WEB1",
        Operation::Redirect {
            value: RedirectValue::RegistryConnect,
            to_server: "DC2".into(),
        },
    );
    let Outcome::Failed { message, .. } = estate.executor.execute(&d).await else {
        panic!("two keys, yet succeeded")
    };
    assert!(message.contains("several"), "{message}");
    assert!(
        host.read().unwrap().history.is_empty(),
        "nothing was changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_on_an_offline_agent_waits_then_reports_unknown_and_nothing_was_sent() {
    let inventory = Inventory::load(Path::new("examples/mirrored.toml")).unwrap();
    let mut estate = estate(&inventory).await;
    let (agent, _) = estate.agents.remove("DC2").unwrap();
    let url = agent.url();
    agent.stop().await.unwrap();
    let mut d = dispatch(
        "stop-services@DC2",
        "DC2",
        Operation::ServicesStop {
            services: lockstep::knowledge::operation::ServiceSet::Connected,
        },
    );
    d.timeout_secs = 2;
    let out = estate.executor.execute(&d).await;
    let Outcome::Unknown { reason } = out else {
        panic!("{out:?}")
    };
    assert!(!reason.is_empty());
    assert!(matches!(
        estate.executor.status(&d.key, Some("DC2")).await,
        ActionStatus::Unknown { .. }
    ));
    // Unregistered servers are a clear failure, not a wait.
    let e = dispatch("x", "NOPE", Operation::IisReset);
    let Outcome::Failed { message, .. } = estate.executor.execute(&e).await else {
        panic!()
    };
    assert!(message.contains("lockstep agent add"), "{message}");
    // A different address is a different endpoint: re-pointing replaces the client.
    estate
        .executor
        .add(
            "DC2",
            AgentEndpoint {
                url,
                thumbprint: lockstep_protocol::tls::Thumbprint([0; 32]),
            },
        )
        .unwrap();
}
