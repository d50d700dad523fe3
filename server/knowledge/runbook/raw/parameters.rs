//! The parameters phase: each declared parameter has a valid, unique name and a default that
//! fits its own rules (one of the allowed values, a whole number when it is a number).

use super::{Ctx, RawParameter, K};
use crate::knowledge::runbook::{is_step_id, Parameter};

pub(super) fn check(cx: &mut Ctx, raw: Vec<RawParameter>) -> Vec<Parameter> {
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
