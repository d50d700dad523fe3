//! The graph phase: every dependency names a step of this runbook (not itself), and the
//! dependencies do not go round in a circle.

use std::ops::Range;

use super::{Ctx, K};
use crate::knowledge::runbook::{index_of, Dependency, RunbookError, StepTemplate};

pub(super) fn check_references(cx: &mut Ctx, steps: &[StepTemplate], spans: &[Vec<Range<usize>>]) {
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
pub(super) fn check_cycles(cx: &mut Ctx, steps: &[StepTemplate]) {
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
