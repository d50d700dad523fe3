//! The agent executor behind a proxy that resets connections at random points: every step ends
//! succeeded or outcome unknown (never a false failure, never a second run), and asking the
//! executor for the status of an unknown step afterwards tells what really happened.

use std::time::Duration;

use lockstep::engine::executor::{ActionStatus, Dispatch, Executor, IdempotencyKey, Outcome};
use lockstep::executors::agent::{AgentEndpoint, AgentExecutor};
use lockstep::knowledge::operation::{Operation, RedirectValue, ServiceSet};
use lockstep_agent::backend::simulated::SimState;
use lockstep_agent::chaos::ResetProxy;
use lockstep_agent::simulated_agent::start_simulated_agent;
use lockstep_protocol::tls::Identity;

const SC_KEY: &str = r"HKLM\SOFTWARE\Wow6432Node\SupportCenter";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_behind_a_resetting_proxy_end_succeeded_or_unknown_and_never_run_twice() {
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = Identity::generate("lockstep-orchestrator").unwrap();
    let mut seed = SimState::data_center_server("WEB1", "8.8.6");
    seed.set_registry(
        SC_KEY,
        "RegistryConnect",
        "DRIVER={SQL Server Native Client 11.0};SERVER=DC1;DATABASE=Registry",
    );
    let (agent, host) = start_simulated_agent(
        dir.path(),
        "127.0.0.6:0".parse().unwrap(),
        Some(&seed),
        vec![orchestrator.thumbprint()],
        |_| {},
    )
    .await
    .unwrap();
    let proxy = ResetProxy::start("127.0.0.1:0".parse().unwrap(), agent.addr, 7, 40, || {
        "executor".to_string()
    })
    .await
    .unwrap();
    let executor = AgentExecutor::new(orchestrator)
        .with_request_timeout(Duration::from_secs(3))
        .with_fresh_connections();
    executor
        .add(
            "WEB1",
            AgentEndpoint {
                url: format!("https://{}", proxy.addr),
                thumbprint: agent.thumbprint,
            },
        )
        .unwrap();

    let mut told = Vec::new();
    for i in 0..40u32 {
        let operation = match i % 5 {
            0 => Operation::ServicesStop {
                services: ServiceSet::Named {
                    names: vec!["W3SVC".into()],
                },
            },
            1 => Operation::ServicesStart {
                services: ServiceSet::Named {
                    names: vec!["W3SVC".into()],
                },
            },
            2 => Operation::RegistrySet {
                key: r"HKLM\SOFTWARE\Wow6432Node\Connected\SSWS".into(),
                name: format!("v{i}"),
                value: format!("{i}"),
            },
            3 => Operation::Redirect {
                value: RedirectValue::RegistryConnect,
                to_server: if i % 2 == 0 {
                    "DC1".into()
                } else {
                    "DC2".into()
                },
            },
            _ => Operation::OsqlPathReplace {
                files: vec!["DailyMaint.cmd".into(), "WeeklyMaint.cmd".into()],
                tools_folder: format!("1{}0", 1 + i % 3),
            },
        };
        let d = Dispatch {
            key: IdempotencyKey {
                run_id: "run9".into(),
                step_id: format!("step{i}@WEB1"),
                attempt: 1,
            },
            host: Some("WEB1".into()),
            operation,
            timeout_secs: 10,
        };
        let out = executor.execute(&d).await;
        match &out {
            Outcome::Succeeded { .. } | Outcome::Unknown { .. } => {}
            Outcome::Failed { message, .. } => panic!("step{i} failed under resets: {message}"),
            Outcome::NeedsPerson { reason, .. } => panic!("step{i} handed to a person: {reason}"),
        }
        told.push((d, out));
    }

    let stats = proxy.stats();
    let resets: usize = stats.resets.values().sum();
    assert!(resets >= 20, "too few resets: {stats:?}");
    let state = host.read().unwrap();
    let mut ids: Vec<&str> = state.history.iter().map(|h| h.id.as_str()).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "an action id ran twice");

    let mut unknown = 0;
    for (d, out) in &told {
        if let Outcome::Unknown { .. } = out {
            unknown += 1;
            // Asking by key (retrying through the same unreliable path) settles it.
            let mut status = executor.status(&d.key, Some("WEB1")).await;
            for _ in 0..20 {
                if !matches!(status, ActionStatus::Unknown { .. }) {
                    break;
                }
                status = executor.status(&d.key, Some("WEB1")).await;
            }
            let ran = state.executions_of(&d.key.as_string());
            match status {
                ActionStatus::Finished {
                    outcome: Outcome::Succeeded { .. },
                } => assert_eq!(ran, 1, "{}", d.key),
                ActionStatus::NotFound => assert_eq!(ran, 0, "{}", d.key),
                other => panic!("{}: status {other:?} after the fact", d.key),
            }
        }
    }
    eprintln!(
        "proxy {stats:?}; {unknown} of {} steps unknown at first",
        told.len()
    );
    drop(proxy);

    // Outcome unknown, both ways, and what status by key says afterwards: an answer that did
    // not come in time (the agent is slow) and a request that never arrived (nobody listening).
    host.update(|s| {
        s.faults
            .delay_ms
            .insert(lockstep_protocol::ActionKind::RegistrySet, 2_500);
    })
    .unwrap();
    let direct = AgentEndpoint {
        url: agent.url(),
        thumbprint: agent.thumbprint,
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut lost = Vec::new();
    for (i, url) in [direct.url.clone(), format!("https://{closed}")]
        .into_iter()
        .enumerate()
    {
        executor
            .add(
                "WEB1",
                AgentEndpoint {
                    url,
                    thumbprint: agent.thumbprint,
                },
            )
            .unwrap();
        let d = Dispatch {
            key: IdempotencyKey {
                run_id: "run9".into(),
                step_id: format!("lost{i}@WEB1"),
                attempt: 1,
            },
            host: Some("WEB1".into()),
            operation: Operation::RegistrySet {
                key: r"HKLM\SOFTWARE\Wow6432Node\Connected\SSWS".into(),
                name: format!("lost{i}"),
                value: "x".into(),
            },
            timeout_secs: 1,
        };
        let out = executor.execute(&d).await;
        assert!(matches!(out, Outcome::Unknown { .. }), "lost{i}: {out:?}");
        lost.push(d);
    }
    executor.add("WEB1", direct).unwrap();
    let mut slow = executor.status(&lost[0].key, Some("WEB1")).await;
    while slow == ActionStatus::Running {
        tokio::time::sleep(Duration::from_millis(100)).await;
        slow = executor.status(&lost[0].key, Some("WEB1")).await;
    }
    assert!(
        matches!(
            slow,
            ActionStatus::Finished {
                outcome: Outcome::Succeeded { .. }
            }
        ),
        "{slow:?}"
    );
    assert_eq!(
        host.read().unwrap().executions_of("run9/lost0@WEB1/1"),
        1,
        "ran once, answer late"
    );
    assert_eq!(
        executor.status(&lost[1].key, Some("WEB1")).await,
        ActionStatus::NotFound
    );
    assert_eq!(
        host.read().unwrap().executions_of("run9/lost1@WEB1/1"),
        0,
        "never arrived, never ran"
    );
    agent.stop().await.unwrap();
}
