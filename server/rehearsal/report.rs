//! What a rehearsal found: the run's status, each step's outcome and recorded duration, where it
//! stopped and why (in words a change manager reads), and the simulated Data Center's end state.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::Rehearsal;
use crate::engine::machine::{RunStatus, StepStatus};

#[derive(Debug, Clone, Serialize)]
pub struct StepOutcome {
    pub id: String,
    pub title: String,
    pub host: Option<String>,
    pub kind: String,
    pub status: StepStatus,
    /// From the step's start (gate opened, task offered, dispatched) to its last transition.
    pub duration_ms: Option<i64>,
    /// The planned estimate, for comparison.
    pub estimate_secs: u64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stopped {
    pub step: String,
    pub title: String,
    pub host: Option<String>,
    pub status: StepStatus,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegistryChange {
    pub key: String,
    pub name: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerEnd {
    pub name: String,
    pub version: Option<String>,
    pub windows: String,
    pub sql_server: Option<String>,
    /// Service → state ("running", "stopped", …).
    pub services: BTreeMap<String, String>,
    pub registry_changed: Vec<RegistryChange>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub runbook: String,
    pub inventory: String,
    pub run_id: String,
    pub db: String,
    pub status: RunStatus,
    /// The run succeeded (so every step's post-condition held).
    pub succeeded: bool,
    pub elapsed_ms: u128,
    pub faults: Vec<String>,
    pub stopped_at: Option<Stopped>,
    pub steps: Vec<StepOutcome>,
    pub servers: Vec<ServerEnd>,
    /// Registry database server → OutflowServices rows.
    pub outflow_services: BTreeMap<String, Vec<lockstep_simulator::sql::OutflowRow>>,
    pub identities: Vec<String>,
}

fn service_state(v: &impl Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "unknown".into(),
    }
}

/// The clearest sentence the step's record holds about why it stopped.
fn why(s: &crate::engine::store::StepRecord) -> String {
    let mut why = s
        .state
        .last_error
        .clone()
        .unwrap_or_else(|| format!("the step is {}", s.status));
    if let Some(msg) = s
        .state
        .evidence
        .as_ref()
        .and_then(|e| e.get("message"))
        .and_then(|m| m.as_str())
    {
        if !why.contains(msg) {
            why = format!("{why}: {msg}");
        }
    }
    match s.status {
        StepStatus::OutcomeUnknown => format!(
            "{why}. Lockstep cannot tell whether the change took effect; check the host, then \
             retry or mark the step done."
        ),
        _ => why,
    }
}

pub async fn build(r: &Rehearsal) -> anyhow::Result<Report> {
    let run = r.store.run(&r.run_id).await?;
    let steps = r.store.steps(&r.run_id).await?;
    let events = r.store.run_events(&r.run_id).await?;
    let mut span: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for e in &events {
        let Some(step) = &e.step_id else { continue };
        let name = e
            .payload
            .get("event")
            .and_then(|v| v.get("event").or(Some(v)))
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if name == "unblock" {
            continue;
        }
        span.entry(step.clone())
            .and_modify(|(_, end)| *end = e.at)
            .or_insert((e.at, e.at));
    }
    let mut outcomes = Vec::new();
    let mut stopped_at = None;
    for s in &steps {
        if stopped_at.is_none()
            && matches!(s.status, StepStatus::Failed | StepStatus::OutcomeUnknown)
        {
            stopped_at = Some(Stopped {
                step: s.id.clone(),
                title: s.spec.title.clone(),
                host: s.spec.host.clone(),
                status: s.status,
                why: why(s),
            });
        }
        outcomes.push(StepOutcome {
            id: s.id.clone(),
            title: s.spec.title.clone(),
            host: s.spec.host.clone(),
            kind: s.spec.kind.as_str().to_string(),
            status: s.status,
            duration_ms: span
                .get(&s.id)
                .filter(|_| s.status.is_done() || s.status == StepStatus::Failed)
                .map(|(a, b)| b - a),
            estimate_secs: s.spec.estimate_secs,
            error: s.state.last_error.clone(),
        });
    }
    let mut servers = Vec::new();
    let mut outflow = BTreeMap::new();
    for s in &r.dc.servers {
        let st = s.host.read()?;
        let before = r.registry_before.get(&s.description.name);
        let mut changed = Vec::new();
        for (key, values) in &st.registry {
            for (name, after) in values {
                let old = before.and_then(|b| b.get(key)).and_then(|v| v.get(name));
                if old != Some(after) {
                    changed.push(RegistryChange {
                        key: key.clone(),
                        name: name.clone(),
                        before: old.cloned(),
                        after: Some(after.clone()),
                    });
                }
            }
        }
        if let Some(b) = before {
            for (key, values) in b {
                for (name, old) in values {
                    if st.registry.get(key).and_then(|v| v.get(name)).is_none() {
                        changed.push(RegistryChange {
                            key: key.clone(),
                            name: name.clone(),
                            before: Some(old.clone()),
                            after: None,
                        });
                    }
                }
            }
        }
        servers.push(ServerEnd {
            name: s.description.name.clone(),
            version: st.product_version.clone(),
            windows: st.windows.clone(),
            sql_server: st.sql_server.clone(),
            services: st
                .services
                .iter()
                .map(|(n, v)| (n.clone(), service_state(&v.state)))
                .collect(),
            registry_changed: changed,
        });
        if let Some((inst, _)) = &s.sql {
            if s.description.has("registry") {
                outflow.insert(s.description.name.clone(), inst.outflow_rows());
            }
        }
    }
    Ok(Report {
        runbook: r.plan.runbook.clone(),
        inventory: r.options.inventory.display().to_string(),
        run_id: run.id.clone(),
        db: r.options.db.display().to_string(),
        status: run.status,
        succeeded: run.status == RunStatus::Succeeded,
        elapsed_ms: r.elapsed().as_millis(),
        faults: r.options.faults.iter().map(|f| f.describe()).collect(),
        stopped_at,
        steps: outcomes,
        servers,
        outflow_services: outflow,
        identities: std::iter::once(super::REHEARSAL_OPERATOR)
            .chain(super::REHEARSAL_APPROVERS)
            .map(String::from)
            .collect(),
    })
}

fn secs(ms: i64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

impl Report {
    /// The report for people.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let verdict = if self.succeeded {
            "SUCCEEDED: every step finished and every post-condition held"
        } else {
            "DID NOT SUCCEED"
        };
        let _ = writeln!(o, "Rehearsal of {} on {}", self.runbook, self.inventory);
        let _ = writeln!(
            o,
            "Result: {verdict} (run status {}, {:.1} s)",
            self.status,
            self.elapsed_ms as f64 / 1000.0
        );
        for f in &self.faults {
            let _ = writeln!(o, "Injected fault: {f}");
        }
        if let Some(s) = &self.stopped_at {
            let on = s
                .host
                .as_deref()
                .map(|h| format!(" on {h}"))
                .unwrap_or_default();
            let _ = writeln!(o, "\nStopped at: {} — {}{on}", s.step, s.title);
            let _ = writeln!(o, "Why: {}", s.why);
            let _ = writeln!(
                o,
                "What next: fix the cause on the server, then retry the step (on the run page, or \
                 rehearse again); steps that depend on it were not started."
            );
        }
        let _ = writeln!(
            o,
            "\nSteps (recorded duration; use these as planned durations for the real run):"
        );
        for s in &self.steps {
            let d = s.duration_ms.map(secs).unwrap_or_else(|| "-".into());
            let _ = writeln!(o, "  {:<17} {:>8}  {}", s.status.as_str(), d, s.id);
        }
        let _ = writeln!(o, "\nSimulated end state:");
        for s in &self.servers {
            let running = s.services.values().filter(|v| *v == "running").count();
            let _ = writeln!(
                o,
                "  {}: version {}, Windows {}, SQL Server {}, {running}/{} services running",
                s.name,
                s.version.as_deref().unwrap_or("none"),
                s.windows,
                s.sql_server.as_deref().unwrap_or("none"),
                s.services.len()
            );
            let stopped: Vec<&str> = s
                .services
                .iter()
                .filter(|(_, v)| *v != "running")
                .map(|(n, _)| n.as_str())
                .collect();
            if !stopped.is_empty() {
                let _ = writeln!(o, "    not running: {}", stopped.join(", "));
            }
            for c in &s.registry_changed {
                let _ = writeln!(
                    o,
                    "    {}\\{}: {} -> {}",
                    c.key,
                    c.name,
                    c.before.as_deref().unwrap_or("(absent)"),
                    c.after.as_deref().unwrap_or("(deleted)")
                );
            }
        }
        for (server, rows) in &self.outflow_services {
            let _ = writeln!(o, "  OutflowServices in the Registry on {server}:");
            for r in rows {
                let _ = writeln!(o, "    {} {} secure={}", r.server_id, r.url, r.secure_flag);
            }
        }
        let _ = writeln!(
            o,
            "\nRecorded in {} (run {}); approvals and manual tasks by: {}",
            self.db,
            self.run_id,
            self.identities.join(", ")
        );
        o
    }
}
