//! The steps phase: each step's own fields — a valid, unique id, a heading of the seed, its
//! dependencies parsed, durations, retry and gate within bounds, and the fields its kind needs —
//! turned into a [`StepTemplate`].

use std::collections::HashSet;
use std::ops::Range;

use super::{duration, templates, Ctx, RawStep, K};
use crate::knowledge::plan::{GateSpec, RetryPolicy, StepKind};
use crate::knowledge::role::Role;
use crate::knowledge::runbook::{is_step_id, sections, Dependency, Parameter, StepTemplate};

/// Every step, with the source span of each of its dependencies (for the graph phase).
pub(super) fn check(
    cx: &mut Ctx,
    raw: Vec<RawStep>,
    params: &[Parameter],
) -> (Vec<StepTemplate>, Vec<Vec<Range<usize>>>) {
    let mut steps = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut dep_spans = Vec::new();
    for (i, s) in raw.into_iter().enumerate() {
        check_identity(cx, &s, i, &mut seen);
        let (depends_on, spans) = dependencies(cx, &s, i);
        dep_spans.push(spans);
        let (estimate_secs, timeout_secs) = timing(cx, &s, i);
        let retry = retry(cx, &s, i);
        let gate = gate(cx, &s, i);
        check_kind(cx, &s, i);
        templates::check_step(cx, &s, i, params);
        steps.push(StepTemplate {
            line: cx.line(&s.id.span()),
            id: s.id.into_inner(),
            title: s.title,
            instructions: s.instructions.trim().to_string(),
            section: s.section.into_inner(),
            phase: s.phase,
            kind: s.kind,
            target: s.target.map(|t| t.into_inner()),
            depends_on,
            when: s.when.map(|w| w.into_inner()).unwrap_or_default(),
            operation: s.operation.map(|v| v.into_inner()),
            postcondition: s.postcondition.map(|v| v.into_inner()),
            undo: s.undo.map(|v| v.into_inner()),
            retry,
            timeout_secs,
            estimate_secs,
            gate,
        });
    }
    (steps, dep_spans)
}

/// The id is well formed and not used before; the section is a heading of the seed document.
fn check_identity(cx: &mut Ctx, s: &RawStep, i: usize, seen: &mut HashSet<String>) {
    let f = |name: &str| format!("steps[{i}].{name}");
    let id = s.id.get_ref().clone();
    if !is_step_id(&id) {
        cx.err(
            &s.id.span(),
            f("id"),
            K::BadValue,
            format!(
            "`{id}` is not a step id (lowercase letters, digits and '-', starting with a letter)"
        ),
        );
    }
    if !seen.insert(id.clone()) {
        cx.err(
            &s.id.span(),
            f("id"),
            K::DuplicateId,
            format!("step id `{id}` is used twice"),
        );
    }
    if !sections::is_seed_section(s.section.get_ref()) {
        cx.err(&s.section.span(), f("section"), K::UnknownSection, format!(
            "\"{}\" is not a heading of the seed document (write it exactly as printed, e.g. \"Stop Data Center Services\")",
            s.section.get_ref()
        ));
    }
}

fn dependencies(cx: &mut Ctx, s: &RawStep, i: usize) -> (Vec<Dependency>, Vec<Range<usize>>) {
    let mut depends_on = Vec::new();
    let mut spans = Vec::new();
    for d in &s.depends_on {
        match Dependency::parse(d.get_ref()) {
            Ok(dep) => {
                depends_on.push(dep);
                spans.push(d.span());
            }
            Err(m) => cx.err(&d.span(), format!("steps[{i}].depends_on"), K::BadValue, m),
        }
    }
    (depends_on, spans)
}

/// The estimate, and the timeout: as written, or three times the estimate and at least ten
/// minutes.
fn timing(cx: &mut Ctx, s: &RawStep, i: usize) -> (u64, u64) {
    let f = |name: &str| format!("steps[{i}].{name}");
    let estimate_secs = duration(cx, &s.estimate, f("estimate")).unwrap_or(0);
    let timeout_secs = match &s.timeout {
        Some(t) => duration(cx, t, f("timeout")).unwrap_or(0),
        None => (estimate_secs * 3).max(600),
    };
    (estimate_secs, timeout_secs)
}

fn retry(cx: &mut Ctx, s: &RawStep, i: usize) -> RetryPolicy {
    let f = |name: &str| format!("steps[{i}].{name}");
    let Some(r) = &s.retry else {
        return RetryPolicy::default();
    };
    if r.attempts == 0 {
        cx.err(
            &s.id.span(),
            f("retry.attempts"),
            K::BadValue,
            "must be at least 1".into(),
        );
    }
    RetryPolicy {
        max_attempts: r.attempts.max(1),
        initial_backoff_secs: duration(cx, &r.backoff, f("retry.backoff")).unwrap_or(0),
        max_backoff_secs: duration(cx, &r.max_backoff, f("retry.max_backoff")).unwrap_or(0),
    }
}

fn gate(cx: &mut Ctx, s: &RawStep, i: usize) -> Option<GateSpec> {
    let f = |name: &str| format!("steps[{i}].{name}");
    let g = s.gate.as_ref()?;
    let span = g.span();
    let g = g.get_ref();
    if g.quorum == 0 {
        cx.err(
            &span,
            f("gate.quorum"),
            K::BadValue,
            "a gate needs at least 1 approver".into(),
        );
    }
    let role = match g.role.trim() {
        "" => Err("name the role that may approve".to_string()),
        word => word.parse::<Role>(),
    };
    let role = role.unwrap_or_else(|why| {
        cx.err(&span, f("gate.role"), K::BadValue, why);
        Role::Approver
    });
    Some(GateSpec {
        role,
        quorum: g.quorum,
        expires_after_secs: g
            .expires_after
            .as_ref()
            .and_then(|e| duration(cx, e, f("gate.expires_after"))),
    })
}

/// Fields that must or must not be present for each kind of step.
fn check_kind(cx: &mut Ctx, s: &RawStep, i: usize) {
    let span = s.id.span();
    let field = |n: &str| format!("steps[{i}].{n}");
    let kind = s.kind;
    if kind == StepKind::Barrier {
        cx.err(
            &span,
            field("kind"),
            K::KindMismatch,
            "`barrier` steps are made by plan expansion (joins between phases), not written in a runbook".into(),
        );
    }
    let is_approval = kind == StepKind::Approval;
    if is_approval && s.gate.is_none() {
        cx.err(
            &span,
            field("gate"),
            K::KindMismatch,
            "an approval step needs a gate (role, quorum)".into(),
        );
    }
    if !is_approval && s.gate.is_some() {
        cx.err(
            &span,
            field("gate"),
            K::KindMismatch,
            format!(
                "only approval steps have a gate (this one is `{}`)",
                kind.as_str()
            ),
        );
    }
    let needs_operation = matches!(
        kind,
        StepKind::Agent | StepKind::Sql | StepKind::Probe | StepKind::Wait
    );
    if needs_operation && s.operation.is_none() {
        cx.err(
            &span,
            field("operation"),
            K::KindMismatch,
            format!("a `{}` step needs an operation", kind.as_str()),
        );
    }
    if matches!(kind, StepKind::Approval | StepKind::Manual) && s.operation.is_some() {
        cx.err(
            &span,
            field("operation"),
            K::KindMismatch,
            format!(
                "a `{}` step has no operation (its instructions say what to do)",
                kind.as_str()
            ),
        );
    }
    check_operation_fits(cx, s, i);
}

/// The operation's `op` fits the step's kind (an `sql` operation in a `sql` step, and so on).
fn check_operation_fits(cx: &mut Ctx, s: &RawStep, i: usize) {
    let kind = s.kind;
    if let Some(op) = &s.operation {
        let tag = op
            .get_ref()
            .get("op")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let fits = match kind {
            StepKind::Sql => tag == "sql",
            StepKind::Probe => tag == "probe",
            StepKind::Wait => tag == "wait",
            StepKind::Agent => !matches!(tag, "sql" | "probe" | "wait" | "manual" | "none"),
            StepKind::Manual | StepKind::Approval | StepKind::Barrier => true,
        };
        if !fits {
            cx.err(
                &op.span(),
                format!("steps[{i}].operation.op"),
                K::KindMismatch,
                format!("operation `{tag}` does not fit a `{}` step", kind.as_str()),
            );
        }
    }
}
