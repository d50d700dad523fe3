//! The planned-vs-actual timeline on the run page: one pair of bars per step (per phase for large
//! plans), the planned duration above the actual one, drawn as server-rendered SVG (no
//! JavaScript). Every bar has a `<title>`, and the same figures are in a table beside it for
//! screen readers and for anyone who prefers numbers.

use askama::Template;

use crate::engine::machine::StepStatus;
use crate::engine::store::StepRecord;
use crate::web::views::fmt_duration;

/// Above this many plan steps the timeline shows phases instead of steps.
pub const MAX_STEP_BARS: usize = 40;
/// Width of the label column and of the bars' area, in SVG user units.
const LABEL_W: i64 = 260;
const BARS_W: i64 = 440;
const ROW_H: i64 = 26;
/// Characters of a label drawn in the SVG (the table has the whole text).
const LABEL_CHARS: usize = 36;

pub struct Bar {
    pub label: String,
    /// The label as drawn (cut to fit).
    pub short: String,
    pub planned: String,
    pub actual: String,
    /// `late` when the actual time is past the plan, `running`, `done`, or `waiting`.
    pub state: &'static str,
    pub y: i64,
    pub text_y: i64,
    pub actual_y: i64,
    pub planned_w: i64,
    pub actual_w: i64,
}

#[derive(Template)]
#[template(path = "partials/timeline.html")]
pub struct Timeline {
    pub bars: Vec<Bar>,
    /// `step` or `phase`.
    pub unit: &'static str,
    pub label_w: i64,
    pub width: i64,
    pub height: i64,
    pub scale: String,
}

struct Span {
    label: String,
    planned: i64,
    actual: Option<i64>,
    running: bool,
}

fn actual_secs(step: &StepRecord, now_ms: i64) -> (Option<i64>, bool) {
    let Some(start) = step.state.dispatched_at else {
        return (None, false);
    };
    if step.status.is_terminal() {
        (
            Some((step.updated_at - start).div_euclid(1000).max(0)),
            false,
        )
    } else {
        (Some((now_ms - start).div_euclid(1000).max(0)), true)
    }
}

/// The timeline of a run's plan steps (undo steps left out) at `now_ms`.
pub fn timeline(steps: &[StepRecord], now_ms: i64) -> Timeline {
    let plan: Vec<&StepRecord> = steps
        .iter()
        .filter(|s| s.undo_of.is_none() && !s.spec.is_join())
        .collect();
    let by_phase = plan.len() > MAX_STEP_BARS;
    let mut spans: Vec<Span> = Vec::new();
    for step in plan {
        let (actual, running) = actual_secs(step, now_ms);
        let actual = actual.filter(|_| step.status != StepStatus::Skipped);
        if by_phase {
            match spans.iter_mut().find(|s| s.label == step.spec.phase) {
                Some(s) => {
                    s.planned += step.spec.estimate_secs as i64;
                    s.actual = match (s.actual, actual) {
                        (Some(a), Some(b)) => Some(a + b),
                        (a, b) => a.or(b),
                    };
                    s.running |= running;
                }
                None => spans.push(Span {
                    label: step.spec.phase.clone(),
                    planned: step.spec.estimate_secs as i64,
                    actual,
                    running,
                }),
            }
        } else {
            spans.push(Span {
                label: step.spec.title.clone(),
                planned: step.spec.estimate_secs as i64,
                actual,
                running,
            });
        }
    }
    let longest = spans
        .iter()
        .map(|s| s.planned.max(s.actual.unwrap_or(0)))
        .max()
        .unwrap_or(0)
        .max(1);
    let width_of = |secs: i64| -> i64 {
        if secs <= 0 {
            0
        } else {
            (secs * BARS_W / longest).max(2)
        }
    };
    let bars = spans
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let y = 4 + i as i64 * ROW_H;
            let short = if s.label.chars().count() > LABEL_CHARS {
                let mut t: String = s.label.chars().take(LABEL_CHARS - 1).collect();
                t.push('…');
                t
            } else {
                s.label.clone()
            };
            let state = match s.actual {
                Some(a) if a > s.planned => "late",
                Some(_) if s.running => "running",
                Some(_) => "done",
                None => "waiting",
            };
            Bar {
                short,
                planned: fmt_duration(s.planned),
                actual: match s.actual {
                    Some(a) if s.running => format!("{} so far", fmt_duration(a)),
                    Some(a) => fmt_duration(a),
                    None => "not started".into(),
                },
                state,
                y,
                text_y: y + 14,
                actual_y: y + 11,
                planned_w: width_of(s.planned),
                actual_w: width_of(s.actual.unwrap_or(0)),
                label: s.label,
            }
        })
        .collect::<Vec<_>>();
    Timeline {
        unit: if by_phase { "phase" } else { "step" },
        label_w: LABEL_W,
        width: LABEL_W + BARS_W + 10,
        height: 8 + bars.len() as i64 * ROW_H,
        scale: fmt_duration(longest),
        bars,
    }
}
