//! The change record of one run, as a change board attaches it to the ticket: the summary first
//! (ticket, Data Center, runbook and seed chapter, who requested and approved it and when, the
//! window against the actual start, finish and duration, the outcome and the counts), then every
//! approval and denial with its whole comment, every override with its justification, who
//! performed each manual task and what they recorded, the backups taken, each step with its
//! evidence as tables, and each server's final state.
//!
//! [`build`] is pure (records in, record out) so the HTML page and the JSON answer are the same
//! content, and tests can hold the two together.

pub mod evidence;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::audit::{AuditEvent, EventKind};
use crate::engine::machine::StepStatus;
use crate::engine::store::{RunRecord, StepRecord};
use crate::knowledge::plan::StepKind;
use crate::web::audit_words::{self, person_text};
use crate::web::views::{fmt_duration, fmt_time};

/// Event kinds a person causes that change what the plan would have done on its own. Kinds
/// containing `override` (the policy engine's) count too, whatever their prefix.
const OVERRIDES: &[EventKind] = &[
    EventKind::StepSkip,
    EventKind::StepRetry,
    EventKind::StepMarkDone,
    EventKind::StepMarkFailed,
    EventKind::StepReopenGate,
    EventKind::StepAskAgain,
    EventKind::RunAbort,
    EventKind::RunPause,
    EventKind::RunUndo,
    EventKind::RunReopen,
];

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub steps: usize,
    pub manual_tasks: usize,
    pub gates: usize,
    pub overrides: usize,
    pub retries: u64,
    pub skipped: usize,
}

/// A decision a person made: an approval, a denial or an override.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Decision {
    pub at: String,
    pub actor: String,
    /// `approved`, `denied`, or the override in words ("skip", "retry", ...).
    pub verdict: String,
    /// What was decided on: "the start of the run" or the gate's / step's title.
    pub subject: String,
    /// The whole comment, justification or reason, never shortened.
    pub comment: String,
    /// The same as one sentence (see [`audit_words::describe`]).
    pub sentence: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ManualTask {
    pub title: String,
    pub server: String,
    pub status: String,
    pub claimed_by: String,
    pub performed_by: String,
    pub completed_at: String,
    pub recorded: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Backup {
    pub database: String,
    pub server: String,
    pub file: String,
    pub size: String,
    pub finished_at: String,
    pub verified: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepLine {
    pub id: String,
    pub title: String,
    pub server: String,
    pub section: String,
    pub phase: String,
    pub status: String,
    pub attempts: u32,
    pub started: String,
    pub ended: String,
    pub planned: String,
    pub actual: String,
    pub note: String,
    pub error: String,
    pub evidence: Vec<evidence::Block>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServerState {
    pub server: String,
    /// "12 of 12 steps succeeded".
    pub steps: String,
    /// The last step that ran there and how it ended.
    pub last_step: String,
    /// Versions from the agent's latest facts ("Data Center 8.11; Windows Server 2016; ...").
    pub versions: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChangeRecord {
    pub run_id: String,
    pub status: String,
    /// The outcome in words ("succeeded", "failed at 'Upgrade the Registry server'").
    pub outcome: String,
    pub change_ticket: String,
    pub change_ticket_url: Option<String>,
    pub datacenter: String,
    pub runbook: String,
    pub seed_chapter: String,
    pub requested_by: String,
    pub requested_at: String,
    /// "alan, 2026-12-06 10:00:00Z" per approval of the start.
    pub start_approved_by: Vec<String>,
    pub window: String,
    pub started: String,
    pub finished: String,
    pub duration: String,
    pub planned_duration: String,
    pub counts: Counts,
    pub approvals: Vec<Decision>,
    pub overrides: Vec<Decision>,
    pub manual_tasks: Vec<ManualTask>,
    pub backups: Vec<Backup>,
    pub steps: Vec<StepLine>,
    pub servers: Vec<ServerState>,
    pub chain_ok: bool,
    pub chain: String,
}

/// What the record is built from besides the run itself.
pub struct Inputs<'a> {
    pub run: &'a RunRecord,
    pub steps: &'a [StepRecord],
    pub events: &'a [AuditEvent],
    pub ticket_url: Option<String>,
    /// Versions per server from the agents' latest facts.
    pub versions: BTreeMap<String, String>,
    pub chain_ok: bool,
    pub chain: String,
    pub now_ms: i64,
}

/// The seed chapter a runbook carries out (`recover-failed-upgrade` is Lockstep's own).
pub fn seed_chapter(runbook: &str) -> &'static str {
    match runbook {
        "upgrade-8.11" => "Chapter 1: Upgrade Connected Backup Components",
        "uninstall-management-api" | "uninstall-datatransfer-api" => {
            "Chapter 2: Uninstall Components"
        }
        "upgrade-windows-server" | "upgrade-sql-server" => {
            "Chapter 3: Upgrade Windows Server and SQL Server"
        }
        "recover-failed-upgrade" => {
            "Not in the guide: Lockstep's recovery from a failed Chapter 1 upgrade"
        }
        _ => "a site runbook",
    }
}

fn at(ms: i64) -> String {
    fmt_time(ms.div_euclid(1000))
}

fn is_override(kind: &EventKind) -> bool {
    OVERRIDES.contains(kind) || kind.as_str().contains("override")
}

/// The plan's own length: the longest chain of estimates through the dependencies.
fn critical_path_secs(steps: &[&StepRecord]) -> u64 {
    let mut finish: BTreeMap<&str, u64> = BTreeMap::new();
    // Steps are stored in a topological order, so every dependency is already in `finish`.
    for s in steps {
        let start = s
            .spec
            .depends_on
            .iter()
            .filter_map(|d| finish.get(d.as_str()))
            .max()
            .copied()
            .unwrap_or(0);
        finish.insert(&s.id, start + s.spec.estimate_secs);
    }
    finish.values().max().copied().unwrap_or(0)
}

pub fn build(i: Inputs<'_>) -> ChangeRecord {
    let run = i.run;
    let plan: Vec<&StepRecord> = i.steps.iter().filter(|s| s.undo_of.is_none()).collect();
    let title_of = |id: &str| {
        i.steps
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.spec.title.clone())
    };
    let person_events: Vec<&AuditEvent> = i
        .events
        .iter()
        .filter(|e| audit_words::by_person(e))
        .collect();

    let decision = |e: &AuditEvent, verdict: String| Decision {
        at: at(e.at),
        actor: e.actor.clone(),
        verdict,
        subject: match &e.step_id {
            Some(id) => title_of(id).unwrap_or_else(|| id.clone()),
            None => "the run".to_string(),
        },
        comment: person_text(&e.payload).unwrap_or_default(),
        sentence: audit_words::describe(e, &title_of),
    };
    let approvals: Vec<Decision> = person_events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::RunApproveStart => Some(Decision {
                subject: "the start of the run".into(),
                ..decision(e, "approved".into())
            }),
            EventKind::StepApprove | EventKind::StepReject => {
                let d = decision(
                    e,
                    if e.kind == EventKind::StepApprove {
                        "approved"
                    } else {
                        "denied"
                    }
                    .into(),
                );
                Some(Decision {
                    subject: format!("the gate '{}'", d.subject),
                    ..d
                })
            }
            _ => None,
        })
        .collect();
    let overrides: Vec<Decision> = person_events
        .iter()
        .filter(|e| is_override(&e.kind))
        .map(|e| {
            let d = decision(e, audit_words::kind_words(e.kind.as_str()));
            // A preflight override names the finding it accepted, not just "the run".
            match e.payload.pointer("/event/finding").and_then(|f| f.as_str()) {
                Some(f) if e.kind == EventKind::RunOverrideFinding => Decision {
                    subject: format!("the preflight finding {f}"),
                    ..d
                },
                _ => d,
            }
        })
        .collect();
    let start_approved_by = person_events
        .iter()
        .filter(|e| e.kind == EventKind::RunApproveStart)
        .map(|e| format!("{}, {}", e.actor, at(e.at)))
        .collect();

    let manual_tasks =
        plan.iter()
            .filter(|s| s.spec.kind == StepKind::Manual)
            .map(|s| {
                let completed = i.events.iter().rev().find(|e| {
                    e.kind == EventKind::StepComplete && e.step_id.as_deref() == Some(&s.id)
                });
                ManualTask {
                    title: s.spec.title.clone(),
                    server: s.spec.host.clone().unwrap_or_default(),
                    status: s.status.as_str().replace('_', " "),
                    claimed_by: s.state.claimed_by.clone().unwrap_or_default(),
                    performed_by: completed
                        .map(|e| e.actor.clone())
                        .or_else(|| s.state.decided_by.clone())
                        .unwrap_or_else(|| "not performed".into()),
                    completed_at: completed.map(|e| at(e.at)).unwrap_or_default(),
                    recorded: completed
                        .and_then(|e| person_text(&e.payload))
                        .or_else(|| s.state.note.clone())
                        .unwrap_or_default(),
                }
            })
            .collect();

    let backups = i
        .steps
        .iter()
        .filter_map(|s| s.state.evidence.as_ref())
        .flat_map(backups_in)
        .collect();

    let started_ms = plan.iter().filter_map(|s| s.state.dispatched_at).min();
    let finished_ms = run.status.is_terminal().then_some(run.updated_at);
    let duration = match (started_ms, finished_ms) {
        (Some(s), Some(f)) => fmt_duration((f - s).div_euclid(1000)),
        (Some(s), None) => format!("{} so far", fmt_duration((i.now_ms - s).div_euclid(1000))),
        _ => "not started".into(),
    };
    let window = match (run.window_start, run.window_end) {
        (Some(s), Some(e)) => format!("{} to {}", at(s), at(e)),
        (Some(s), None) => format!("from {}", at(s)),
        (None, Some(e)) => format!("until {}", at(e)),
        (None, None) => "none set".into(),
    };
    let failed = plan.iter().find(|s| s.status == StepStatus::Failed);
    let outcome = match (run.status.as_str(), failed) {
        ("failed", Some(s)) => format!("failed at '{}'", s.spec.title),
        (other, _) => other.replace('_', " "),
    };

    let counts = Counts {
        steps: plan.iter().filter(|s| !s.spec.is_join()).count(),
        manual_tasks: plan
            .iter()
            .filter(|s| s.spec.kind == StepKind::Manual)
            .count(),
        gates: plan
            .iter()
            .filter(|s| s.spec.kind == StepKind::Approval || s.spec.gate.is_some())
            .count(),
        overrides: overrides.len(),
        retries: plan
            .iter()
            .map(|s| u64::from(s.attempt.saturating_sub(1)))
            .sum(),
        skipped: plan
            .iter()
            .filter(|s| s.status == StepStatus::Skipped)
            .count(),
    };

    // Joins (plan expansion's barriers) are order, not work: the record lists what was done.
    let steps = i
        .steps
        .iter()
        .filter(|s| !s.spec.is_join())
        .map(|s| step_line(s, i.now_ms))
        .collect();
    let servers = servers(&plan, &i.versions);

    ChangeRecord {
        run_id: run.id.clone(),
        status: run.status.as_str().to_string(),
        outcome,
        change_ticket: run.change_ticket.clone(),
        change_ticket_url: i.ticket_url,
        datacenter: run.inventory.clone(),
        runbook: run.runbook.clone(),
        seed_chapter: seed_chapter(&run.runbook).to_string(),
        requested_by: run.requester.clone(),
        requested_at: at(run.created_at),
        start_approved_by,
        window,
        started: started_ms.map(at).unwrap_or_else(|| "not started".into()),
        finished: finished_ms.map(at).unwrap_or_else(|| "not finished".into()),
        duration,
        planned_duration: fmt_duration(critical_path_secs(&plan) as i64),
        counts,
        approvals,
        overrides,
        manual_tasks,
        backups,
        steps,
        servers,
        chain_ok: i.chain_ok,
        chain: i.chain,
    }
}

/// Backup records anywhere in a step's evidence (the SQL executor keeps them per server).
fn backups_in(evidence: &serde_json::Value) -> Vec<Backup> {
    let mut out = Vec::new();
    collect_backups(evidence, &mut out, 0);
    out
}

fn collect_backups(v: &serde_json::Value, out: &mut Vec<Backup>, depth: usize) {
    if depth > 4 {
        return;
    }
    match v {
        serde_json::Value::Object(map) => {
            if let Some(items) = map.get("backups").and_then(|b| b.as_array()) {
                for b in items {
                    let g = |k: &str| b.get(k).map(evidence::text).unwrap_or_default();
                    out.push(Backup {
                        database: g("database"),
                        server: g("server"),
                        file: g("file"),
                        size: b
                            .get("size_bytes")
                            .and_then(|s| s.as_u64())
                            .map(evidence::size)
                            .unwrap_or_else(|| "not recorded".into()),
                        finished_at: g("finished_at"),
                        verified: b.get("verified").and_then(|v| v.as_bool()) == Some(true),
                    });
                }
            }
            for (k, v) in map {
                if k != "backups" {
                    collect_backups(v, out, depth + 1);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                collect_backups(v, out, depth + 1);
            }
        }
        _ => {}
    }
}

fn step_line(s: &StepRecord, now_ms: i64) -> StepLine {
    let started = s.state.dispatched_at;
    let ended = s.status.is_terminal().then_some(s.updated_at);
    let actual = match (started, ended) {
        (Some(a), Some(b)) => fmt_duration((b - a).div_euclid(1000)),
        (Some(a), None) => format!("{} so far", fmt_duration((now_ms - a).div_euclid(1000))),
        _ => "—".into(),
    };
    StepLine {
        id: s.id.clone(),
        title: s.spec.title.clone(),
        server: s.spec.host.clone().unwrap_or_else(|| "—".into()),
        section: s.spec.section.clone(),
        phase: s.spec.phase.clone(),
        status: s.status.as_str().replace('_', " "),
        attempts: s.attempt,
        started: started.map(at).unwrap_or_default(),
        ended: ended.map(at).unwrap_or_default(),
        planned: fmt_duration(s.spec.estimate_secs as i64),
        actual,
        note: s.state.note.clone().unwrap_or_default(),
        error: s.state.last_error.clone().unwrap_or_default(),
        evidence: s
            .state
            .evidence
            .as_ref()
            .map(evidence::blocks)
            .unwrap_or_default(),
    }
}

fn servers(plan: &[&StepRecord], versions: &BTreeMap<String, String>) -> Vec<ServerState> {
    let mut hosts: Vec<String> = plan.iter().filter_map(|s| s.spec.host.clone()).collect();
    hosts.sort();
    hosts.dedup();
    hosts
        .into_iter()
        .map(|h| {
            let on: Vec<&&StepRecord> = plan
                .iter()
                .filter(|s| s.spec.host.as_deref() == Some(h.as_str()))
                .collect();
            let ok = on
                .iter()
                .filter(|s| s.status == StepStatus::Succeeded)
                .count();
            let last = on
                .iter()
                .filter(|s| s.state.dispatched_at.is_some())
                .max_by_key(|s| (s.updated_at, s.seq))
                .map(|s| format!("{} — {}", s.spec.title, s.status.as_str().replace('_', " ")))
                .unwrap_or_else(|| "nothing ran here".into());
            ServerState {
                steps: format!("{ok} of {} steps succeeded", on.len()),
                last_step: last,
                versions: versions
                    .get(&h)
                    .cloned()
                    .unwrap_or_else(|| "no facts from its agent".into()),
                server: h,
            }
        })
        .collect()
}
