//! What the run page shows, computed from the engine's records: the run header (status,
//! progress, elapsed vs planned, window) and one card per step, each with the controls the
//! viewer's role allows. The same structs render the full page, the htmx partials and the
//! partials pushed over server-sent events, so all three always agree.

use askama::Template;

pub mod attention;
pub mod deliveries;
pub mod timeline;

use std::collections::HashMap;

use crate::engine::machine::{RunStatus, StepStatus};
use crate::engine::steplog::{LogLine, StepTail};
use crate::engine::store::{RunRecord, StepRecord};
use crate::knowledge::plan::StepKind;
use crate::web::auth::Role;
use crate::web::views::{fmt_duration, fmt_time};
use crate::web::words;

/// Who is looking, as far as rendering cares: controls depend on the role and on whether the
/// viewer requested the run (four-eyes: a requester is never offered an approval).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Viewer {
    pub role: Role,
    pub is_requester: bool,
    /// Only pages rendered for one session carry the token in hidden fields (forms without
    /// JavaScript); partials pushed to many watchers leave it empty and htmx sends the header.
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "partials/run_header.html")]
pub struct RunHeader {
    pub id: String,
    /// The run as people name it: change ticket · runbook · Data Center.
    pub name: String,
    pub status: &'static str,
    pub status_words: &'static str,
    /// What the run waits for, with how long (see [`attention::blocked_on`]); empty if nothing.
    pub blocked_on: String,
    /// Whether the steps have started at all (the elapsed/forecast line reads differently).
    pub started: bool,
    /// The window's opening is still ahead: "opens in 2 h 10 min".
    pub opens_in: String,
    /// The forecast finish passes the window's end (a warning, not a footnote).
    pub late: bool,
    pub requester: String,
    pub approved_by: String,
    pub change_ticket: String,
    pub runbook: String,
    pub inventory: String,
    pub done: usize,
    pub total: usize,
    pub percent: usize,
    pub elapsed: String,
    pub planned: String,
    pub window: String,
    pub forecast: String,
    pub reason: String,
    pub watching: Watching,
    pub can_approve_start: bool,
    pub can_submit: bool,
    pub can_pause: bool,
    pub can_resume: bool,
    pub can_abort: bool,
    pub can_undo: bool,
    /// A failed (or failed then aborted) upgrade-8.11 run offers the way back: the new-run form for
    /// recover-failed-upgrade, prefilled with this run's id and Data Center.
    pub can_recover: bool,
    pub terminal: bool,
    pub csrf: String,
    pub oob: bool,
}

#[derive(Template)]
#[template(path = "partials/step_card.html")]
pub struct StepCard {
    pub run_id: String,
    pub dom_id: String,
    pub id: String,
    pub title: String,
    pub section: String,
    pub phase: String,
    pub kind: &'static str,
    pub host: String,
    pub status: &'static str,
    pub status_words: &'static str,
    pub attempt: u32,
    /// "attempt 2" once a step has been tried more than once; empty otherwise.
    pub attempt_note: String,
    pub started: String,
    pub duration: String,
    pub estimate: String,
    pub instructions: String,
    pub approvals: Vec<String>,
    pub claimed_by: String,
    pub note: String,
    pub last_error: String,
    pub evidence: String,
    /// The newest output lines (see [`LOG_TAIL`]) and how many older ones the card leaves out.
    pub log: Vec<LogRow>,
    pub log_hidden: i64,
    pub content_hash: String,
    pub can_approve: bool,
    pub can_claim: bool,
    pub can_complete: bool,
    pub can_retry: bool,
    pub can_skip: bool,
    pub can_resolve: bool,
    /// Not started or over, and nothing to do on it but perhaps skip: one line on the run page
    /// (its instructions, evidence and output are on the step's own page), so a 100-step run
    /// reads as a list.
    pub compact: bool,
    pub csrf: String,
    pub oob: bool,
}

/// Lines of output a card shows (the newest; the table keeps up to
/// [`crate::engine::steplog::LINES_PER_STEP`]).
pub const LOG_TAIL: usize = 50;

/// One output line as shown: time of day and text (escaped by the template).
pub struct LogRow {
    pub at: String,
    pub text: String,
}

impl LogRow {
    pub fn of(line: &LogLine) -> LogRow {
        let t = line.at.div_euclid(1000).rem_euclid(86_400);
        LogRow {
            at: format!("{:02}:{:02}:{:02}", t / 3600, (t % 3600) / 60, t % 60),
            text: line.text.clone(),
        }
    }
}

/// Lines appended live to a card's log (`hx-swap-oob="beforeend:…"`), the same for every viewer.
#[derive(Template)]
#[template(path = "partials/log_lines.html")]
pub struct LogAppend {
    pub dom_id: String,
    pub lines: Vec<LogRow>,
}

/// Who has the run page open; pushed on its own when someone arrives or leaves.
#[derive(Template, Clone, Default)]
#[template(path = "partials/watching.html")]
pub struct Watching {
    pub names: Vec<String>,
    pub oob: bool,
}

/// A phase with its steps, in plan order.
pub struct Phase {
    pub name: String,
    pub cards: Vec<StepCard>,
}

impl Phase {
    /// Every step of the phase is over (done, skipped or cancelled): the page folds it away.
    pub fn finished(&self) -> bool {
        self.cards
            .iter()
            .all(|c| matches!(c.status, "succeeded" | "skipped" | "cancelled"))
    }

    /// How many of its steps are done, for the folded phase's summary.
    pub fn done(&self) -> usize {
        self.cards
            .iter()
            .filter(|c| matches!(c.status, "succeeded" | "skipped"))
            .count()
    }
}

impl StepCard {
    /// The viewer can act on this step now.
    pub fn is_actionable(&self) -> bool {
        self.can_approve
            || self.can_claim
            || self.can_complete
            || self.can_retry
            || self.can_resolve
    }
}

/// DOM id of a step card: by plan position, since step ids hold characters (`@`, `.`) that
/// would need escaping in CSS selectors.
pub fn step_dom_id(step: &StepRecord) -> String {
    format!("step-{}", step.seq)
}

/// The run as people name it: "CHG-2026-1127 · upgrade-8.11 · Northwind" (ticket first, since
/// that is what the change board calls it); the id only when there is no ticket.
pub fn run_name(run: &RunRecord) -> String {
    let ticket = run.change_ticket.trim();
    if ticket.is_empty() {
        format!(
            "{} · {} · run {}",
            run.runbook,
            run.inventory,
            short_id(&run.id)
        )
    } else {
        format!("{ticket} · {} · {}", run.runbook, run.inventory)
    }
}

/// The first block of a UUID, enough to tell runs apart by eye.
pub fn short_id(id: &str) -> &str {
    id.split('-').next().unwrap_or(id)
}

fn ms_to_secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

pub fn run_header(
    run: &RunRecord,
    steps: &[StepRecord],
    viewer: &Viewer,
    now_ms: i64,
    watching: &[String],
) -> RunHeader {
    let total = steps
        .iter()
        .filter(|s| s.undo_of.is_none() && !s.spec.is_join())
        .count();
    let done = steps
        .iter()
        .filter(|s| {
            s.undo_of.is_none()
                && !s.spec.is_join()
                && matches!(s.status, StepStatus::Succeeded | StepStatus::Skipped)
        })
        .count();
    let planned: i64 = steps
        .iter()
        .filter(|s| s.undo_of.is_none())
        .map(|s| s.spec.estimate_secs as i64)
        .sum();
    let remaining: i64 = steps
        .iter()
        .filter(|s| !s.status.is_terminal())
        .map(|s| s.spec.estimate_secs as i64)
        .sum();
    // A run starts with its first dispatch or its first gate opening (a gate is never dispatched).
    let started = steps
        .iter()
        .filter_map(|s| match (s.state.dispatched_at, s.state.gate_opened_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
        .min();
    let terminal = run.status.is_terminal();
    let end = if terminal { run.updated_at } else { now_ms };
    let elapsed = started
        .map(|s| fmt_duration(ms_to_secs(end - s)))
        .unwrap_or_else(|| "not started".into());
    let window = match (run.window_start, run.window_end) {
        (Some(a), Some(b)) if now_ms < b && !terminal => format!(
            "{} – {} ({} left)",
            fmt_time(ms_to_secs(a)),
            fmt_time(ms_to_secs(b)),
            fmt_duration(ms_to_secs(b - now_ms.max(a)))
        ),
        (Some(a), Some(b)) => format!("{} – {}", fmt_time(ms_to_secs(a)), fmt_time(ms_to_secs(b))),
        _ => "none given".into(),
    };
    // The pace so far: finished steps' actual time against their estimates (clamped, so one
    // odd step cannot swing the forecast wildly) scales what remains.
    let (actual, estimated) = steps
        .iter()
        .filter(|s| s.undo_of.is_none() && s.status == StepStatus::Succeeded)
        .filter_map(|s| {
            s.state.dispatched_at.map(|d| {
                (
                    (s.updated_at - d).max(0),
                    s.spec.estimate_secs as i64 * 1000,
                )
            })
        })
        .fold((0i64, 0i64), |(a, e), (x, y)| (a + x, e + y));
    let pace = if estimated > 0 {
        (actual as f64 / estimated as f64).clamp(0.25, 4.0)
    } else {
        1.0
    };
    let forecast_ms = now_ms + (remaining as f64 * pace * 1000.0) as i64;
    let late = !terminal && run.window_end.is_some_and(|e| forecast_ms > e);
    let forecast = if terminal {
        String::new()
    } else if late {
        format!(
            "{} — {} after the window closes",
            fmt_time(ms_to_secs(forecast_ms)),
            fmt_duration(ms_to_secs(
                forecast_ms - run.window_end.unwrap_or(forecast_ms)
            ))
        )
    } else {
        fmt_time(ms_to_secs(forecast_ms))
    };
    let opens_in = match run.window_start {
        Some(a) if a > now_ms && !terminal => {
            words::waited(ms_to_secs(a - now_ms)).replace("under a minute", "less than a minute")
        }
        _ => String::new(),
    };
    let st = run.status;
    let is_op = viewer.role.allows(Role::Operator);
    RunHeader {
        id: run.id.clone(),
        name: run_name(run),
        status: st.as_str(),
        status_words: words::run_status(st),
        blocked_on: attention::blocked_on(run, steps, now_ms),
        started: started.is_some(),
        opens_in,
        late,
        requester: run.requester.clone(),
        approved_by: run.state.approved_by.clone().unwrap_or_default(),
        change_ticket: run.change_ticket.clone(),
        runbook: run.runbook.clone(),
        inventory: run.inventory.clone(),
        done,
        total,
        percent: (done * 100).checked_div(total).unwrap_or(0),
        elapsed,
        planned: fmt_duration(planned),
        window,
        forecast,
        reason: run.state.reason.clone().unwrap_or_default(),
        watching: Watching {
            names: watching.to_vec(),
            oob: false,
        },
        can_approve_start: st == RunStatus::AwaitingStartApproval
            && viewer.role.allows(Role::Approver)
            && !viewer.is_requester,
        can_submit: st == RunStatus::Draft && is_op && viewer.is_requester,
        can_pause: st == RunStatus::Running && is_op,
        can_resume: st == RunStatus::Paused && is_op,
        can_abort: matches!(
            st,
            RunStatus::Draft
                | RunStatus::AwaitingStartApproval
                | RunStatus::Running
                | RunStatus::Paused
                | RunStatus::Failed
        ) && is_op,
        can_recover: matches!(st, RunStatus::Failed | RunStatus::Aborted)
            && run.runbook == "upgrade-8.11"
            && is_op,
        can_undo: matches!(
            st,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Aborted
        ) && is_op,
        terminal,
        csrf: viewer.csrf.clone(),
        oob: false,
    }
}

pub fn step_card(
    run: &RunRecord,
    step: &StepRecord,
    viewer: &Viewer,
    tail: Option<&StepTail>,
) -> StepCard {
    let s = &step.state;
    let st = step.status;
    let run_open = matches!(
        run.status,
        RunStatus::Running | RunStatus::Paused | RunStatus::Failed | RunStatus::Undoing
    );
    let is_op = viewer.role.allows(Role::Operator);
    let is_approver = viewer.role.allows(Role::Approver);
    let finished = st.is_terminal();
    let duration = match s.dispatched_at {
        Some(d) if finished => format!("took {}", fmt_duration(ms_to_secs(step.updated_at - d))),
        Some(_) => "in progress".into(),
        None => String::new(),
    };
    let evidence = s
        .evidence
        .as_ref()
        .map(|e| serde_json::to_string_pretty(e).unwrap_or_default())
        .unwrap_or_default();
    StepCard {
        run_id: run.id.clone(),
        dom_id: step_dom_id(step),
        id: step.id.clone(),
        title: step.spec.title.clone(),
        section: step.spec.section.clone(),
        phase: step.spec.phase.clone(),
        kind: step.spec.kind.as_str(),
        host: step.spec.host.clone().unwrap_or_default(),
        status: st.as_str(),
        status_words: words::step_status(st),
        attempt: step.attempt,
        attempt_note: if step.attempt > 1 {
            format!("attempt {}", step.attempt)
        } else {
            String::new()
        },
        started: s
            .dispatched_at
            .map(|d| fmt_time(ms_to_secs(d)))
            .unwrap_or_default(),
        duration,
        estimate: fmt_duration(step.spec.estimate_secs as i64),
        instructions: step.spec.instructions.clone(),
        approvals: s
            .approvals
            .iter()
            .map(|a| {
                format!(
                    "{} at {}: {}",
                    a.actor,
                    fmt_time(ms_to_secs(a.at)),
                    a.comment
                )
            })
            .collect(),
        claimed_by: s.claimed_by.clone().unwrap_or_default(),
        note: s.note.clone().unwrap_or_default(),
        last_error: s.last_error.clone().unwrap_or_default(),
        evidence,
        log: tail
            .map(|t| {
                let skip = t.lines.len().saturating_sub(LOG_TAIL);
                t.lines[skip..].iter().map(LogRow::of).collect()
            })
            .unwrap_or_default(),
        log_hidden: tail
            .map(|t| t.total - (t.lines.len().min(LOG_TAIL) as i64))
            .unwrap_or(0),
        content_hash: step.content_hash.clone(),
        can_approve: run_open
            && st == StepStatus::AwaitingApproval
            && is_approver
            && !viewer.is_requester
            && !s.gate_lapsed,
        can_claim: run_open
            && st == StepStatus::AwaitingOperator
            && is_op
            && s.claimed_by.is_none(),
        can_complete: run_open
            && st == StepStatus::AwaitingOperator
            && is_op
            && s.claimed_by.is_some(),
        can_retry: run_open
            && matches!(st, StepStatus::Failed | StepStatus::OutcomeUnknown)
            && is_op,
        can_skip: run_open
            && matches!(
                st,
                StepStatus::Failed
                    | StepStatus::Pending
                    | StepStatus::Ready
                    | StepStatus::AwaitingOperator
            )
            && is_approver
            && step.spec.kind != StepKind::Approval,
        can_resolve: run_open && st == StepStatus::OutcomeUnknown && is_op,
        compact: matches!(
            st,
            StepStatus::Pending
                | StepStatus::Succeeded
                | StepStatus::Skipped
                | StepStatus::Cancelled
        ),
        csrf: viewer.csrf.clone(),
        oob: false,
    }
}

/// Cards grouped by phase in plan order (a phase appears once, where its first step is).
pub fn phases(
    run: &RunRecord,
    steps: &[StepRecord],
    viewer: &Viewer,
    logs: &HashMap<String, StepTail>,
) -> Vec<Phase> {
    let mut out: Vec<Phase> = Vec::new();
    // Joins (plan expansion's barriers) are order, not work: no card.
    for step in steps.iter().filter(|s| !s.spec.is_join()) {
        let card = step_card(run, step, viewer, logs.get(&step.id));
        match out.iter_mut().find(|p| p.name == step.spec.phase) {
            Some(p) => p.cards.push(card),
            None => out.push(Phase {
                name: step.spec.phase.clone(),
                cards: vec![card],
            }),
        }
    }
    out
}
