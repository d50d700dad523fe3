//! The run state machine: draft → awaiting start approval → running ⇄ paused → succeeded | failed
//! | aborted, and from a finished run, undoing → undone.

use serde::{Deserialize, Serialize};

use super::gating::{self, FindingOverride, Preflight, WindowHeld};
use super::{require_text, Actor, Millis, Refusal};
use crate::engine::policy::{self, Control, Parties};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Draft,
    AwaitingStartApproval,
    Running,
    Paused,
    Succeeded,
    Failed,
    Aborted,
    /// Running the undo plan: the reversible steps that succeeded, in reverse order.
    Undoing,
    Undone,
}

impl RunStatus {
    pub const ALL: [RunStatus; 9] = [
        RunStatus::Draft,
        RunStatus::AwaitingStartApproval,
        RunStatus::Running,
        RunStatus::Paused,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Aborted,
        RunStatus::Undoing,
        RunStatus::Undone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Draft => "draft",
            RunStatus::AwaitingStartApproval => "awaiting_start_approval",
            RunStatus::Running => "running",
            RunStatus::Paused => "paused",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Aborted => "aborted",
            RunStatus::Undoing => "undoing",
            RunStatus::Undone => "undone",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether the driver dispatches steps of a run in this status.
    pub fn is_driving(self) -> bool {
        matches!(self, RunStatus::Running | RunStatus::Undoing)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Aborted | RunStatus::Undone
        )
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The mutable part of a run. The plan and metadata are fixed when the run is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    pub status: RunStatus,
    /// Who requested the run; never approves its start nor any of its gates (four-eyes).
    pub requester: String,
    /// The person behind the requester's account, when it differs from the account name
    /// (separation of duties compares persons; see [`RunState::requester_person`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_person: Option<String>,
    /// Who approved the start.
    pub approved_by: Option<String>,
    /// Set by a pause, cleared by resume.
    pub paused_by: Option<String>,
    pub reason: Option<String>,
    /// An undo was requested: a reopened run goes back to undoing, not forward.
    #[serde(default)]
    pub undo_requested: bool,
    /// The change window's end as extended by an approver (four-eyes); the driver starts no step
    /// after the window's end (this, else the run's own `window_end`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_extended_to: Option<Millis>,
    /// The latest preflight (run again on submit and on approve start; see `gating`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<Preflight>,
    /// Error findings approvers overrode for this run, one decision per finding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<FindingOverride>,
    /// The window end for which a "the forecast passes the end" warning was recorded (once per
    /// end: an extension that is again too short warns again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_warned: Option<Millis>,
    /// The window end at which the driver held a step that stops services or starts a phase,
    /// and that step (recorded once per end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_held: Option<WindowHeld>,
    /// On hold (a paused run with a reason): the gate an approver denied. The choices are to
    /// ask again (the gate reopens for a new decision), abort, or undo; resume is not one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_hold: Option<String>,
}

impl RunState {
    pub fn new(requester: &str) -> RunState {
        RunState {
            status: RunStatus::Draft,
            requester: requester.to_string(),
            requester_person: None,
            approved_by: None,
            paused_by: None,
            reason: None,
            undo_requested: false,
            window_extended_to: None,
            preflight: None,
            overrides: Vec::new(),
            window_warned: None,
            window_held: None,
            on_hold: None,
        }
    }

    /// A run requested by `actor` (its account and its person).
    pub fn requested_by(actor: &Actor) -> RunState {
        let mut state = RunState::new(&actor.name);
        state.requester_person = actor.person.clone();
        state
    }

    /// The person who requested the run, for separation of duties.
    pub fn requester_person(&self) -> &str {
        self.requester_person.as_deref().unwrap_or(&self.requester)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// The requester asks for the start to be approved.
    Submit {
        actor: Actor,
    },
    ApproveStart {
        actor: Actor,
        comment: String,
    },
    Pause {
        actor: Actor,
        reason: String,
    },
    Resume {
        actor: Actor,
    },
    Abort {
        actor: Actor,
        reason: String,
    },
    /// Driver: every step is succeeded or skipped.
    Completed,
    /// Driver: a step failed and nothing else can move until a person acts.
    Stalled {
        step_id: String,
    },
    /// A failed run goes on: a person retried, skipped or resolved the step that stopped it (the
    /// step event checked their role).
    Reopen {
        actor: Actor,
    },
    /// Undo the reversible steps that succeeded, in reverse order.
    Undo {
        actor: Actor,
        reason: String,
    },
    /// Move the end of the change window (four-eyes: never the requester).
    ExtendWindow {
        actor: Actor,
        until: Millis,
        reason: String,
    },
    /// Engine: preflight ran again (on submit and on approve start) with the freshest facts.
    Preflight {
        preflight: Preflight,
    },
    /// An approver other than the requester accepts one error finding for this run.
    OverrideFinding {
        actor: Actor,
        finding: String,
        justification: String,
    },
    /// Engine: the forecast finish passes the window's end (recorded once per end).
    WindowWarning {
        forecast: Millis,
        end: Millis,
    },
    /// Engine: an approver denied a gate; the run waits on hold for someone to ask again, abort
    /// or undo (not "failed": nothing went wrong, someone said no).
    Hold {
        step_id: String,
        reason: String,
    },
    /// Engine: the window has ended and the next step would stop services or start a phase;
    /// the run waits for an extension (or an abort or undo). Recorded once per end.
    WindowHold {
        step_id: String,
        end: Millis,
    },
}

impl RunEvent {
    pub fn name(&self) -> &'static str {
        match self {
            RunEvent::Submit { .. } => "submit",
            RunEvent::ApproveStart { .. } => "approve_start",
            RunEvent::Pause { .. } => "pause",
            RunEvent::Resume { .. } => "resume",
            RunEvent::Abort { .. } => "abort",
            RunEvent::Completed => "completed",
            RunEvent::Stalled { .. } => "stalled",
            RunEvent::Reopen { .. } => "reopen",
            RunEvent::Undo { .. } => "undo",
            RunEvent::ExtendWindow { .. } => "extend_window",
            RunEvent::Preflight { .. } => "preflight",
            RunEvent::Hold { .. } => "hold",
            RunEvent::OverrideFinding { .. } => "override_finding",
            RunEvent::WindowWarning { .. } => "window_warning",
            RunEvent::WindowHold { .. } => "window_hold",
        }
    }

    pub fn actor(&self) -> Option<&Actor> {
        match self {
            RunEvent::Submit { actor }
            | RunEvent::ApproveStart { actor, .. }
            | RunEvent::Pause { actor, .. }
            | RunEvent::Resume { actor }
            | RunEvent::Abort { actor, .. }
            | RunEvent::Reopen { actor }
            | RunEvent::Undo { actor, .. }
            | RunEvent::ExtendWindow { actor, .. }
            | RunEvent::OverrideFinding { actor, .. } => Some(actor),
            RunEvent::Completed
            | RunEvent::Stalled { .. }
            | RunEvent::Preflight { .. }
            | RunEvent::Hold { .. }
            | RunEvent::WindowWarning { .. }
            | RunEvent::WindowHold { .. } => None,
        }
    }
}

/// What the driver does after a run transition commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunAction {
    /// Cancel every step not yet finished (in-flight ones through their executor).
    CancelSteps,
    /// Add the undo steps and drive them.
    PlanUndo,
    /// The run holds no host any more.
    ReleaseHosts,
}

/// The policy's control for a person's run event (`None`: the driver's, or a reopen that the
/// step decision behind it was already checked for).
pub fn control_of(event: &RunEvent) -> Option<Control> {
    Some(match event {
        RunEvent::Submit { .. } => Control::Submit,
        RunEvent::ApproveStart { .. } => Control::ApproveStart,
        RunEvent::Pause { .. } => Control::Pause,
        RunEvent::Resume { .. } => Control::Resume,
        RunEvent::Abort { .. } => Control::Abort,
        RunEvent::Undo { .. } => Control::Undo,
        RunEvent::ExtendWindow { .. } => Control::ExtendWindow,
        RunEvent::OverrideFinding { .. } => Control::OverrideFinding,
        RunEvent::Completed
        | RunEvent::Stalled { .. }
        | RunEvent::Reopen { .. }
        | RunEvent::Preflight { .. }
        | RunEvent::Hold { .. }
        | RunEvent::WindowWarning { .. }
        | RunEvent::WindowHold { .. } => return None,
    })
}

/// Applies `event` to `state`. Pure.
pub fn apply(
    state: &RunState,
    event: &RunEvent,
    now: Millis,
) -> Result<(RunState, Vec<RunAction>), Refusal> {
    use RunStatus::*;
    // The role first, whatever the state: a person without it hears that (403), not 409.
    if let (Some(control), Some(actor)) = (control_of(event), event.actor()) {
        policy::require_role(control, actor, None)?;
    }
    let mut next = state.clone();
    let mut actions = Vec::new();
    let refuse = || Refusal::NotAllowed {
        what: "the run".into(),
        from: state.status.to_string(),
        event: event.name().into(),
    };
    let parties = Parties {
        requester: state.requester_person(),
        ..Parties::default()
    };
    let allowed = |control: Control, actor: &Actor| policy::check(control, actor, &parties);
    match (state.status, event) {
        (Draft, RunEvent::Submit { actor }) => {
            allowed(Control::Submit, actor)?;
            next.status = AwaitingStartApproval;
        }
        (AwaitingStartApproval, RunEvent::ApproveStart { actor, comment }) => {
            allowed(Control::ApproveStart, actor)?;
            require_text(comment, Refusal::CommentRequired)?;
            // Preflight gates the start: every failed error is fixed or overridden by someone
            // other than the requester (the store ran preflight again just before this).
            let blocking = gating::blocking(state);
            if !blocking.is_empty() {
                return Err(Refusal::PreflightBlocks {
                    findings: blocking
                        .iter()
                        .map(|f| format!("{} ({})", f.key, f.message))
                        .collect(),
                });
            }
            next.status = Running;
            next.approved_by = Some(actor.name.clone());
        }
        (Running, RunEvent::Pause { actor, reason }) => {
            allowed(Control::Pause, actor)?;
            next.status = Paused;
            next.paused_by = Some(actor.name.clone());
            next.reason = Some(reason.clone()).filter(|r| !r.trim().is_empty());
        }
        (Paused, RunEvent::Resume { .. }) if state.on_hold.is_some() => {
            return Err(Refusal::NotAllowed {
                what: "the run".into(),
                from: "on hold after a denied gate (ask again, abort or undo)".into(),
                event: event.name().into(),
            })
        }
        (Paused, RunEvent::Resume { actor }) => {
            allowed(Control::Resume, actor)?;
            next.status = Running;
            next.paused_by = None;
        }
        (
            Draft | AwaitingStartApproval | Running | Paused | Failed | Undoing,
            RunEvent::Abort { actor, reason },
        ) => {
            allowed(Control::Abort, actor)?;
            require_text(reason, Refusal::ReasonRequired)?;
            next.status = Aborted;
            next.reason = Some(reason.clone());
            actions.push(RunAction::CancelSteps);
            actions.push(RunAction::ReleaseHosts);
        }
        (Running, RunEvent::Completed) => {
            next.status = Succeeded;
            actions.push(RunAction::ReleaseHosts);
        }
        (Undoing, RunEvent::Completed) => {
            next.status = Undone;
            actions.push(RunAction::ReleaseHosts);
        }
        (Running | Undoing, RunEvent::Stalled { step_id }) => {
            next.status = Failed;
            next.reason = Some(format!("step {step_id} failed"));
        }
        (Running, RunEvent::Hold { step_id, reason }) => {
            next.status = Paused;
            next.on_hold = Some(step_id.clone());
            next.paused_by = None;
            next.reason = Some(reason.clone());
        }
        (Paused, RunEvent::Reopen { .. }) if state.on_hold.is_some() => {
            next.status = Running;
            next.on_hold = None;
            next.reason = None;
        }
        (Failed, RunEvent::Reopen { .. }) => {
            next.status = if state.undo_requested {
                Undoing
            } else {
                Running
            };
            next.reason = None;
        }
        (Paused, RunEvent::Undo { .. }) if state.on_hold.is_none() => return Err(refuse()),
        (Succeeded | Failed | Aborted | Paused, RunEvent::Undo { actor, reason }) => {
            allowed(Control::Undo, actor)?;
            require_text(reason, Refusal::ReasonRequired)?;
            next.status = Undoing;
            next.undo_requested = true;
            next.on_hold = None;
            next.reason = Some(reason.clone());
            actions.push(RunAction::PlanUndo);
        }
        (
            AwaitingStartApproval | Running | Paused | Failed,
            RunEvent::ExtendWindow {
                actor,
                until,
                reason,
            },
        ) => {
            allowed(Control::ExtendWindow, actor)?;
            require_text(reason, Refusal::ReasonRequired)?;
            if *until <= now {
                return Err(policy::violation(
                    Control::ExtendWindow,
                    actor,
                    "the new end of the window must be in the future",
                ));
            }
            next.window_extended_to = Some(*until);
            next.reason = Some(reason.clone());
        }
        (Draft | AwaitingStartApproval, RunEvent::Preflight { preflight }) => {
            next.preflight = Some(preflight.clone());
        }
        (
            Draft | AwaitingStartApproval,
            RunEvent::OverrideFinding {
                actor,
                finding,
                justification,
            },
        ) => {
            allowed(Control::OverrideFinding, actor)?;
            policy::justification(Control::OverrideFinding, actor, justification)?;
            let not = |why: &str| Refusal::NotOverridable {
                finding: finding.clone(),
                why: why.to_string(),
            };
            let found = gating::finding(state, finding)
                .ok_or_else(|| not("is not a finding of this run's latest preflight"))?;
            if !found.blocks() {
                return Err(not(
                    "does not block the start (only failed errors are overridden)",
                ));
            }
            if let Some(o) = gating::override_of(state, finding) {
                return Err(not(&format!("is already overridden by {}", o.actor)));
            }
            next.overrides.push(FindingOverride {
                finding: finding.clone(),
                message: found.message.clone(),
                actor: actor.name.clone(),
                person: actor.person.clone(),
                justification: justification.clone(),
                at: now,
            });
        }
        (Running | Paused | Failed, RunEvent::WindowWarning { end, .. })
            if state.window_warned != Some(*end) =>
        {
            next.window_warned = Some(*end);
        }
        (Running, RunEvent::WindowHold { end, step_id })
            if state.window_held.as_ref().map(|h| h.end) != Some(*end) =>
        {
            next.window_held = Some(WindowHeld {
                end: *end,
                step_id: step_id.clone(),
            });
        }
        _ => return Err(refuse()),
    }
    Ok((next, actions))
}
