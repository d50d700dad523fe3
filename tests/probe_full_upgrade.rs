//! The whole upgrade-8.11 plan for the mirrored example inventory, driven by the real engine
//! against a simulated Data Center (agents over mutual TLS, SQL over TDS, probes over HTTPS),
//! with a test approver and a test operator doing the manual tasks — to success, and then the
//! simulated end state: every server at 8.11, services running, Web Services pointing back at
//! the primary Registry, OutflowServices URLs using each DataTransfer node's CN.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lockstep::engine::machine::{RunEvent, RunStatus, StepEvent, StepStatus};
use lockstep::engine::store::{NewRun, StepRecord};
use lockstep::engine::testkit::{approver, operator};
use lockstep::engine::{Engine, EngineConfig, Router, Store};
use lockstep::executors::agent::{AgentEndpoint, AgentExecutor};
use lockstep::executors::probe::ProbeExecutor;
use lockstep::executors::sql::SqlExecutor;
use lockstep::knowledge::inventory::Inventory;
use lockstep::knowledge::operation::{Operation, WaitCondition};
use lockstep::knowledge::plan::StepKind;
use lockstep::knowledge::runbook::Catalog;
use lockstep::rehearsal::site;
use lockstep_protocol::evidence::ServiceRunState;
use lockstep_protocol::tls::Identity;
use lockstep_simulator::iis::{registry_server, REGISTRY_CONNECT_KEYS};
use lockstep_simulator::{SimOptions, SimulatedDataCenter};

/// What the operator does for a manual task before completing it: the Setup wizards leave
/// 8.11 installed on the server — the Data Center and every other component installed there
/// (Web Services applications, the Management API), each of which has its own version record.
fn perform(step: &StepRecord, dc: &SimulatedDataCenter) {
    let id = &step.spec.id;
    if !(id.contains("setup") || id.contains("mapi-install")) {
        return;
    }
    let Some(host) = step.spec.host.as_deref().and_then(|h| dc.host(h)) else {
        return;
    };
    host.update(|s| {
        s.product_version = Some("8.11".into());
        for v in s.components.values_mut() {
            *v = "8.11".into();
        }
        s.set_registry(
            r"HKLM\SOFTWARE\Wow6432Node\Connected\DataCenter",
            "Version",
            "8.11",
        );
    })
    .unwrap();
}

fn summary(steps: &[StepRecord]) -> String {
    steps
        .iter()
        .map(|s| format!("{} [{}] {:?}", s.id, s.status, s.state))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirrored_upgrade_to_8_11_runs_to_success_against_the_simulator() {
    upgrade_to_success("examples/mirrored.toml", 90, &["DC1", "DC2"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clustered_upgrade_to_8_11_runs_to_success_against_the_simulator() {
    upgrade_to_success("examples/clustered.toml", 110, &["NWRM1", "NWRM2"]).await;
}

/// Drives upgrade-8.11 for `inventory` to success and checks the simulated end state.
async fn upgrade_to_success(inventory_file: &str, first_ip: u8, registries: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = Identity::generate("lockstep-orchestrator").unwrap();
    let mut options = SimOptions::new(dir.path().join("sim"));
    options.first_ip = first_ip;
    options.orchestrator_pins = vec![orchestrator.thumbprint()];
    let dc = SimulatedDataCenter::start_file(Path::new(inventory_file), options)
        .await
        .unwrap();
    let endpoints = dc.endpoints();

    let agents = AgentExecutor::new(orchestrator);
    for s in &dc.servers {
        let a = s.agent.as_ref().unwrap();
        agents
            .add(
                &s.description.name,
                AgentEndpoint {
                    url: a.url(),
                    thumbprint: a.thumbprint,
                },
            )
            .unwrap();
    }
    let agents = Arc::new(agents);
    let sql = Arc::new(SqlExecutor::new(
        site::sql_config(&endpoints),
        Arc::new(site::site_scripts()),
    ));
    let probes = Arc::new(ProbeExecutor::new(site::probe_config(&endpoints, true)).unwrap());
    let router = Router::new()
        .route(StepKind::Sql, sql)
        .route(StepKind::Probe, probes)
        .fallback(agents);

    let inventory = Inventory::load(Path::new(inventory_file)).unwrap();
    let catalog = Catalog::builtin().unwrap();
    let mut plan = lockstep::knowledge::expand::expand(
        catalog.get("upgrade-8.11").unwrap(),
        &inventory,
        &BTreeMap::new(),
    )
    .unwrap();
    // The drain waits ask for five quiet minutes, polled every 30 s; the simulated sessions are
    // already quiet, so one second of each keeps the test fast without changing what it proves.
    for step in &mut plan.steps {
        if let Operation::Wait {
            interval_secs,
            condition: WaitCondition::BackupSessionsLow { stable_secs, .. },
            ..
        } = &mut step.operation
        {
            *interval_secs = 1;
            *stable_secs = 1;
        }
    }
    let store = Store::open(&dir.path().join("lockstep.db")).await.unwrap();
    let engine = Engine::with(
        store.clone(),
        router,
        Arc::new(lockstep::engine::clock::TokioClock::new()),
        EngineConfig {
            grace: Duration::from_millis(300),
            ..EngineConfig::default()
        },
    );
    let run = engine
        .create_run(
            NewRun {
                change_ticket: "CHG-811".into(),
                window_start: None,
                window_end: None,
                plan,
            },
            &operator("olga"),
        )
        .await
        .unwrap();
    engine
        .run_event(
            &run.id,
            RunEvent::Submit {
                actor: operator("olga"),
            },
        )
        .await
        .unwrap();
    engine
        .run_event(
            &run.id,
            RunEvent::ApproveStart {
                actor: approver("carl"),
                comment: "window agreed".into(),
            },
        )
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let driver = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .drive(async {
                    let _ = stopped.await;
                })
                .await
        })
    };

    let mut events = store.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        let r = store.run(&run.id).await.unwrap();
        let steps = store.steps(&run.id).await.unwrap();
        match r.status {
            RunStatus::Succeeded => break,
            RunStatus::Running | RunStatus::Paused => {}
            other => panic!("run ended {other}:\n{}", summary(&steps)),
        }
        for s in &steps {
            match s.status {
                StepStatus::AwaitingApproval => {
                    let approve = |who: &str| StepEvent::Approve {
                        actor: approver(who),
                        comment: "checked".into(),
                        content_hash: s.content_hash.clone(),
                    };
                    if engine
                        .step_event(&run.id, &s.id, approve("carl"))
                        .await
                        .is_err()
                    {
                        let _ = engine.step_event(&run.id, &s.id, approve("vera")).await;
                    }
                }
                StepStatus::AwaitingOperator => {
                    perform(s, &dc);
                    engine
                        .step_event(
                            &run.id,
                            &s.id,
                            StepEvent::Claim {
                                actor: operator("dora"),
                            },
                        )
                        .await
                        .unwrap();
                    engine
                        .step_event(
                            &run.id,
                            &s.id,
                            StepEvent::Complete {
                                actor: operator("dora"),
                                note: "done".into(),
                            },
                        )
                        .await
                        .unwrap();
                }
                StepStatus::Failed | StepStatus::OutcomeUnknown => {
                    panic!(
                        "step {} is {}:\n{:#?}\n\nall steps:\n{}",
                        s.id,
                        s.status,
                        s.state,
                        summary(&steps)
                    )
                }
                _ => {}
            }
        }
        if tokio::time::Instant::now() > deadline {
            panic!("the run did not finish:\n{}", summary(&steps));
        }
        let _ = tokio::time::timeout(Duration::from_millis(300), events.recv()).await;
    }
    let _ = stop.send(());
    driver.await.unwrap().unwrap();

    // The verification probes ran against the simulated IIS and say what they saw.
    let steps = store.steps(&run.id).await.unwrap();
    let probes: Vec<&StepRecord> = steps
        .iter()
        .filter(|s| s.spec.kind == StepKind::Probe)
        .collect();
    assert!(probes.len() >= 3, "{}", summary(&steps));
    for p in probes {
        let ev = p.state.evidence.as_ref().unwrap();
        assert_eq!(ev["status"], 200, "{}: {ev:#}", p.id);
        assert!(ev["matched"].is_string(), "{}: {ev:#}", p.id);
        if p.id.starts_with("verify-support-center") {
            assert_eq!(ev["found_version"], "8.11", "{ev:#}");
            assert_eq!(ev["tls"]["trusted"], true, "{ev:#}");
        }
    }

    // The simulated end state.
    for s in &dc.servers {
        let st = s.host.read().unwrap();
        let name = &s.description.name;
        assert_eq!(st.product_version.as_deref(), Some("8.11"), "{name}");
        for (svc, state) in &st.services {
            if lockstep_agent::config::default_connected_services().contains(svc) {
                assert_eq!(state.state, ServiceRunState::Running, "{name} {svc}");
            }
        }
        if s.description.hosts_web() {
            let reg = REGISTRY_CONNECT_KEYS.iter().find_map(|k| {
                st.registry_value(k, "RegistryConnect")
                    .map(|v| registry_server(v))
            });
            assert_eq!(
                reg.as_deref(),
                Some(registries[0]),
                "{name} points back at the primary Registry"
            );
        }
    }
    for reg in registries {
        let rows = dc.sql(reg).unwrap().outflow_rows();
        for dt in inventory
            .servers
            .iter()
            .filter(|s| s.datatransfer.is_some())
        {
            let host = match (&dt.certificate, &dt.datatransfer) {
                (Some(c), Some(d)) if d.ssl => c.common_name.clone(),
                _ => dt.fqdn.clone(),
            };
            let url = format!("{host}/ose/OutflowServiceExtension.dll");
            let row = rows.iter().find(|r| r.url == url);
            assert!(row.is_some(), "{reg}: no row {url} in {rows:?}");
            if let Some(d) = &dt.datatransfer {
                assert_eq!(row.unwrap().secure_flag, d.ssl, "{reg}: {url}");
            }
        }
    }
    dc.stop().await.unwrap();
}
