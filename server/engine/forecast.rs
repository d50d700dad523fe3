//! When the run will finish, forecast along the critical path from now.
//!
//! Every step gets a projected start and end: finished steps keep their actual times, a running
//! step ends at its start plus its scaled estimate (or now, if it is already past that), and a
//! step that has not started begins when now has come and its last dependency ends. A step's
//! estimate is scaled by its *pace*: how long finished steps of the same kind took against their
//! estimates (a slow SQL Server makes every remaining SQL step slower, not the gates), clamped so
//! that one odd step cannot swing the forecast wildly. The finish is the latest projected end,
//! and the critical path is the chain of dependencies that leads to it.
//!
//! [`forecast`] is pure (tasks and a time in, projection out); [`tasks_of`] reads the engine's
//! step records into tasks.

use std::collections::{BTreeMap, HashMap};

use crate::engine::machine::StepStatus;
use crate::engine::store::StepRecord;

/// How far the pace may scale an estimate either way.
const PACE_MIN: f64 = 0.25;
const PACE_MAX: f64 = 4.0;

/// Where a step is, with the times that are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Finished (succeeded or cancelled): actual start and end.
    Done { start: i64, end: i64 },
    /// Skipped: took no time; counts for nobody's pace.
    Skipped { at: i64 },
    /// Started (dispatched, a gate open, a manual task waiting) and not finished.
    Running { start: i64 },
    /// Not started yet (a failed step waiting for a retry counts as not started).
    Pending,
}

/// One step as the forecast sees it.
#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub deps: Vec<String>,
    /// Steps of the same group share a pace (the step's kind).
    pub peers: &'static str,
    pub estimate_secs: i64,
    pub progress: Progress,
}

/// A step's projected (or actual) span, in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: i64,
    pub end: i64,
    /// On the chain of dependencies that ends last.
    pub critical: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Per task, in the order given.
    pub spans: Vec<Span>,
    /// The latest projected end (now, for an empty plan).
    pub finish: i64,
    /// Milliseconds from now to the finish (0 once everything is over).
    pub remaining: i64,
    /// The pace of each group of peers that has finished steps (actual / estimate).
    pub pace: BTreeMap<&'static str, f64>,
}

fn pace_of(tasks: &[Task]) -> BTreeMap<&'static str, f64> {
    let mut sums: BTreeMap<&'static str, (i64, i64)> = BTreeMap::new();
    for t in tasks {
        if let Progress::Done { start, end } = t.progress {
            if t.estimate_secs > 0 {
                let s = sums.entry(t.peers).or_default();
                s.0 += (end - start).max(0);
                s.1 += t.estimate_secs * 1000;
            }
        }
    }
    sums.into_iter()
        .filter(|(_, (_, est))| *est > 0)
        .map(|(k, (act, est))| (k, (act as f64 / est as f64).clamp(PACE_MIN, PACE_MAX)))
        .collect()
}

/// Task indices with every dependency before its dependants (dependencies on unknown ids are
/// ignored; a cycle, which the planner refuses, leaves its steps in the given order at the end).
fn order(tasks: &[Task], index: &HashMap<&str, usize>) -> Vec<usize> {
    let mut waiting: Vec<usize> = tasks
        .iter()
        .map(|t| {
            t.deps
                .iter()
                .filter(|d| index.contains_key(d.as_str()))
                .count()
        })
        .collect();
    let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    for (i, t) in tasks.iter().enumerate() {
        for d in &t.deps {
            if let Some(&j) = index.get(d.as_str()) {
                dependants[j].push(i);
            }
        }
    }
    let mut out: Vec<usize> = (0..tasks.len()).filter(|&i| waiting[i] == 0).collect();
    let mut next = 0;
    while next < out.len() {
        let i = out[next];
        next += 1;
        for &k in &dependants[i] {
            waiting[k] -= 1;
            if waiting[k] == 0 {
                out.push(k);
            }
        }
    }
    if out.len() < tasks.len() {
        let mut seen = vec![false; tasks.len()];
        for &i in &out {
            seen[i] = true;
        }
        out.extend((0..tasks.len()).filter(|&i| !seen[i]));
    }
    out
}

/// Projects every task from `now` (Unix milliseconds).
pub fn forecast(tasks: &[Task], now: i64) -> Forecast {
    let pace = pace_of(tasks);
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let mut spans: Vec<Option<Span>> = vec![None; tasks.len()];
    // The dependency that ended last, for walking the critical path back.
    let mut pred: Vec<Option<usize>> = vec![None; tasks.len()];
    for i in order(tasks, &index) {
        let t = &tasks[i];
        let mut ready: Option<(i64, usize)> = None;
        for d in &t.deps {
            let Some(&j) = index.get(d.as_str()) else {
                continue;
            };
            if let Some(s) = spans[j] {
                if ready.is_none_or(|(e, _)| s.end > e) {
                    ready = Some((s.end, j));
                }
            }
        }
        pred[i] = ready.map(|(_, j)| j);
        let scaled = (t.estimate_secs.max(0) as f64
            * 1000.0
            * pace.get(t.peers).copied().unwrap_or(1.0)) as i64;
        let (start, end) = match t.progress {
            Progress::Done { start, end } => (start, end.max(start)),
            Progress::Skipped { at } => (at, at),
            Progress::Running { start } => (start, (start + scaled).max(now)),
            Progress::Pending => {
                let start = ready.map_or(now, |(e, _)| e.max(now));
                (start, start + scaled)
            }
        };
        spans[i] = Some(Span {
            start,
            end,
            critical: false,
        });
    }
    let mut spans: Vec<Span> = spans
        .into_iter()
        .map(|s| {
            s.unwrap_or(Span {
                start: now,
                end: now,
                critical: false,
            })
        })
        .collect();
    let last = (0..spans.len()).max_by_key(|&i| (spans[i].end, std::cmp::Reverse(i)));
    let finish = last.map_or(now, |i| spans[i].end);
    let mut at = last;
    let mut hops = 0;
    while let Some(i) = at {
        if spans[i].critical || hops > spans.len() {
            break;
        }
        spans[i].critical = true;
        hops += 1;
        at = pred[i];
    }
    Forecast {
        spans,
        finish,
        remaining: (finish - now).max(0),
        pace,
    }
}

/// When a step started, as far as the records tell: its dispatch or its gate's opening; a
/// manual task that waits (it has neither) started when its dependencies were over, which is
/// when the engine offered it — `ended` holds the ends of the steps read so far.
fn started(step: &StepRecord, ended: &HashMap<&str, i64>) -> Option<i64> {
    let known = match (step.state.dispatched_at, step.state.gate_opened_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    known.or_else(|| match step.status {
        StepStatus::Pending | StepStatus::Ready => None,
        _ => step
            .spec
            .depends_on
            .iter()
            .filter_map(|d| ended.get(d.as_str()).copied())
            .max()
            .or(Some(step.updated_at)),
    })
}

/// The run's plan steps (undo steps left out) as tasks, in plan order.
pub fn tasks_of(steps: &[StepRecord]) -> Vec<Task> {
    let mut ended: HashMap<&str, i64> = HashMap::new();
    let mut out = Vec::new();
    for s in steps.iter().filter(|s| s.undo_of.is_none()) {
        let progress = match s.status {
            StepStatus::Succeeded | StepStatus::Cancelled => Progress::Done {
                start: started(s, &ended).unwrap_or(s.updated_at),
                end: s.updated_at,
            },
            StepStatus::Skipped => Progress::Skipped { at: s.updated_at },
            StepStatus::Pending | StepStatus::Ready | StepStatus::Failed => Progress::Pending,
            _ => match started(s, &ended) {
                Some(start) => Progress::Running { start },
                None => Progress::Pending,
            },
        };
        if s.status.is_terminal() {
            ended.insert(&s.id, s.updated_at);
        }
        out.push(Task {
            id: s.id.clone(),
            deps: s.spec.depends_on.clone(),
            peers: s.spec.kind.as_str(),
            estimate_secs: s.spec.estimate_secs as i64,
            progress,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    fn task(id: &str, deps: &[&str], peers: &'static str, est: i64, progress: Progress) -> Task {
        Task {
            id: id.into(),
            deps: deps.iter().map(|d| d.to_string()).collect(),
            peers,
            estimate_secs: est,
            progress,
        }
    }

    /// a (done, took twice its estimate) → b (running) → d; a → c (SQL, no finished peer);
    /// d and c → e. Now is 700 s.
    fn small_dag() -> Vec<Task> {
        vec![
            task(
                "a",
                &[],
                "agent",
                300,
                Progress::Done {
                    start: 0,
                    end: 600 * S,
                },
            ),
            task(
                "b",
                &["a"],
                "agent",
                300,
                Progress::Running { start: 600 * S },
            ),
            task("c", &["a"], "sql", 1000, Progress::Pending),
            task("d", &["b"], "agent", 100, Progress::Pending),
            task("e", &["d", "c"], "agent", 50, Progress::Pending),
        ]
    }

    #[test]
    fn remaining_steps_are_scaled_by_how_their_finished_peers_did() {
        let f = forecast(&small_dag(), 700 * S);
        assert_eq!(f.pace.get("agent"), Some(&2.0));
        assert_eq!(
            f.pace.get("sql"),
            None,
            "no finished SQL step: estimates as they are"
        );
        let span = |i: usize| (f.spans[i].start / S, f.spans[i].end / S);
        assert_eq!(span(0), (0, 600), "a keeps its actual times");
        assert_eq!(span(1), (600, 1200), "b: started at 600 s, 300 s × 2");
        assert_eq!(span(2), (700, 1700), "c starts now (a ended before now)");
        assert_eq!(span(3), (1200, 1400), "d starts when b ends");
        assert_eq!(span(4), (1700, 1800), "e waits for the later of c and d");
        assert_eq!((f.finish / S, f.remaining / S), (1800, 1100));
    }

    #[test]
    fn the_critical_path_is_the_chain_that_ends_last() {
        let f = forecast(&small_dag(), 700 * S);
        let critical: Vec<bool> = f.spans.iter().map(|s| s.critical).collect();
        assert_eq!(critical, [true, false, true, false, true], "a → c → e");
        // If the SQL step were quick, the agent chain would be critical instead.
        let mut quick = small_dag();
        quick[2].estimate_secs = 100;
        let f = forecast(&quick, 700 * S);
        let critical: Vec<bool> = f.spans.iter().map(|s| s.critical).collect();
        assert_eq!(critical, [true, true, false, true, true], "a → b → d → e");
    }

    #[test]
    fn a_running_step_past_its_estimate_ends_no_earlier_than_now() {
        let tasks = vec![task("x", &[], "probe", 60, Progress::Running { start: 0 })];
        let f = forecast(&tasks, 500 * S);
        assert_eq!((f.finish, f.remaining), (500 * S, 0));
    }

    #[test]
    fn a_finished_plan_has_nothing_remaining_and_skipped_steps_take_no_time() {
        let tasks = vec![
            task(
                "a",
                &[],
                "agent",
                60,
                Progress::Done {
                    start: 0,
                    end: 30 * S,
                },
            ),
            task("b", &["a"], "agent", 600, Progress::Skipped { at: 40 * S }),
        ];
        let f = forecast(&tasks, 100 * S);
        assert_eq!(f.finish, 40 * S);
        assert_eq!(f.remaining, 0);
        assert_eq!(
            f.pace.get("agent"),
            Some(&0.5),
            "the skipped step counts for no pace"
        );
    }

    #[test]
    fn one_very_slow_step_cannot_scale_the_rest_beyond_the_clamp() {
        let tasks = vec![
            task(
                "a",
                &[],
                "sql",
                10,
                Progress::Done {
                    start: 0,
                    end: 10_000 * S,
                },
            ),
            task("b", &["a"], "sql", 100, Progress::Pending),
        ];
        let f = forecast(&tasks, 10_000 * S);
        assert_eq!(f.pace.get("sql"), Some(&PACE_MAX));
        assert_eq!(f.remaining, 400 * S);
    }

    #[test]
    fn an_unknown_dependency_or_a_cycle_does_not_stop_the_forecast() {
        let tasks = vec![
            task("a", &["b", "ghost"], "agent", 10, Progress::Pending),
            task("b", &["a"], "agent", 10, Progress::Pending),
        ];
        let f = forecast(&tasks, 0);
        assert_eq!(f.spans.len(), 2);
        assert!(f.finish >= 10 * S);
    }
}
