//! The run's preflight beside "Approve start": the errors that block the start (each with an
//! override form for an approver the policy allows), the overrides already recorded, and the
//! findings preflight could not decide, listed for the approver to see.
//!
//! What the page offers is asked of the engine's policy (`Viewer::may_on_run`); the engine runs
//! preflight again and checks the same rules when the start is approved.

use askama::Template;

use super::Viewer;
use crate::engine::machine::gating::{self, GateFinding};
use crate::engine::machine::RunStatus;
use crate::engine::policy::{Control, MAX_JUSTIFICATION_CHARS};
use crate::engine::store::RunRecord;
use crate::web::views::fmt_time;

/// One override as the page shows it.
pub struct OverrideRow {
    pub finding: String,
    pub message: String,
    pub by: String,
    pub at: String,
    pub justification: String,
}

#[derive(Template)]
#[template(path = "partials/preflight_gate.html")]
pub struct PreflightGate {
    pub run_id: String,
    /// Whether there is anything to show at all.
    pub shown: bool,
    /// The start is still to be approved (the override forms make sense only then).
    pub before_start: bool,
    pub checked_at: String,
    pub blocking: Vec<GateFinding>,
    pub overridden: Vec<OverrideRow>,
    pub unknown: Vec<GateFinding>,
    pub warnings: Vec<GateFinding>,
    pub can_override: bool,
    pub max_chars: usize,
    pub csrf: String,
}

pub fn preflight_gate(run: &RunRecord, viewer: &Viewer) -> PreflightGate {
    let state = &run.state;
    let before_start = matches!(
        run.status,
        RunStatus::Draft | RunStatus::AwaitingStartApproval
    );
    let findings: Vec<&GateFinding> = state
        .preflight
        .iter()
        .flat_map(|p| p.findings.iter())
        .collect();
    let blocking: Vec<GateFinding> = gating::blocking(state).into_iter().cloned().collect();
    let unknown: Vec<GateFinding> = findings
        .iter()
        .filter(|f| f.is_unknown())
        .map(|f| (*f).clone())
        .collect();
    let warnings: Vec<GateFinding> = findings
        .iter()
        .filter(|f| !f.is_unknown() && !f.blocks())
        .map(|f| (*f).clone())
        .collect();
    let overridden: Vec<OverrideRow> = state
        .overrides
        .iter()
        .map(|o| OverrideRow {
            finding: o.finding.clone(),
            message: o.message.clone(),
            by: o.actor.clone(),
            at: fmt_time(o.at.div_euclid(1000)),
            justification: o.justification.clone(),
        })
        .collect();
    PreflightGate {
        run_id: run.id.clone(),
        shown: state.preflight.is_some() && (before_start || !overridden.is_empty()),
        before_start,
        checked_at: state
            .preflight
            .as_ref()
            .map(|p| fmt_time(p.checked_at.div_euclid(1000)))
            .unwrap_or_default(),
        can_override: before_start && viewer.may_on_run(run, Control::OverrideFinding),
        blocking,
        overridden,
        unknown,
        warnings,
        max_chars: MAX_JUSTIFICATION_CHARS,
        csrf: viewer.csrf.clone(),
    }
}
