//! What the run page shows, computed from the engine's records: the run header (status,
//! progress, elapsed vs planned, window) and one card per step, each with the controls the
//! engine's policy allows the viewer (`engine::policy::check`, through [`Viewer::may`]). The
//! same structs render the full page, the htmx partials and the partials pushed over
//! server-sent events, so all three always agree.

use askama::Template;

pub mod attention;
pub mod deliveries;
pub mod gate;
pub use crate::engine::forecast;
pub mod timeline;

use std::collections::HashMap;

use crate::engine::machine::{Actor, RunStatus, StepControl, StepStatus};
use crate::engine::policy::{self, Control, Parties};
use crate::engine::steplog::{LogLine, StepTail};
use crate::engine::store::{RunRecord, StepRecord};
use crate::knowledge::plan::StepKind;
use crate::web::auth::Role;
use crate::web::views::{fmt_duration, Stamp};
use crate::web::words;

/// Who is looking, as far as rendering cares: controls depend on the role and on whether the
/// viewer requested the run (four-eyes: a requester is never offered an approval).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Viewer {
    pub role: Role,
    /// The viewer is the run's requester (as a person: a second account of theirs counts).
    pub is_requester: bool,
    /// The viewer's person, on pages rendered for one session; `None` on partials pushed to
    /// every watcher with the same role (which then leave out only what the requester may not
    /// do, and show claim-bound controls to anyone with the role; the engine refuses the rest).
    pub person: Option<String>,
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
    /// How long the run still needs along its critical path ("2h 10m"); empty once it is over.
    pub remaining: String,
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
    /// Markup: [`Stamp`]s and durations only (the template marks it safe).
    pub window: String,
    /// Markup: the forecast finish as a [`Stamp`], and how far past the window's end it is.
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
    pub started: Option<Stamp>,
    pub duration: String,
    pub estimate: String,
    pub instructions: String,
    /// Who approved, when, and their whole comment.
    pub approvals: Vec<(String, Stamp, String)>,
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
    /// A denied gate: open it again for a new decision (the run is on hold until then).
    pub can_ask_again: bool,
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
    pub at: Stamp,
    pub text: String,
}

impl LogRow {
    pub fn of(line: &LogLine) -> LogRow {
        LogRow {
            at: Stamp::time_of_day(line.at),
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
            || self.can_ask_again
            || self.can_resolve
    }
}

impl Viewer {
    /// The viewer as the engine's policy sees a person: their roles and their person (for a
    /// pushed partial, the requester or "someone else").
    pub fn actor(&self, run: &RunRecord) -> Actor {
        let person = match (&self.person, self.is_requester) {
            (Some(p), _) => p.clone(),
            (None, true) => run.state.requester_person().to_string(),
            // Nobody's person: matches no requester, claimer or approver.
            (None, false) => "\u{1}another person".to_string(),
        };
        Actor::holding(person.clone(), self.role)
    }

    /// Whether the engine would let this viewer use `control` given `parties`: the same
    /// [`policy::check`] the state machines enforce on every transition, so a page never offers
    /// what the engine would refuse.
    pub fn may(&self, run: &RunRecord, control: Control, parties: &Parties<'_>) -> bool {
        policy::check(control, &self.actor(run), parties).is_ok()
    }

    /// [`Viewer::may`] for a run-level control.
    pub fn may_on_run(&self, run: &RunRecord, control: Control) -> bool {
        let parties = Parties {
            requester: run.state.requester_person(),
            ..Parties::default()
        };
        self.may(run, control, &parties)
    }

    /// Whether this viewer is `person` (always, on a pushed partial that does not know who).
    fn is(&self, person: Option<&str>) -> bool {
        match (&self.person, person) {
            (None, _) => true,
            (Some(me), Some(p)) => me == p,
            (Some(_), None) => false,
        }
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
    // The plan's own length: its critical path at the estimates (steps run side by side).
    let baseline: Vec<forecast::Task> = forecast::tasks_of(steps)
        .into_iter()
        .map(|t| forecast::Task {
            progress: forecast::Progress::Pending,
            ..t
        })
        .collect();
    let planned = ms_to_secs(forecast::forecast(&baseline, 0).finish);
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
    let stamp = |ms: i64| Stamp::at(ms).to_string();
    let window = match (run.window_start, run.window_end) {
        (Some(a), Some(b)) if now_ms < b && !terminal => format!(
            "{} – {} ({} left)",
            stamp(a),
            stamp(b),
            fmt_duration(ms_to_secs(b - now_ms.max(a)))
        ),
        (Some(a), Some(b)) => format!("{} – {}", stamp(a), stamp(b)),
        _ => "none given".into(),
    };
    // Along the critical path of what is left, each step's estimate scaled by how its finished
    // peers did (see [`forecast`]).
    let projection = forecast::forecast(&forecast::tasks_of(steps), now_ms);
    let forecast_ms = projection.finish;
    let late = !terminal && run.window_end.is_some_and(|e| forecast_ms > e);
    let forecast = if terminal {
        String::new()
    } else if late {
        format!(
            "{} — {} after the window closes",
            stamp(forecast_ms),
            fmt_duration(ms_to_secs(
                forecast_ms - run.window_end.unwrap_or(forecast_ms)
            ))
        )
    } else {
        stamp(forecast_ms)
    };
    let remaining = if terminal {
        String::new()
    } else {
        fmt_duration(ms_to_secs(projection.remaining))
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
        status: words::run_words(run, now_ms).0,
        status_words: words::run_words(run, now_ms).1,
        blocked_on: attention::blocked_on(run, steps, now_ms),
        started: started.is_some(),
        opens_in,
        late,
        remaining,
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
        // Which controls to show is the engine's policy table (`policy::check`), not a second
        // opinion here; only where the run stands is read from its status.
        can_approve_start: st == RunStatus::AwaitingStartApproval
            && viewer.may_on_run(run, Control::ApproveStart),
        can_submit: st == RunStatus::Draft
            && viewer.is_requester
            && viewer.may_on_run(run, Control::Submit),
        can_pause: st == RunStatus::Running && viewer.may_on_run(run, Control::Pause),
        can_resume: st == RunStatus::Paused
            && run.state.on_hold.is_none()
            && viewer.may_on_run(run, Control::Resume),
        can_abort: matches!(
            st,
            RunStatus::Draft
                | RunStatus::AwaitingStartApproval
                | RunStatus::Running
                | RunStatus::Paused
                | RunStatus::Failed
        ) && viewer.may_on_run(run, Control::Abort),
        can_recover: matches!(st, RunStatus::Failed | RunStatus::Aborted)
            && run.runbook == "upgrade-8.11"
            && is_op,
        can_undo: (matches!(
            st,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Aborted
        ) || (st == RunStatus::Paused && run.state.on_hold.is_some()))
            && viewer.may_on_run(run, Control::Undo),
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
    let finished = st.is_terminal();
    // The controls shown are those the engine's policy allows this viewer on this step.
    let gate_role = step
        .spec
        .gate
        .as_ref()
        .map(|g| g.role)
        .or((step.spec.kind == StepKind::Approval).then_some(Role::Approver));
    let parties = s.parties_with(run.state.requester_person(), gate_role);
    let may = |control: Control| viewer.may(run, control, &parties);
    // What the step offers in its state (one rule, in the engine), then whether the policy lets
    // this viewer use it.
    let shows = |c: StepControl| {
        run_open
            && c.offered(s, step.spec.kind, gate_role.is_some())
            && c.policy().iter().any(|p| may(*p))
    };
    let me = viewer.actor(run);
    let approved_already = viewer.person.is_some()
        && s.approvals
            .iter()
            .any(|a| a.person() == me.person() && a.content_hash == step.content_hash);
    let duration = match s.dispatched_at {
        Some(d) if finished => format!("took {}", fmt_duration(ms_to_secs(step.updated_at - d))),
        Some(_) => "in progress".into(),
        None => String::new(),
    };
    let log: Vec<&LogLine> = tail
        .map(|t| {
            let skip = t.lines.len().saturating_sub(LOG_TAIL);
            t.lines[skip..].iter().filter(|l| !l.detail).collect()
        })
        .unwrap_or_default();
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
        // A denied gate is a person's "no", not a failure: its own words and class.
        status: if s.denied_by.is_some() {
            "denied"
        } else {
            st.as_str()
        },
        status_words: if s.denied_by.is_some() {
            words::DENIED
        } else {
            words::step_status(st)
        },
        attempt: step.attempt,
        attempt_note: if step.attempt > 1 {
            format!("attempt {}", step.attempt)
        } else {
            String::new()
        },
        started: s.dispatched_at.map(Stamp::at),
        duration,
        estimate: fmt_duration(step.spec.estimate_secs as i64),
        instructions: step.spec.instructions.clone(),
        approvals: s
            .approvals
            .iter()
            .map(|a| (a.actor.clone(), Stamp::at(a.at), a.comment.clone()))
            .collect(),
        claimed_by: s.claimed_by.clone().unwrap_or_default(),
        note: s.note.clone().unwrap_or_default(),
        last_error: s.last_error.clone().unwrap_or_default(),
        evidence,
        // Lines in words only: the technical ones are on the step's own page.
        log: log.iter().copied().map(LogRow::of).collect(),
        log_hidden: tail.map(|t| t.total - log.len() as i64).unwrap_or(0),
        content_hash: step.content_hash.clone(),
        can_approve: !approved_already && shows(StepControl::Approve),
        can_claim: shows(StepControl::Claim),
        can_complete: viewer.is(s.claimer()) && shows(StepControl::Complete),
        can_retry: shows(StepControl::Retry),
        can_ask_again: shows(StepControl::AskAgain),
        can_skip: shows(StepControl::Skip),
        can_resolve: shows(StepControl::Resolve),
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
