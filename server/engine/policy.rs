//! The one policy for every decision a person can make on a run: which role it needs and who may
//! not make it (separation of duties). The state machines consult [`check`] on every such event,
//! so the pages, the API, the CLI and the rehearsal cannot differ; handlers only parse input.
//!
//! Separation of duties compares *people* ([`Actor::person`]), never account names: two accounts
//! of one person are one person here. The README's policy table is checked against [`POLICY`] by
//! a test, so the documentation cannot drift from the code.

pub use super::control::{Control, PolicyViolation};
use super::machine::{Actor, Refusal, RunStatus};
use crate::knowledge::role::Role;

/// Longest justification (skip, override) or reason kept with a decision, in characters.
pub const MAX_JUSTIFICATION_CHARS: usize = 2000;

impl Control {
    pub fn as_str(self) -> &'static str {
        rule(self).name
    }
}

impl std::fmt::Display for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the policy table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub control: Control,
    /// The control's name as the API and the audit log spell it.
    pub name: &'static str,
    /// The role it needs (a gate may name its own role; see [`Parties::gate_role`]).
    pub role: Role,
    /// Whether the run's requester may use it on their own run, and why.
    pub requester_may: bool,
    /// The separation-of-duties rule beyond the requester, in words (README column).
    pub also: &'static str,
}

const fn row(
    control: Control,
    name: &'static str,
    role: Role,
    requester_may: bool,
    also: &'static str,
) -> Rule {
    Rule {
        control,
        name,
        role,
        requester_may,
        also,
    }
}

/// The policy table. The requester may only *do* the approved work (submit it, carry out manual
/// tasks, retry a step as approved, resume a run they paused, ask again at a denied gate) and
/// *stop* it (pause, abort, undo, mark a step failed) — never widen it: every approval, skip,
/// "it is done" and override needs another person. Asking again reopens a denied gate for a new
/// decision; it is not one, and the asker is barred from approving it like a retry's requester.
pub const POLICY: [Rule; 18] = [
    row(Control::Submit, "submit", Role::Operator, true, "-"),
    row(
        Control::ApproveStart,
        "approve_start",
        Role::Approver,
        false,
        "-",
    ),
    row(
        Control::ApproveGate,
        "approve_gate",
        Role::Approver,
        false,
        "not the person who asked for it again (retry, reopen); a quorum counts distinct people",
    ),
    row(Control::DenyGate, "deny_gate", Role::Approver, false, "-"),
    row(
        Control::ReopenGate,
        "reopen_gate",
        Role::Operator,
        true,
        "whoever reopens a gate cannot approve it",
    ),
    row(
        Control::Skip,
        "skip",
        Role::Approver,
        false,
        "never a gate; only once the step's inputs are done; a justification",
    ),
    row(
        Control::Retry,
        "retry",
        Role::Operator,
        true,
        "whoever retries cannot approve the retried step's gate",
    ),
    row(
        Control::MarkDone,
        "mark_done",
        Role::Operator,
        false,
        "not the person who claimed the task; evidence",
    ),
    row(
        Control::MarkFailed,
        "mark_failed",
        Role::Operator,
        true,
        "not the person who claimed the task; a reason",
    ),
    row(Control::Claim, "claim", Role::Operator, true, "-"),
    row(
        Control::Complete,
        "complete",
        Role::Operator,
        true,
        "only the person who claimed it",
    ),
    row(Control::Pause, "pause", Role::Operator, true, "-"),
    row(Control::Resume, "resume", Role::Operator, true, "-"),
    row(Control::Abort, "abort", Role::Operator, true, "a reason"),
    row(Control::Undo, "undo", Role::Operator, true, "a reason"),
    row(
        Control::OverrideFinding,
        "override_finding",
        Role::Approver,
        false,
        "one finding at a time, with a justification",
    ),
    row(
        Control::ExtendWindow,
        "extend_window",
        Role::Approver,
        false,
        "a reason",
    ),
    row(
        Control::AskAgain,
        "ask_again",
        Role::Operator,
        true,
        "only a denied gate, which puts the run on hold; whoever asks again cannot approve it, so the new decision is another approver's",
    ),
];

/// The row for `control`.
pub fn rule(control: Control) -> &'static Rule {
    // The table is in enum order; the index is checked by a unit test below.
    &POLICY[control as usize]
}

/// The people around a decision, as persons (see [`Actor::person`]).
#[derive(Debug, Clone, Default)]
pub struct Parties<'a> {
    /// The person who requested the run.
    pub requester: &'a str,
    /// The person who asked for the step's current action (retry, reopened gate), if any.
    pub step_requested_by: Option<&'a str>,
    /// The person who claimed the step's manual task, if any.
    pub claimed_by: Option<&'a str>,
    /// A gate's own role, where the plan names one.
    pub gate_role: Option<Role>,
}

/// The role check alone, so a person without the role hears that (403) before anything about the
/// state of the run or step (409), whatever the state.
pub fn require_role(
    control: Control,
    actor: &Actor,
    gate_role: Option<Role>,
) -> Result<(), Refusal> {
    let row = rule(control);
    let role = match control {
        Control::ApproveGate | Control::DenyGate => gate_role.unwrap_or(row.role),
        _ => row.role,
    };
    if actor.has_role(role) {
        Ok(())
    } else {
        Err(Refusal::MissingRole {
            actor: actor.name.clone(),
            role,
        })
    }
}

/// Checks `actor` may use `control` given `parties`. Role first (403 "lacks the role"), then
/// four-eyes against the requester and the step's requester, then the control's own rule.
pub fn check(control: Control, actor: &Actor, parties: &Parties<'_>) -> Result<(), Refusal> {
    let row = rule(control);
    require_role(control, actor, parties.gate_role)?;
    let me = actor.person();
    if !row.requester_may && me == parties.requester {
        return Err(match control {
            Control::ApproveStart | Control::ApproveGate => Refusal::FourEyes {
                actor: actor.name.clone(),
                requested: "requested the run".into(),
            },
            _ => violation(
                control,
                actor,
                "the run's requester never decides this on their own run",
            ),
        });
    }
    match control {
        Control::ApproveGate if parties.step_requested_by == Some(me) => Err(Refusal::FourEyes {
            actor: actor.name.clone(),
            requested: "requested this step's action".into(),
        }),
        Control::MarkDone | Control::MarkFailed if parties.claimed_by == Some(me) => {
            Err(violation(
                control,
                actor,
                "the person who claimed the task does not resolve its outcome alone",
            ))
        }
        _ => Ok(()),
    }
}

/// A refusal naming the rule broken.
pub fn violation(control: Control, actor: &Actor, rule: &str) -> Refusal {
    Refusal::PolicyViolation(PolicyViolation {
        control,
        rule: rule.to_string(),
        who: actor.name.clone(),
    })
}

/// A justification: not blank and at most [`MAX_JUSTIFICATION_CHARS`] characters.
pub fn justification(control: Control, actor: &Actor, text: &str) -> Result<(), Refusal> {
    if text.trim().is_empty() {
        return Err(Refusal::JustificationRequired);
    }
    if text.chars().count() > MAX_JUSTIFICATION_CHARS {
        return Err(violation(
            control,
            actor,
            &format!("a justification is at most {MAX_JUSTIFICATION_CHARS} characters"),
        ));
    }
    Ok(())
}

/// An earlier stage of the campaign a run belongs to, as the start check reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierStage {
    pub ordinal: i64,
    pub runbook: String,
    /// The stage's run and its status, once one was created.
    pub run: Option<(String, RunStatus)>,
}

/// Campaign order: a run that is stage `stage` of `campaign` may start only when every earlier
/// stage's run has succeeded. Checked by the store inside the transaction that starts the run
/// (and the one that creates it), so the page, the API and the CLI get the same refusal.
pub fn campaign_order(campaign: &str, stage: i64, earlier: &[EarlierStage]) -> Result<(), Refusal> {
    let Some(first) = earlier
        .iter()
        .find(|e| e.ordinal < stage && !matches!(e.run, Some((_, RunStatus::Succeeded))))
    else {
        return Ok(());
    };
    let why = match &first.run {
        None => format!("stage {} ({}) has no run yet", first.ordinal, first.runbook),
        Some((run, status)) => format!(
            "stage {} ({}) has not succeeded: its run {run} is {}",
            first.ordinal,
            first.runbook,
            status.as_str().replace('_', " ")
        ),
    };
    Err(Refusal::StageOutOfOrder {
        campaign: campaign.to_string(),
        stage,
        why,
    })
}

/// The policy table as the README shows it (a test keeps the two equal).
pub fn markdown_table() -> String {
    let mut out =
        String::from("| Control | Role | Requester on their own run | Also |\n|---|---|---|---|\n");
    for r in POLICY {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            r.name,
            r.role,
            if r.requester_may { "may" } else { "never" },
            r.also
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(ordinal: i64, run: Option<RunStatus>) -> EarlierStage {
        EarlierStage {
            ordinal,
            runbook: format!("runbook-{ordinal}"),
            run: run.map(|s| (format!("run-{ordinal}"), s)),
        }
    }

    #[test]
    fn a_stage_starts_only_after_every_earlier_stage_succeeded() {
        let done = [
            stage(1, Some(RunStatus::Succeeded)),
            stage(2, Some(RunStatus::Succeeded)),
        ];
        assert_eq!(campaign_order("c", 3, &done), Ok(()));
        assert_eq!(campaign_order("c", 1, &[]), Ok(()));
        let refusals = [
            (vec![stage(1, None)], "stage 1 (runbook-1) has no run yet"),
            (
                vec![
                    stage(1, Some(RunStatus::Succeeded)),
                    stage(2, Some(RunStatus::Running)),
                ],
                "stage 2 (runbook-2) has not succeeded: its run run-2 is running",
            ),
            (
                vec![stage(1, Some(RunStatus::Undone)), stage(2, None)],
                "stage 1 (runbook-1) has not succeeded: its run run-1 is undone",
            ),
        ];
        for (earlier, why) in refusals {
            let refusal = campaign_order("c", 3, &earlier).unwrap_err();
            assert_eq!(
                refusal,
                Refusal::StageOutOfOrder {
                    campaign: "c".into(),
                    stage: 3,
                    why: why.into()
                }
            );
            assert!(refusal.to_string().contains("run in order"), "{refusal}");
        }
    }

    #[test]
    fn the_table_is_in_enum_order_so_rule_finds_each_control() {
        for (i, r) in POLICY.iter().enumerate() {
            assert_eq!(r.control as usize, i, "{} is out of place", r.name);
        }
    }
}
