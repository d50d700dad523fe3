//! Confirmation pages for the dangerous controls — pause, abort, undo, skip. A `GET` of a
//! control's own address (`/runs/ID/abort`, `/runs/ID/steps/STEP/skip`) answers a page saying
//! what will happen, with the reason field and the one button that does it; the run page only
//! links here. So the confirmation works without JavaScript, and a stray click on the run page
//! never aborts a change window. The `POST` behind the button is the ordinary control.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;

use crate::engine::machine::{RunStatus, StepStatus};
use crate::engine::Store;
use crate::web::auth::{CurrentUser, Role};
use crate::web::runview::run_name;
use crate::web::views::{html, Chrome};
use crate::web::{words, AppError};

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub chrome: Chrome,
    pub run_id: String,
    pub run_name: String,
    pub heading: String,
    /// What will happen, one sentence per line.
    pub effects: Vec<String>,
    /// Where the button posts.
    pub action: String,
    /// The text field the control needs (`reason`, `justification`) and its label.
    pub field: &'static str,
    pub label: &'static str,
    pub button: String,
    /// A refusal to show instead of the form (the run is not in a state the control fits).
    pub refused: String,
}

/// `GET /runs/{id}/{action}` for pause, abort and undo.
pub async fn run_control(
    State(store): State<Store>,
    me: CurrentUser,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let (heading, effects, button): (&str, Vec<&str>, &str) = match action.as_str() {
        "pause" => (
            "Pause this run?",
            vec![
                "No new step starts until someone resumes the run.",
                "Steps already running on a server finish; nothing is stopped half-way.",
                "The change window keeps running while the run is paused.",
            ],
            "Pause the run",
        ),
        "abort" => (
            "Abort this run?",
            vec![
                "No further step starts, ever: an aborted run cannot be resumed.",
                "What was already changed on the servers stays changed; use Undo afterwards to reverse the reversible steps, or Recover for an upgrade.",
                "The servers the run holds are released for other runs.",
            ],
            "Abort the run",
        ),
        "undo" => (
            "Undo the reversible steps?",
            vec![
                "Lockstep runs the undo of every reversible step that succeeded, newest first, on the same servers.",
                "Steps that cannot be reversed (Setup, backups) are left as they are.",
                "The run's status becomes undoing, then undone.",
            ],
            "Undo the reversible steps",
        ),
        _ => return Err(AppError::NotFound(format!("no run action `{action}`"))),
    };
    me.require(Role::Operator)?;
    let run = store.run(&id).await?;
    let fits = match action.as_str() {
        "pause" => run.status == RunStatus::Running,
        "abort" => matches!(
            run.status,
            RunStatus::Draft
                | RunStatus::AwaitingStartApproval
                | RunStatus::Running
                | RunStatus::Paused
                | RunStatus::Failed
        ),
        _ => matches!(
            run.status,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Aborted
        ),
    };
    html(&ConfirmPage {
        chrome: Chrome::new(&me, "runs"),
        run_name: run_name(&run),
        heading: heading.into(),
        effects: effects.into_iter().map(String::from).collect(),
        action: format!("/runs/{id}/{action}"),
        field: "reason",
        label: "Reason (recorded in the audit log)",
        button: button.into(),
        refused: if fits {
            String::new()
        } else {
            format!(
                "The run is {}: this control does not apply now.",
                words::run_status(run.status)
            )
        },
        run_id: id,
    })
}

/// `GET /runs/{id}/steps/{step}/{action}`: only skip asks for confirmation.
pub async fn step_control(
    State(store): State<Store>,
    me: CurrentUser,
    Path((id, step_id, action)): Path<(String, String, String)>,
) -> Result<Response, AppError> {
    if action != "skip" {
        return Err(AppError::NotFound(format!(
            "no confirmation page for `{action}`; it is a form post"
        )));
    }
    me.require(Role::Approver)?;
    let run = store.run(&id).await?;
    let step = store.step(&id, &step_id).await?;
    let fits = matches!(
        step.status,
        StepStatus::Failed | StepStatus::Pending | StepStatus::Ready | StepStatus::AwaitingOperator
    );
    let host = step
        .spec
        .host
        .as_deref()
        .map(|h| format!(" on {h}"))
        .unwrap_or_default();
    html(&ConfirmPage {
        chrome: Chrome::new(&me, "runs"),
        run_name: run_name(&run),
        heading: format!("Skip “{}”{host}?", step.spec.title),
        effects: vec![
            "The step is recorded as skipped and never runs; Lockstep does not check its result."
                .into(),
            "The steps that depend on it may start at once, in plan order.".into(),
            "Your justification is recorded in the audit log and the change record.".into(),
        ],
        action: format!("/runs/{id}/steps/{step_id}/skip"),
        field: "justification",
        label: "Justification",
        button: "Skip the step".into(),
        refused: if fits {
            String::new()
        } else {
            format!(
                "The step is {}: it cannot be skipped now.",
                words::step_status(step.status)
            )
        },
        run_id: id,
    })
}
