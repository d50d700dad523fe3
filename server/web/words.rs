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
    fn waits_read_as_minutes_and_hours() {
        assert_eq!(waited(5), "under a minute");
        assert_eq!(waited(185), "3 min");
        assert_eq!(waited(3900), "1 h 05 min");
    }
}
