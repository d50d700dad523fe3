//! Reading a runbook file: TOML → checked [`Runbook`]. Serde refuses unknown fields and bad
//! values; the checks here refuse what serde cannot see (ids, references, cycles, headings,
//! templates). Every error names the file, line and field.

use std::collections::HashSet;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::errors::{line_of, serde_error};
pub use super::params::resolve_params;
use super::{
    index_of, is_runbook_id, is_step_id, parse_duration, sections, Condition, Dependency,
    Parameter, Runbook, RunbookError, RunbookErrorKind as K, Selector, StepTemplate,
};
use crate::knowledge::expand::template;
use crate::knowledge::plan::{GateSpec, RetryPolicy, StepKind};
use crate::knowledge::role::Role;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunbook {
    id: Spanned<String>,
    title: String,
    description: String,
    #[serde(default)]
    parameters: Vec<RawParameter>,
    steps: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParameter {
    name: Spanned<String>,
    description: String,
    #[serde(default)]
    allowed: Vec<String>,
    default: Option<String>,
    #[serde(default)]
    number: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: Spanned<String>,
    title: String,
    instructions: String,
    section: Spanned<String>,
    phase: String,
    kind: StepKind,
    target: Option<Spanned<Selector>>,
    #[serde(default)]
    depends_on: Vec<Spanned<String>>,
    when: Option<Spanned<Condition>>,
    operation: Option<Spanned<toml::Value>>,
    postcondition: Option<Spanned<toml::Value>>,
    undo: Option<Spanned<toml::Value>>,
    retry: Option<RawRetry>,
    timeout: Option<Spanned<String>>,
    estimate: Spanned<String>,
    gate: Option<Spanned<RawGate>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    attempts: u32,
    backoff: Spanned<String>,
    max_backoff: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    role: String,
    quorum: u32,
    expires_after: Option<Spanned<String>>,
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<RunbookError>,
}

impl Ctx<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        line_of(self.text, span.start)
    }
    fn err(&mut self, span: &Range<usize>, field: String, kind: K, message: String) {
        let line = self.line(span);
        self.errors.push(RunbookError {
            file: self.file.to_string(),
            line,
            field,
            kind,
            message,
        });
    }
}

pub(super) fn parse(file: &str, text: &str) -> Result<Runbook, Vec<RunbookError>> {
    let raw: RawRunbook = toml::from_str(text).map_err(|e| vec![serde_error(file, text, &e)])?;
    let mut cx = Ctx {
        file,
        text,
        errors: Vec::new(),
    };
    if !is_runbook_id(raw.id.get_ref()) {
        cx.err(
            &raw.id.span(),
            "id".into(),
            K::BadValue,
            format!(
                "`{}` is not a runbook id (lowercase letters, digits, '-' and '.')",
                raw.id.get_ref()
            ),
        );
    }
    let parameters = check_parameters(&mut cx, raw.parameters);
    let mut steps = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut dep_spans = Vec::new();
    for (i, s) in raw.steps.into_iter().enumerate() {
        let f = |name: &str| format!("steps[{i}].{name}");
        let id = s.id.get_ref().clone();
        if !is_step_id(&id) {
            cx.err(&s.id.span(), f("id"), K::BadValue, format!(
                "`{id}` is not a step id (lowercase letters, digits and '-', starting with a letter)"
            ));
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
        let mut depends_on = Vec::new();
        let mut spans = Vec::new();
        for d in &s.depends_on {
            match Dependency::parse(d.get_ref()) {
                Ok(dep) => {
                    depends_on.push(dep);
                    spans.push(d.span());
                }
                Err(m) => cx.err(&d.span(), f("depends_on"), K::BadValue, m),
            }
        }
        dep_spans.push(spans);
        let estimate_secs = duration(&mut cx, &s.estimate, f("estimate")).unwrap_or(0);
        let timeout_secs = match &s.timeout {
            Some(t) => duration(&mut cx, t, f("timeout")).unwrap_or(0),
            None => (estimate_secs * 3).max(600),
        };
        let retry = match &s.retry {
            None => RetryPolicy::default(),
            Some(r) => {
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
                    initial_backoff_secs: duration(&mut cx, &r.backoff, f("retry.backoff"))
                        .unwrap_or(0),
                    max_backoff_secs: duration(&mut cx, &r.max_backoff, f("retry.max_backoff"))
                        .unwrap_or(0),
                }
            }
        };
        let gate = s.gate.as_ref().map(|g| {
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
            GateSpec {
                role,
                quorum: g.quorum,
                expires_after_secs: g
                    .expires_after
                    .as_ref()
                    .and_then(|e| duration(&mut cx, e, f("gate.expires_after"))),
            }
        });
        check_kind(&mut cx, &s, i);
        let when = s
            .when
            .as_ref()
            .map(|w| w.get_ref().clone())
            .unwrap_or_default();
        if let Some(w) = &s.when {
            check_condition(&mut cx, w, &parameters, f("when"));
        }
        if let Some(t) = &s.target {
            check_selector(
                &mut cx,
                t.get_ref(),
                &t.span(),
                &parameters,
                f("target"),
                true,
            );
        }
        for (name, v) in [
            ("operation", &s.operation),
            ("postcondition", &s.postcondition),
            ("undo", &s.undo),
        ] {
            if let Some(v) = v {
                if let Err(m) = template::check(v.get_ref(), &parameters) {
                    cx.err(&v.span(), f(name), K::BadOperation, m);
                }
            }
        }
        check_texts(&mut cx, &s, i, &parameters);
        steps.push(StepTemplate {
            line: cx.line(&s.id.span()),
            id,
            title: s.title,
            instructions: s.instructions.trim().to_string(),
            section: s.section.into_inner(),
            phase: s.phase,
            kind: s.kind,
            target: s.target.map(|t| t.into_inner()),
            depends_on,
            when,
            operation: s.operation.map(|v| v.into_inner()),
            postcondition: s.postcondition.map(|v| v.into_inner()),
            undo: s.undo.map(|v| v.into_inner()),
            retry,
            timeout_secs,
            estimate_secs,
            gate,
        });
    }
    check_references(&mut cx, &steps, &dep_spans);
    if cx.errors.is_empty() {
        check_cycles(&mut cx, &steps);
    }
    if !cx.errors.is_empty() {
        cx.errors.sort_by_key(|e| e.line);
        return Err(cx.errors);
    }
    Ok(Runbook {
        id: raw.id.into_inner(),
        title: raw.title,
        description: raw.description.trim().to_string(),
        parameters,
        steps,
        source: file.to_string(),
    })
}

/// Placeholders in titles and instructions must exist, and a step bound to no server may not use
/// the server's placeholders (`{host}`, `{host.fqdn}`, `{registry.other}`, ...).
fn check_texts(cx: &mut Ctx, s: &RawStep, i: usize, params: &[Parameter]) {
    let span = s.id.span();
    let mut texts: Vec<(&str, String)> = vec![
        ("title", s.title.clone()),
        ("instructions", s.instructions.clone()),
    ];
    for (name, v) in [
        ("operation", &s.operation),
        ("postcondition", &s.postcondition),
        ("undo", &s.undo),
    ] {
        if let Some(v) = v {
            texts.push((name, v.get_ref().to_string()));
        }
    }
    for (name, text) in texts {
        if matches!(name, "title" | "instructions") {
            if let Err(m) = template::check_text(&text, params) {
                cx.err(&span, format!("steps[{i}].{name}"), K::BadValue, m);
                continue;
            }
        }
        if s.target.is_none() && (text.contains("{host") || text.contains("{registry.other}")) {
            cx.err(
                &span,
                format!("steps[{i}].{name}"),
                K::KindMismatch,
                format!(
                "uses a server placeholder, but step `{}` has no `target` to bind it to a server",
                s.id.get_ref()
            ),
            );
        }
    }
}

fn check_parameters(cx: &mut Ctx, raw: Vec<RawParameter>) -> Vec<Parameter> {
    let mut out: Vec<Parameter> = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let span = p.name.span();
        let name = p.name.into_inner();
        let f = |n: &str| format!("parameters[{i}].{n}");
        if !is_step_id(&name) {
            cx.err(
                &span,
                f("name"),
                K::BadValue,
                format!("`{name}` is not a parameter name (lowercase letters, digits and '-')"),
            );
        }
        if out.iter().any(|q| q.name == name) {
            cx.err(
                &span,
                f("name"),
                K::DuplicateId,
                format!("parameter `{name}` is declared twice"),
            );
        }
        if let Some(d) = &p.default {
            if !p.allowed.is_empty() && !p.allowed.contains(d) {
                cx.err(
                    &span,
                    f("default"),
                    K::BadValue,
                    format!(
                        "default `{d}` is not one of the allowed values {:?}",
                        p.allowed
                    ),
                );
            }
            if p.number && d.parse::<u64>().is_err() {
                cx.err(
                    &span,
                    f("default"),
                    K::BadValue,
                    format!("default `{d}` is not a whole number"),
                );
            }
        }
        out.push(Parameter {
            name,
            description: p.description,
            allowed: p.allowed,
            default: p.default,
            number: p.number,
        });
    }
    out
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
                field("operation.op"),
                K::KindMismatch,
                format!("operation `{tag}` does not fit a `{}` step", kind.as_str()),
            );
        }
    }
}

fn check_condition(cx: &mut Ctx, w: &Spanned<Condition>, params: &[Parameter], field: String) {
    let span = w.span();
    let c = w.get_ref();
    for (name, values) in &c.params {
        match params.iter().find(|p| &p.name == name) {
            None => cx.err(
                &span,
                format!("{field}.params"),
                K::UnknownParameter,
                format!("the runbook declares no parameter `{name}`"),
            ),
            Some(p) => {
                for v in values {
                    if !p.allowed.is_empty() && !p.allowed.contains(v) {
                        cx.err(
                            &span,
                            format!("{field}.params.{name}"),
                            K::BadValue,
                            format!("`{v}` is not one of the allowed values {:?}", p.allowed),
                        );
                    }
                }
            }
        }
    }
    for (n, s) in [("exists", &c.exists), ("absent", &c.absent)] {
        if let Some(s) = s {
            check_selector(cx, s, &span, params, format!("{field}.{n}"), false);
        }
    }
}

fn check_selector(
    cx: &mut Ctx,
    s: &Selector,
    span: &Range<usize>,
    params: &[Parameter],
    field: String,
    is_target: bool,
) {
    if !is_target && (s.pick.is_some() || s.run_from.is_some() || s.required.is_some()) {
        cx.err(
            span,
            field.clone(),
            K::KindMismatch,
            "`pick`, `run_from` and `required` belong in a step's `target`, not in a condition"
                .into(),
        );
    }
    if s.run_from.is_some() && s.roles.is_empty() {
        cx.err(
            span,
            format!("{field}.run_from"),
            K::KindMismatch,
            "`run_from` needs `roles` (the component whose hosts the step avoids)".into(),
        );
    }
    for (n, v) in [
        ("name", &s.name),
        ("windows_below", &s.windows_below),
        ("sql_below", &s.sql_below),
    ] {
        if let Some(v) = v {
            if let Err(m) = template::check_text(v, params) {
                cx.err(span, format!("{field}.{n}"), K::BadValue, m);
            }
        }
    }
}

fn check_references(cx: &mut Ctx, steps: &[StepTemplate], spans: &[Vec<Range<usize>>]) {
    let index = index_of(steps);
    for (i, s) in steps.iter().enumerate() {
        for (d, span) in s.depends_on.iter().zip(&spans[i]) {
            if let Some(id) = d.step_id() {
                if !index.contains_key(id) {
                    cx.err(
                        span,
                        format!("steps[{i}].depends_on"),
                        K::UnknownDependency,
                        format!(
                            "step `{}` depends on `{id}`, which is not a step of this runbook",
                            s.id
                        ),
                    );
                } else if id == s.id {
                    cx.err(
                        span,
                        format!("steps[{i}].depends_on"),
                        K::Cycle,
                        format!("step `{id}` depends on itself"),
                    );
                }
            }
        }
    }
}

/// Depth-first search over the step graph (`*` = every step declared above, except `*` steps).
fn check_cycles(cx: &mut Ctx, steps: &[StepTemplate]) {
    let edges = step_edges(steps);
    // 0 = unseen, 1 = on the stack, 2 = done
    let mut state = vec![0u8; steps.len()];
    let mut path: Vec<usize> = Vec::new();
    fn visit(
        n: usize,
        edges: &[Vec<usize>],
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[n] = 1;
        path.push(n);
        for &m in &edges[n] {
            if state[m] == 1 {
                let start = path.iter().position(|&x| x == m).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(m);
                return Some(cycle);
            }
            if state[m] == 0 {
                if let Some(c) = visit(m, edges, state, path) {
                    return Some(c);
                }
            }
        }
        path.pop();
        state[n] = 2;
        None
    }
    for n in 0..steps.len() {
        if state[n] == 0 {
            if let Some(cycle) = visit(n, &edges, &mut state, &mut path) {
                let names: Vec<&str> = cycle.iter().map(|&i| steps[i].id.as_str()).collect();
                let first = cycle[0];
                cx.errors.push(RunbookError {
                    file: cx.file.to_string(),
                    line: steps[first].line,
                    field: format!("steps[{first}].depends_on"),
                    kind: K::Cycle,
                    message: format!("dependency cycle: {}", names.join(" → ")),
                });
                return;
            }
        }
    }
}

/// For each step, the indexes of the steps it depends on.
pub(crate) fn step_edges(steps: &[StepTemplate]) -> Vec<Vec<usize>> {
    let index = index_of(steps);
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut out = Vec::new();
            for d in &s.depends_on {
                match d {
                    Dependency::Everything => out.extend(
                        (0..i).filter(|&j| !steps[j].depends_on.contains(&Dependency::Everything)),
                    ),
                    other => {
                        if let Some(&j) = other.step_id().and_then(|id| index.get(id)) {
                            out.push(j);
                        }
                    }
                }
            }
            out
        })
        .collect()
}

fn duration(cx: &mut Ctx, v: &Spanned<String>, field: String) -> Option<u64> {
    match parse_duration(v.get_ref()) {
        Ok(d) => Some(d),
        Err(m) => {
            cx.err(&v.span(), field, K::BadValue, m);
            None
        }
    }
}
