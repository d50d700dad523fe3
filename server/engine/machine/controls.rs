//! The buttons a step offers: [`StepControl`], and the one rule saying which a step in a given
//! state offers at all.
//!
//! Two questions decide whether a person sees a control on a step card. *Does the step offer it
//! now?* is answered here, from the step's state alone, so the run page, the attention list and
//! any other view agree. *May this person use it?* is [`crate::engine::policy::check`] on the
//! controls of [`StepControl::policy`], the same check the machine makes when the event arrives.
//! The machine stays the authority: a control shown by mistake is still refused on use.

use serde::{Deserialize, Serialize};

use super::step::{StepState, StepStatus};
use crate::engine::policy::Control;
use crate::knowledge::plan::StepKind;

/// A control a person can use on one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepControl {
    /// Approve (or deny) an open gate.
    Approve,
    /// Take a manual task (or one handed to a person) so nobody else does it at the same time.
    Claim,
    /// Say a claimed task is done, with a note.
    Complete,
    /// Try a failed step, or one whose outcome is unknown, again.
    Retry,
    /// Open a denied gate again for a new decision.
    AskAgain,
    /// Skip a step that is not a gate, with a justification.
    Skip,
    /// Decide an unknown outcome: mark it done with evidence, or failed with a reason.
    Resolve,
}

impl StepControl {
    pub const ALL: [StepControl; 7] = [
        StepControl::Approve,
        StepControl::Claim,
        StepControl::Complete,
        StepControl::Retry,
        StepControl::AskAgain,
        StepControl::Skip,
        StepControl::Resolve,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepControl::Approve => "approve",
            StepControl::Claim => "claim",
            StepControl::Complete => "complete",
            StepControl::Retry => "retry",
            StepControl::AskAgain => "ask_again",
            StepControl::Skip => "skip",
            StepControl::Resolve => "resolve",
        }
    }

    /// The policy's controls behind this button; a person may use it when the policy allows any
    /// of them (resolving is marking done *or* failed, which the policy rules on separately).
    pub fn policy(self) -> &'static [Control] {
        match self {
            StepControl::Approve => &[Control::ApproveGate],
            StepControl::Claim => &[Control::Claim],
            StepControl::Complete => &[Control::Complete],
            StepControl::Retry => &[Control::Retry],
            StepControl::AskAgain => &[Control::AskAgain],
            StepControl::Skip => &[Control::Skip],
            StepControl::Resolve => &[Control::MarkDone, Control::MarkFailed],
        }
    }

    /// Whether a step with `state` offers this control, whoever asks. `gated` says whether the
    /// step passes an approval gate (its own or an approval step's default one).
    pub fn offered(self, state: &StepState, kind: StepKind, gated: bool) -> bool {
        use StepStatus::*;
        let st = state.status;
        match self {
            StepControl::Approve => st == AwaitingApproval && !state.gate_lapsed,
            StepControl::Claim => st == AwaitingOperator && state.claimed_by.is_none(),
            StepControl::Complete => st == AwaitingOperator && state.claimed_by.is_some(),
            // A denied gate is asked again, not retried.
            StepControl::Retry => {
                matches!(st, Failed | OutcomeUnknown) && state.denied_by.is_none()
            }
            StepControl::AskAgain => st == Failed && state.denied_by.is_some(),
            // A gate is approved or denied, never skipped.
            StepControl::Skip => {
                matches!(st, Failed | Pending | Ready | AwaitingOperator)
                    && kind != StepKind::Approval
                    && !gated
            }
            StepControl::Resolve => st == OutcomeUnknown,
        }
    }

    /// Every control a step with `state` offers, in [`StepControl::ALL`] order.
    pub fn offered_by(state: &StepState, kind: StepKind, gated: bool) -> Vec<StepControl> {
        StepControl::ALL
            .into_iter()
            .filter(|c| c.offered(state, kind, gated))
            .collect()
    }
}

impl std::fmt::Display for StepControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_state(status: StepStatus) -> StepState {
        StepState {
            status,
            ..StepState::default()
        }
    }

    fn offered(state: &StepState) -> Vec<StepControl> {
        StepControl::offered_by(state, StepKind::Agent, false)
    }

    #[test]
    fn each_state_offers_its_own_controls() {
        use StepControl::*;
        let table = [
            (StepStatus::Pending, vec![Skip]),
            (StepStatus::Ready, vec![Skip]),
            (StepStatus::AwaitingApproval, vec![Approve]),
            (StepStatus::AwaitingOperator, vec![Claim, Skip]),
            (StepStatus::Dispatched, vec![]),
            (StepStatus::Running, vec![]),
            (StepStatus::Verifying, vec![]),
            (StepStatus::Succeeded, vec![]),
            (StepStatus::Failed, vec![Retry, Skip]),
            (StepStatus::Skipped, vec![]),
            (StepStatus::Cancelled, vec![]),
            (StepStatus::OutcomeUnknown, vec![Retry, Resolve]),
        ];
        assert_eq!(table.len(), StepStatus::ALL.len());
        for (status, want) in table {
            assert_eq!(offered(&in_state(status)), want, "{status}");
        }
    }

    #[test]
    fn a_claimed_task_offers_complete_instead_of_claim() {
        let mut s = in_state(StepStatus::AwaitingOperator);
        s.claimed_by = Some("olga".into());
        assert_eq!(offered(&s), [StepControl::Complete, StepControl::Skip]);
    }

    #[test]
    fn a_denied_gate_is_asked_again_never_retried_or_skipped() {
        let mut s = in_state(StepStatus::Failed);
        s.denied_by = Some("carl".into());
        assert_eq!(
            StepControl::offered_by(&s, StepKind::Agent, true),
            [StepControl::AskAgain]
        );
    }

    #[test]
    fn a_lapsed_gate_offers_no_approval() {
        let mut s = in_state(StepStatus::AwaitingApproval);
        s.gate_lapsed = true;
        assert!(offered(&s).is_empty());
    }

    #[test]
    fn an_approval_step_is_never_skipped() {
        let s = in_state(StepStatus::Ready);
        assert!(StepControl::offered_by(&s, StepKind::Approval, false).is_empty());
    }

    #[test]
    fn resolving_is_allowed_by_either_decision() {
        assert_eq!(
            StepControl::Resolve.policy(),
            [Control::MarkDone, Control::MarkFailed]
        );
        for c in StepControl::ALL {
            assert!(!c.policy().is_empty(), "{c}");
        }
    }
}
