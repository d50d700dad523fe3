//! Runs: the list, the run page (the heart of the dashboard), and every control on it. Each
//! control is a plain form post that redirects back (works without JavaScript); when htmx sends
//! it, the answer is the updated partial alone. Roles and four-eyes are enforced by the engine;
//! the checks here only fail early with the same words.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use std::sync::Arc;

use crate::engine::machine::{RunEvent, RunStatus, StepEvent};
use crate::engine::store::{RunRecord, StepRecord};
use crate::engine::Store;
use crate::web::auth::{CurrentUser, Role};
use crate::web::live::Live;
use crate::web::runview::{self, Phase, RunHeader, StepCard, Viewer};
use crate::web::views::{fmt_time, html, see_other, Chrome};
use crate::web::{AppError, Core};

pub struct RunRow {
    pub id: String,
    pub name: String,
    pub status: &'static str,
    pub status_words: &'static str,
    pub runbook: String,
    pub inventory: String,
    pub change_ticket: String,
    pub requester: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "runs.html")]
pub struct RunsPage {
    pub chrome: Chrome,
    pub runs: Vec<RunRow>,
}

pub fn run_row(r: &RunRecord) -> RunRow {
    RunRow {
        id: r.id.clone(),
        name: runview::run_name(r),
        status: r.status.as_str(),
        status_words: if r.state.on_hold.is_some() && r.status == RunStatus::Paused {
            crate::web::words::ON_HOLD
        } else {
            crate::web::words::run_status(r.status)
        },
        runbook: r.runbook.clone(),
        inventory: r.inventory.clone(),
        change_ticket: r.change_ticket.clone(),
        requester: r.requester.clone(),
        created: fmt_time(r.created_at.div_euclid(1000)),
    }
}

pub async fn list(State(store): State<Store>, me: CurrentUser) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let runs = store.runs().await?;
    html(&RunsPage {
        chrome: Chrome::new(&me, "runs"),
        runs: runs.iter().map(run_row).collect(),
    })
}

pub struct CommentRow {
    pub author: String,
    pub at: String,
    pub step: String,
    pub text: String,
}

#[derive(Template)]
#[template(path = "partials/comments.html")]
pub struct Comments {
    pub comments: Vec<CommentRow>,
    pub oob: bool,
}

#[derive(Template)]
#[template(path = "run.html")]
pub struct RunPage {
    pub chrome: Chrome,
    pub header: RunHeader,
    pub attention: runview::attention::Attention,
    /// The run's preflight beside "Approve start": blocking errors, overrides, unknowns.
    pub preflight: runview::gate::PreflightGate,
    /// The filter the page shows (from the query string) and the choices for its form.
    pub filter: RunFilter,
    pub hosts: Vec<String>,
    pub phase_names: Vec<String>,
    /// Cards left out by the filter.
    pub hidden: usize,
    pub phases: Vec<Phase>,
    pub comments: Comments,
    pub can_comment: bool,
    /// (step id, what a person reads: title on host) for the comment form's step choice.
    pub step_ids: Vec<(String, String)>,
    pub timeline: runview::timeline::Timeline,
    pub deliveries: Vec<runview::deliveries::DeliveryRow>,
    /// The newest event the page shows; the live stream starts after it.
    pub after: i64,
}

fn viewer(me: &CurrentUser, run: &RunRecord) -> Viewer {
    // Persons, not account names: the requester's second account is the requester.
    let actor = me.actor();
    Viewer {
        role: me.role(),
        is_requester: actor.person() == run.state.requester_person(),
        person: Some(actor.person().to_string()),
        csrf: me.csrf_token().to_string(),
    }
}

async fn comments(state: &Core, run_id: &str) -> Result<(Comments, i64), AppError> {
    let events = state.store.run_events(run_id).await?;
    let last = events.last().map(|e| e.id).unwrap_or(0);
    let comments = events
        .iter()
        .filter(|e| e.kind == crate::engine::audit::EventKind::Comment)
        .map(|e| CommentRow {
            author: e.actor.clone(),
            at: crate::web::views::Stamp::at(e.at).to_string(),
            step: e.step_id.clone().unwrap_or_default(),
            text: e
                .payload
                .get("text")
                .and_then(|t| t.as_str())
                .unwrap_or("")
                .to_string(),
        })
        .collect();
    Ok((
        Comments {
            comments,
            oob: false,
        },
        last,
    ))
}

/// The run page's filter, from its query string (so it works without JavaScript and links can
/// be shared): `show` = mine | waiting | running | failed, `host`, `phase`.
#[derive(Deserialize, Default, Clone)]
pub struct RunFilter {
    #[serde(default)]
    pub show: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub phase: String,
}

impl RunFilter {
    fn check(&self) -> Result<(), AppError> {
        match self.show.as_str() {
            "" | "all" | "mine" | "waiting" | "running" | "failed" => Ok(()),
            other => Err(AppError::BadRequest(format!(
                "show: `{}` is not a filter; choose all, mine, waiting, running or failed",
                other.chars().take(40).collect::<String>()
            ))),
        }
    }

    pub fn is_set(&self) -> bool {
        !matches!(self.show.as_str(), "" | "all") || !self.host.is_empty() || !self.phase.is_empty()
    }

    fn keeps(&self, card: &StepCard, me: &str) -> bool {
        let shown = match self.show.as_str() {
            "mine" => card.is_actionable() || card.claimed_by == me,
            "waiting" => matches!(
                card.status,
                "awaiting_approval" | "awaiting_operator" | "denied"
            ),
            "running" => matches!(card.status, "dispatched" | "running" | "verifying"),
            "failed" => matches!(card.status, "failed" | "outcome_unknown"),
            _ => true,
        };
        shown
            && (self.host.is_empty() || card.host == self.host)
            && (self.phase.is_empty() || card.phase == self.phase)
    }
}

pub async fn page(
    State(state): State<Core>,
    State(live): State<Arc<Live>>,
    me: CurrentUser,
    Path(id): Path<String>,
    axum::extract::Query(filter): axum::extract::Query<RunFilter>,
) -> Result<Response, AppError> {
    filter.check()?;
    me.require(Role::Viewer)?;
    let run = state.store.run(&id).await?;
    let steps = state.store.steps(&id).await?;
    let v = viewer(&me, &run);
    let mut watching = live.watching(&id);
    if !watching.iter().any(|w| w == me.name()) {
        watching.push(me.name().to_string());
    }
    let header = runview::run_header(&run, &steps, &v, state.clock.now(), &watching);
    let (comments, after) = comments(&state, &id).await?;
    let logs = live.step_log().tails(&id, runview::LOG_TAIL).await?;
    let deliveries = crate::notify::deliveries(&state.pool, &id).await?;
    let attention = runview::attention::attention(&run, &steps, &v, state.clock.now());
    let mut phases = runview::phases(&run, &steps, &v, &logs);
    let phase_names: Vec<String> = phases.iter().map(|p| p.name.clone()).collect();
    let mut hosts: Vec<String> = steps.iter().filter_map(|s| s.spec.host.clone()).collect();
    hosts.sort();
    hosts.dedup();
    let mut hidden = 0;
    if filter.is_set() {
        for p in &mut phases {
            let before = p.cards.len();
            p.cards.retain(|c| filter.keeps(c, me.name()));
            hidden += before - p.cards.len();
        }
        phases.retain(|p| !p.cards.is_empty());
    }
    html(&RunPage {
        chrome: Chrome::new(&me, "runs"),
        header,
        preflight: runview::gate::preflight_gate(&run, &v),
        attention,
        filter,
        hosts,
        phase_names,
        hidden,
        phases,
        comments,
        can_comment: me.role().allows(Role::Operator),
        step_ids: steps
            .iter()
            .map(|s| {
                let on = s
                    .spec
                    .host
                    .as_deref()
                    .map(|h| format!(" on {h}"))
                    .unwrap_or_default();
                (s.id.clone(), format!("{}{on}", s.spec.title))
            })
            .collect(),
        timeline: runview::timeline::gantt(&run, &steps, state.clock.now()),
        deliveries: runview::deliveries::rows(&deliveries),
        after,
    })
}

fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

async fn header_or_redirect(
    state: &Core,
    live: &Live,
    me: &CurrentUser,
    run_id: &str,
    headers: &HeaderMap,
) -> Result<Response, AppError> {
    if !is_htmx(headers) {
        return Ok(see_other(&format!("/runs/{run_id}")));
    }
    let run = state.store.run(run_id).await?;
    let steps = state.store.steps(run_id).await?;
    let header = runview::run_header(
        &run,
        &steps,
        &viewer(me, &run),
        state.clock.now(),
        &live.watching(run_id),
    );
    html(&header)
}

async fn card_or_redirect(
    state: &Core,
    live: &Live,
    me: &CurrentUser,
    run_id: &str,
    step_id: &str,
    headers: &HeaderMap,
) -> Result<Response, AppError> {
    if !is_htmx(headers) {
        return Ok(see_other(&format!("/runs/{run_id}")));
    }
    let run = state.store.run(run_id).await?;
    let step: StepRecord = state.store.step(run_id, step_id).await?;
    let tail = live
        .step_log()
        .tail(run_id, step_id, runview::LOG_TAIL)
        .await?;
    let card: StepCard = runview::step_card(&run, &step, &viewer(me, &run), Some(&tail));
    html(&card)
}

#[derive(Deserialize, Default)]
pub struct RunForm {
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub reason: String,
    /// For `extend`: the window's new end, like 2026-11-28T01:30 (UTC).
    #[serde(default)]
    pub until: String,
    /// For `override`: the preflight finding's key (`rule@SERVER`).
    #[serde(default)]
    pub finding: String,
    /// For `override`: why this finding does not block this run.
    #[serde(default)]
    pub justification: String,
}

/// Applies a run-level control by name — submit, approve (the start), pause, resume, abort, undo,
/// extend (the window), override (a preflight finding). Who may do what is the engine's policy
/// table (`engine::policy`), checked on the transition itself; this only turns the name into the
/// engine's event, for the pages and the JSON API.
pub async fn apply_run_control(
    state: &Core,
    me: &CurrentUser,
    id: &str,
    action: &str,
    input: &RunForm,
) -> Result<(), AppError> {
    let actor = me.actor();
    let reason = input.reason.trim().to_string();
    let event = match action {
        "submit" => RunEvent::Submit { actor },
        "approve" => RunEvent::ApproveStart {
            actor,
            comment: input.comment.trim().to_string(),
        },
        "pause" => RunEvent::Pause { actor, reason },
        "resume" => RunEvent::Resume { actor },
        "abort" => RunEvent::Abort { actor, reason },
        "undo" => RunEvent::Undo { actor, reason },
        "extend" => RunEvent::ExtendWindow {
            actor,
            reason,
            until: crate::web::pages::newrun::parse_window("until", input.until.trim())?
                .ok_or_else(|| {
                    AppError::BadRequest("until: the window's new end is required".into())
                })?,
        },
        "override" => {
            let finding = input.finding.trim();
            if finding.is_empty() || finding.chars().count() > 300 {
                return Err(AppError::BadRequest(
                    "finding: name the preflight finding to override (1 to 300 characters)".into(),
                ));
            }
            RunEvent::OverrideFinding {
                actor,
                finding: finding.to_string(),
                justification: input.justification.trim().to_string(),
            }
        }
        _ => return Err(AppError::NotFound(format!("no run action `{action}`"))),
    };
    state.store.run(id).await?;
    state
        .store
        .apply_run_event(id, &event, state.clock.now())
        .await?;
    state.wake();
    Ok(())
}

/// Run-level controls: submit, approve (start), pause, resume, abort.
pub async fn control(
    State(state): State<Core>,
    State(live): State<Arc<Live>>,
    me: CurrentUser,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    Form(f): Form<RunForm>,
) -> Result<Response, AppError> {
    apply_run_control(&state, &me, &id, &action, &f).await?;
    tracing::info!(run = %id, actor = %me.name(), action = %crate::logtext::escaped(&action), "run control");
    header_or_redirect(&state, &live, &me, &id, &headers).await
}

#[derive(Deserialize, Default)]
pub struct StepForm {
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub content_hash: String,
    #[serde(default)]
    pub decision: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub justification: String,
    #[serde(default)]
    pub text: String,
}

/// Applies a step control by name (see [`step_event`]) to a step that must exist: one path for
/// the pages and the JSON API.
pub async fn apply_step_control(
    state: &Core,
    me: &CurrentUser,
    id: &str,
    step_id: &str,
    action: &str,
    form: StepForm,
) -> Result<(), AppError> {
    let event = step_event(me, action, form)?;
    state.store.step(id, step_id).await?;
    state
        .store
        .apply_step_event(id, step_id, &event, state.clock.now())
        .await?;
    state.wake();
    Ok(())
}

/// Step controls: approve/deny a gate, claim/complete a manual task, retry, skip, resolve.
pub async fn step_control(
    State(state): State<Core>,
    State(live): State<Arc<Live>>,
    me: CurrentUser,
    Path((id, step_id, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    Form(f): Form<StepForm>,
) -> Result<Response, AppError> {
    apply_step_control(&state, &me, &id, &step_id, &action, f).await?;
    tracing::info!(run = %id, step = %crate::logtext::escaped(&step_id), actor = %me.name(), action = %crate::logtext::escaped(&action), "step control");
    card_or_redirect(&state, &live, &me, &id, &step_id, &headers).await
}

/// The engine event a step control asks for. Roles and separation of duties are the engine's
/// policy table, checked on the transition; nothing is decided here.
pub fn step_event(me: &CurrentUser, action: &str, f: StepForm) -> Result<StepEvent, AppError> {
    let actor = me.actor();
    Ok(match action {
        "approve" | "deny" if action == "deny" || f.decision == "deny" => StepEvent::Reject {
            actor,
            comment: f.comment.trim().to_string(),
        },
        "approve" => StepEvent::Approve {
            actor,
            comment: f.comment.trim().to_string(),
            content_hash: f.content_hash,
        },
        "claim" => StepEvent::Claim { actor },
        "complete" => StepEvent::Complete {
            actor,
            note: f.note.trim().to_string(),
        },
        "retry" => StepEvent::Retry { actor },
        "ask_again" => StepEvent::AskAgain { actor },
        "skip" => StepEvent::Skip {
            actor,
            justification: f.justification.trim().to_string(),
        },
        "resolve" if f.decision == "failed" => StepEvent::MarkFailed {
            actor,
            reason: f.text.trim().to_string(),
        },
        "resolve" => StepEvent::MarkDone {
            actor,
            evidence: f.text.trim().to_string(),
        },
        _ => return Err(AppError::NotFound(format!("no step action `{action}`"))),
    })
}

#[derive(Deserialize)]
pub struct CommentForm {
    #[serde(default)]
    step_id: String,
    #[serde(default)]
    text: String,
}

pub async fn add_comment(
    State(state): State<Core>,
    me: CurrentUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<CommentForm>,
) -> Result<Response, AppError> {
    me.require(Role::Operator)?;
    let text = f.text.trim();
    if text.is_empty() || text.chars().count() > 4000 {
        return Err(AppError::BadRequest(
            "comment: write 1 to 4000 characters".into(),
        ));
    }
    let step = Some(f.step_id.trim()).filter(|s| !s.is_empty());
    state
        .store
        .comment(&id, step, &me.actor(), text, state.clock.now())
        .await?;
    if !is_htmx(&headers) {
        return Ok(see_other(&format!("/runs/{id}#comments")));
    }
    let (c, _) = comments(&state, &id).await?;
    Ok(html(&c)?.into_response())
}
