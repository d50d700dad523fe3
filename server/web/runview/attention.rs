//! "Needs attention": what in a run waits for a person — the start approval, each open gate and
//! manual task, each failed step and each step whose outcome is unknown — with who may act, how
//! long it has waited and the controls the viewer may use, right there at the top of the run page.
//!
//! Who may act is not decided here: the controls come from [`super::step_card`] (the same flags
//! the step cards use, which the engine enforces again on every post). This module only gathers
//! and words them, so the strip and the cards never disagree.

use askama::Template;

use super::{step_card, step_dom_id, Viewer};
use crate::engine::machine::gating;
use crate::engine::machine::{RunStatus, StepStatus};
use crate::engine::store::{RunRecord, StepRecord};
use crate::knowledge::plan::StepKind;
use crate::knowledge::role::Role;
use crate::web::views::fmt_time;
use crate::web::words;

/// One thing waiting for a person.
pub struct Item {
    /// The step's id (empty for the start approval).
    pub step_id: String,
    /// The step card's DOM id, to jump to it (and to swap it after an htmx post).
    pub dom_id: String,
    /// What kind of wait: "Approval gate", "Manual task", "Failed step", "Outcome unknown".
    pub what: &'static str,
    pub title: String,
    pub host: String,
    /// The status code (for CSS) and its plain words.
    pub status: &'static str,
    pub status_words: &'static str,
    /// Who may act, in words ("an approver other than olga · 1 of 2 approvals given").
    pub who: String,
    /// How long it has waited ("3 min") and since when (UTC, for the hover title).
    pub waited: String,
    pub since: String,
    pub last_error: String,
    pub claimed_by: String,
    pub content_hash: String,
    pub can_approve: bool,
    pub can_claim: bool,
    pub can_complete: bool,
    pub can_retry: bool,
    pub can_resolve: bool,
    pub can_skip: bool,
    /// A denied gate (the run is on hold): the three choices — ask again, abort, undo.
    pub can_ask_again: bool,
    pub can_abort: bool,
    pub can_undo: bool,
}

impl Item {
    /// The viewer can do something about it.
    pub fn is_mine(&self) -> bool {
        self.can_approve
            || self.can_claim
            || self.can_complete
            || self.can_retry
            || self.can_resolve
            || self.can_ask_again
    }
}

#[derive(Template)]
#[template(path = "partials/attention.html")]
pub struct Attention {
    pub run_id: String,
    pub items: Vec<Item>,
    /// How many of the items the viewer can act on (the tab title's count).
    pub mine: usize,
    /// The start approval waits and this viewer may give it (the form is in the header).
    pub start_waits: bool,
    pub start_is_mine: bool,
    pub start_who: String,
    pub start_waited: String,
    /// The change window, when it needs saying: scheduled, the forecast passes its end, or the
    /// run holds at its end (see [`window_note`]).
    pub window_note: String,
    /// The viewer may extend the window (the policy's `extend_window`).
    pub can_extend: bool,
    pub csrf: String,
    pub oob: bool,
}

/// What the change window means for the run now, in a sentence; empty when nothing needs saying.
pub fn window_note(run: &RunRecord, steps: &[StepRecord], now_ms: i64) -> String {
    let end = gating::window_end(&run.state, run.window_end);
    if gating::scheduled(run.status, run.window_start, now_ms) {
        return format!(
            "Scheduled: nothing starts before the change window opens at {}.",
            fmt_time(run.window_start.unwrap_or(now_ms).div_euclid(1000))
        );
    }
    if let (Some(held), Some(e)) = (&run.state.window_held, end) {
        if held.end == e && now_ms >= e && run.status == RunStatus::Running {
            let title = steps
                .iter()
                .find(|s| s.id == held.step_id)
                .map(|s| s.spec.title.clone())
                .unwrap_or_else(|| held.step_id.clone());
            return format!(
                "The change window ended at {}: the run holds before '{title}' (it would stop services or start a new phase) until an approver other than {} extends the window, or the run is aborted or undone. Steps already under way, and the rest of the phase under way, may finish.",
                fmt_time(e.div_euclid(1000)),
                run.requester
            );
        }
    }
    let active = matches!(
        run.status,
        RunStatus::Running | RunStatus::Paused | RunStatus::Failed
    );
    match end {
        Some(e) if active && run.state.window_warned == Some(e) => format!(
            "Warning: the forecast finish passes the end of the change window ({}). An approver other than {} may extend it; at the end the run holds before the next step that stops services or starts a phase.",
            fmt_time(e.div_euclid(1000)),
            run.requester
        ),
        _ => String::new(),
    }
}

fn who_for(run: &RunRecord, step: &StepRecord) -> String {
    if step.state.denied_by.is_some() {
        return format!(
            "an operator asks again (then an approver other than {} and the asker decides), or aborts or undoes the run",
            run.requester
        );
    }
    match step.status {
        StepStatus::AwaitingApproval => {
            let (role, quorum) = step
                .spec
                .gate
                .as_ref()
                .map(|g| (g.role, g.quorum.max(1)))
                .unwrap_or((Role::Approver, 1));
            let given = step.state.approvals.len();
            let mut s = format!("an {role} other than {}", run.requester);
            if quorum > 1 {
                s.push_str(&format!(" · {given} of {quorum} approvals given"));
                if given > 0 {
                    let names: Vec<&str> = step
                        .state
                        .approvals
                        .iter()
                        .map(|a| a.actor.as_str())
                        .collect();
                    s.push_str(&format!(" (by {})", names.join(", ")));
                }
            }
            s
        }
        StepStatus::AwaitingOperator => match &step.state.claimed_by {
            Some(c) => format!("{c} (claimed it)"),
            None => "any operator".into(),
        },
        _ => "an operator (retry or resolve), an approver (skip)".into(),
    }
}

fn what_for(step: &StepRecord) -> &'static str {
    if step.state.denied_by.is_some() {
        return "Denied gate — the run is on hold";
    }
    match step.status {
        StepStatus::AwaitingApproval => "Approval gate",
        StepStatus::AwaitingOperator => "Manual task",
        StepStatus::OutcomeUnknown => "Outcome unknown",
        _ => "Failed step",
    }
}

/// Whether a step waits for a person at all.
pub fn waits_for_person(step: &StepRecord) -> bool {
    matches!(
        step.status,
        StepStatus::AwaitingApproval
            | StepStatus::AwaitingOperator
            | StepStatus::Failed
            | StepStatus::OutcomeUnknown
    ) && step.undo_of.is_none()
}

/// When the step started waiting: the gate's opening, else its last change.
pub fn waiting_since(step: &StepRecord) -> i64 {
    step.state.gate_opened_at.unwrap_or(step.updated_at)
}

/// The open items of a run, gates first, then manual tasks, then failures, each oldest first.
pub fn attention(run: &RunRecord, steps: &[StepRecord], viewer: &Viewer, now_ms: i64) -> Attention {
    let mut waiting: Vec<&StepRecord> = if run.status.is_terminal() {
        Vec::new()
    } else {
        steps.iter().filter(|s| waits_for_person(s)).collect()
    };
    let rank = |s: &StepRecord| match s.status {
        _ if s.state.denied_by.is_some() => 0,
        StepStatus::AwaitingApproval => 0,
        StepStatus::AwaitingOperator => 1,
        StepStatus::OutcomeUnknown => 2,
        _ => 3,
    };
    waiting.sort_by_key(|s| (rank(s), waiting_since(s)));
    let items: Vec<Item> = waiting
        .into_iter()
        .map(|s| {
            let card = step_card(run, s, viewer, None);
            let since = waiting_since(s);
            Item {
                step_id: s.id.clone(),
                dom_id: step_dom_id(s),
                what: what_for(s),
                title: s.spec.title.clone(),
                host: s.spec.host.clone().unwrap_or_default(),
                status: card.status,
                status_words: card.status_words,
                who: who_for(run, s),
                waited: words::waited((now_ms - since).div_euclid(1000)),
                since: fmt_time(since.div_euclid(1000)),
                last_error: s.state.last_error.clone().unwrap_or_default(),
                claimed_by: s.state.claimed_by.clone().unwrap_or_default(),
                content_hash: s.content_hash.clone(),
                can_approve: card.can_approve,
                can_claim: card.can_claim,
                can_complete: card.can_complete,
                can_retry: card.can_retry,
                can_resolve: card.can_resolve,
                can_skip: card.can_skip && s.spec.kind != StepKind::Approval,
                can_ask_again: card.can_ask_again,
                can_abort: s.state.denied_by.is_some()
                    && viewer.may_on_run(run, crate::engine::policy::Control::Abort),
                can_undo: s.state.denied_by.is_some()
                    && run.state.on_hold.as_deref() == Some(s.id.as_str())
                    && viewer.may_on_run(run, crate::engine::policy::Control::Undo),
            }
        })
        .collect();
    let start_waits = run.status == RunStatus::AwaitingStartApproval;
    let start_is_mine =
        start_waits && viewer.may_on_run(run, crate::engine::policy::Control::ApproveStart);
    let mine = items.iter().filter(|i| i.is_mine()).count() + usize::from(start_is_mine);
    let window_note = window_note(run, steps, now_ms);
    let can_extend = !window_note.is_empty()
        && matches!(
            run.status,
            RunStatus::AwaitingStartApproval
                | RunStatus::Running
                | RunStatus::Paused
                | RunStatus::Failed
        )
        && viewer.may_on_run(run, crate::engine::policy::Control::ExtendWindow);
    Attention {
        window_note,
        can_extend,
        run_id: run.id.clone(),
        mine,
        start_waits,
        start_is_mine,
        start_who: match gating::blocking(&run.state).len() {
            0 => format!("an approver other than {}", run.requester),
            n => format!(
                "an approver other than {} — first, {n} preflight error(s) must be fixed or overridden (see Preflight for the start)",
                run.requester
            ),
        },
        start_waited: words::waited((now_ms - run.updated_at).div_euclid(1000)),
        items,
        csrf: viewer.csrf.clone(),
        oob: false,
    }
}

/// What the run is blocked on, for its status line: "waiting for approval: Approve stopping
/// production services — 3 min". Empty when nothing waits for a person.
pub fn blocked_on(run: &RunRecord, steps: &[StepRecord], now_ms: i64) -> String {
    if run.status.is_terminal() {
        return String::new();
    }
    if gating::scheduled(run.status, run.window_start, now_ms) {
        return format!(
            "waits for the change window to open — in {}",
            words::waited((run.window_start.unwrap_or(now_ms) - now_ms).div_euclid(1000))
        );
    }
    if let (Some(held), Some(e)) = (
        &run.state.window_held,
        gating::window_end(&run.state, run.window_end),
    ) {
        if held.end == e && now_ms >= e && run.status == RunStatus::Running {
            return "held at the change window's end — waits for an extension".to_string();
        }
    }
    if let (RunStatus::Paused, Some(gate)) = (run.status, &run.state.on_hold) {
        let title = steps
            .iter()
            .find(|s| &s.id == gate)
            .map(|s| s.spec.title.clone())
            .unwrap_or_else(|| gate.clone());
        return format!("on hold: the gate '{title}' was denied — ask again, abort or undo");
    }
    if run.status == RunStatus::AwaitingStartApproval {
        return format!(
            "waiting for start approval — {}",
            words::waited((now_ms - run.updated_at).div_euclid(1000))
        );
    }
    let first = |st: StepStatus| {
        steps
            .iter()
            .filter(|s| s.status == st && s.undo_of.is_none())
            .min_by_key(|s| waiting_since(s))
    };
    let (label, step) = if let Some(s) = first(StepStatus::AwaitingApproval) {
        ("waiting for approval", s)
    } else if let Some(s) = first(StepStatus::AwaitingOperator) {
        ("waiting for a person", s)
    } else if let Some(s) = first(StepStatus::OutcomeUnknown) {
        ("outcome unknown, a person must decide", s)
    } else if let Some(s) = first(StepStatus::Failed) {
        ("a step failed", s)
    } else {
        return String::new();
    };
    format!(
        "{label}: {} — {}",
        step.spec.title,
        words::waited((now_ms - waiting_since(step)).div_euclid(1000))
    )
}
