//! Plain words for run and step statuses, as a person reads them on a page. The stored codes
//! (`awaiting_start_approval`) stay in the JSON API, the CSS classes and `data-status`
//! attributes; everything a person reads goes through here, so one table says what each state
//! means and the pages never drift apart.

use crate::engine::machine::{RunStatus, StepStatus};

/// What a run's status means, in a few words.
pub fn run_status(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Draft => "draft, not yet submitted",
        RunStatus::AwaitingStartApproval => "waiting for start approval",
        RunStatus::Running => "running",
        RunStatus::Paused => "paused",
        RunStatus::Succeeded => "finished: succeeded",
        RunStatus::Failed => "stopped: a step failed",
        RunStatus::Aborted => "aborted",
        RunStatus::Undoing => "undoing",
        RunStatus::Undone => "undone",
    }
}

/// A run whose start is approved and whose window has not opened yet (its stored status is
/// `running`; it dispatches nothing until the window opens).
pub const SCHEDULED: &str = "scheduled: starts when the window opens";

/// The status code and words a page shows for a run at `now`: `scheduled` before its window
/// opens, else its stored status.
pub fn run_status_at(
    status: RunStatus,
    window_start: Option<i64>,
    now_ms: i64,
) -> (&'static str, &'static str) {
    if crate::engine::machine::gating::scheduled(status, window_start, now_ms) {
        ("scheduled", SCHEDULED)
    } else {
        (status.as_str(), run_status(status))
    }
}

/// A paused run whose gate an approver denied.
pub const ON_HOLD: &str = "on hold: a gate was denied";

/// [`run_status_at`] for a stored run: also `on_hold` for a run a denied gate paused.
pub fn run_words(
    run: &crate::engine::store::RunRecord,
    now_ms: i64,
) -> (&'static str, &'static str) {
    if run.status == RunStatus::Paused && run.state.on_hold.is_some() {
        ("on_hold", ON_HOLD)
    } else {
        run_status_at(run.status, run.window_start, now_ms)
    }
}

/// A gate an approver denied (stored as a failed step; the run is on hold).
pub const DENIED: &str = "denied";

/// What a step's status means, in a few words.
pub fn step_status(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Pending => "not started",
        StepStatus::Ready => "about to start",
        StepStatus::AwaitingApproval => "waiting for approval",
        StepStatus::AwaitingOperator => "waiting for a person",
        StepStatus::Dispatched => "sent to the server",
        StepStatus::Running => "running",
        StepStatus::Verifying => "checking the result",
        StepStatus::Succeeded => "done",
        StepStatus::Failed => "failed",
        StepStatus::Skipped => "skipped",
        StepStatus::Cancelled => "cancelled",
        StepStatus::OutcomeUnknown => "outcome unknown",
    }
}

/// `3 min`, `1 h 05 min`, `under a minute`: how long something has waited, for a glance.
pub fn waited(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => "under a minute".into(),
        60..=3599 => format!("{} min", s / 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_words_without_underscores() {
        for s in RunStatus::ALL {
            assert!(!run_status(s).contains('_'), "{s:?}");
        }
        for s in StepStatus::ALL {
            assert!(!step_status(s).contains('_'), "{s:?}");
        }
    }

    #[test]
    fn a_running_run_before_its_window_reads_scheduled() {
        assert_eq!(
            run_status_at(RunStatus::Running, Some(10_000), 5_000),
            ("scheduled", SCHEDULED)
        );
        assert_eq!(
            run_status_at(RunStatus::Running, Some(10_000), 10_000),
            ("running", "running")
        );
        assert_eq!(
            run_status_at(RunStatus::AwaitingStartApproval, Some(10_000), 5_000).0,
            "awaiting_start_approval"
        );
    }

    #[test]
    fn waits_read_as_minutes_and_hours() {
        assert_eq!(waited(5), "under a minute");
        assert_eq!(waited(185), "3 min");
        assert_eq!(waited(3900), "1 h 05 min");
    }
}
