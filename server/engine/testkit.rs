//! Plans and actors for tests, the benchmark and `lockstep engine run-local`: a no-op plan of any
//! size whose steps run on the journaling executor, people with the usual roles, and a run of a
//! plan taken to its start (requested by an operator, approved by an approver).
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support (the `testkit` feature): a broken journal must stop the test that uses it"
)]

use std::collections::BTreeMap;

use super::machine::{Actor, Role};
use crate::knowledge::inventory::Topology;
use crate::knowledge::operation::Operation;
use crate::knowledge::plan::{Plan, PlannedStep, RetryPolicy, StepKind};

/// An operator (requests runs, claims tasks).
pub fn operator(name: &str) -> Actor {
    Actor::new(name, &[Role::Operator])
}

/// A change manager (approves, skips).
pub fn approver(name: &str) -> Actor {
    Actor::new(name, &[Role::Approver])
}

/// An agent step with no dependencies, on `host`, that changes nothing real.
pub fn agent_step(id: &str, host: Option<&str>) -> PlannedStep {
    PlannedStep {
        id: id.to_string(),
        title: format!("Step {id}"),
        section: "Test".into(),
        phase: "Test".into(),
        kind: StepKind::Agent,
        host: host.map(str::to_string),
        depends_on: Vec::new(),
        instructions: String::new(),
        operation: Operation::IisReset,
        postcondition: None,
        undo: None,
        gate: None,
        retry: RetryPolicy::default(),
        timeout_secs: 60,
        estimate_secs: 1,
    }
}

/// A plan around the given steps.
pub fn plan_of(steps: Vec<PlannedStep>) -> Plan {
    Plan {
        runbook: "test".into(),
        runbook_title: "Test runbook".into(),
        inventory: "test".into(),
        topology: Topology::Standalone,
        params: BTreeMap::new(),
        steps,
    }
}

/// `n` steps; step i depends on step i-1 when `chain`, else all are independent. Hosts cycle over
/// `hosts` (none when empty).
pub fn noop_plan(n: usize, chain: bool, hosts: &[&str]) -> Plan {
    let steps = (0..n)
        .map(|i| {
            let host = if hosts.is_empty() {
                None
            } else {
                Some(hosts[i % hosts.len()])
            };
            let mut s = agent_step(&format!("s{i:04}"), host);
            if chain && i > 0 {
                s.depends_on = vec![format!("s{:04}", i - 1)];
            }
            s
        })
        .collect();
    plan_of(steps)
}

/// Creates a run of `plan` as operator "olga" under `ticket`, submits it and has approver "carl"
/// approve its start (all at time 0), so its first steps are ready; returns the run's id.
pub async fn started_run(store: &super::Store, plan: Plan, ticket: &str) -> String {
    let new = super::store::NewRun {
        change_ticket: ticket.into(),
        window_start: None,
        window_end: None,
        plan,
    };
    let run = store
        .create_run(new, &operator("olga"), 0)
        .await
        .expect("create the run");
    let submit = super::machine::RunEvent::Submit {
        actor: operator("olga"),
    };
    store
        .apply_run_event(&run.id, &submit, 0)
        .await
        .expect("submit the run");
    let go = super::machine::RunEvent::ApproveStart {
        actor: approver("carl"),
        comment: "go".into(),
    };
    store
        .apply_run_event(&run.id, &go, 0)
        .await
        .expect("approve the start");
    run.id
}
