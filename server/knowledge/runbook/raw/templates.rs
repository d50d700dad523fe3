//! The templates phase: placeholders in a step's texts and operations, and the parameters its
//! condition and target name, must exist — and a step bound to no server may not use a
//! server's placeholders.

use std::ops::Range;

use toml::Spanned;

use super::{template, Ctx, RawStep, K};
use crate::knowledge::runbook::{Condition, Parameter, Selector};

/// Everything in one step that refers to parameters or placeholders, in the order the errors
/// have always been reported.
pub(super) fn check_step(cx: &mut Ctx, s: &RawStep, i: usize, params: &[Parameter]) {
    let f = |name: &str| format!("steps[{i}].{name}");
    if let Some(w) = &s.when {
        check_condition(cx, w, params, f("when"));
    }
    if let Some(t) = &s.target {
        check_selector(cx, t.get_ref(), &t.span(), params, f("target"), true);
    }
    for (name, v) in [
        ("operation", &s.operation),
        ("postcondition", &s.postcondition),
        ("undo", &s.undo),
    ] {
        if let Some(v) = v {
            if let Err(m) = template::check(v.get_ref(), params) {
                cx.err(&v.span(), f(name), K::BadOperation, m);
            }
        }
    }
    check_texts(cx, s, i, params);
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
