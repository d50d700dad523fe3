//! The run's Gantt chart: for each step (each phase, as an expandable lane, above
//! [`MAX_STEP_BARS`] steps) its planned span, its actual span and, for what has not finished,
//! the forecast span, on one time axis from the run's start, with a line at now and at the
//! window's end, and the critical path marked (see [`super::forecast`]). Server-rendered SVG: no
//! JavaScript draws it, askama escapes every label, and the live stream swaps it in when a step
//! changes: the top chart and the lanes of the steps that changed ([`update`]), or the whole figure
//! when the time axis moved (its span is rounded up to a round figure, so that is rare). Every bar
//! has a `<title>`, and the same figures are in a table beside it for screen readers and for
//! anyone who prefers numbers. The change record draws the same chart.

use std::collections::HashSet;

use askama::Template;

use super::forecast::{self, Progress, Span, Task};
use crate::engine::store::{RunRecord, StepRecord};
use crate::web::views::fmt_duration;

/// Above this many plan steps the chart shows one lane per phase (each expandable).
pub const MAX_STEP_BARS: usize = 40;
/// Width of the label column and of the bars' area, in SVG user units.
const LABEL_W: i64 = 250;
const CHART_W: i64 = 700;
const ROW_H: i64 = 26;
/// The axis (tick labels, "now") above the first row.
const AXIS_H: i64 = 16;
/// Characters of a label drawn in the SVG (the table has the whole text).
const LABEL_CHARS: usize = 34;

/// One row: a step, or a phase's lane.
pub struct Bar {
    pub label: String,
    /// The label as drawn (cut to fit), with `◆ ` in front on the critical path.
    pub short: String,
    pub planned: String,
    pub actual: String,
    /// When what is left of it should end, from now ("in 12m 00s"); empty when it is over.
    pub forecast: String,
    /// `late` when the actual time is past the plan, `running`, `done`, or `waiting`.
    pub state: &'static str,
    pub critical: bool,
    pub y: i64,
    pub text_y: i64,
    pub actual_y: i64,
    pub planned_x: i64,
    pub planned_w: i64,
    pub actual_x: i64,
    pub actual_w: i64,
    pub forecast_x: i64,
    pub forecast_w: i64,
}

pub struct Tick {
    pub x: i64,
    pub label: String,
}

/// One SVG: rows on the shared time axis.
#[derive(Template)]
#[template(path = "partials/gantt_chart.html")]
pub struct Chart {
    /// DOM id prefix (unique on the page).
    pub id: String,
    pub title: String,
    /// `bar` for the top chart's rows, `row` for a lane's steps.
    pub row_class: &'static str,
    pub bars: Vec<Bar>,
    pub ticks: Vec<Tick>,
    pub now_x: Option<i64>,
    pub window_x: Option<i64>,
    pub label_w: i64,
    pub width: i64,
    pub height: i64,
}

/// A phase's lane, expandable to its steps.
pub struct Lane {
    /// Its place among the lanes (DOM ids `lane-N`, `lane-N-chart`, `lane-N-count`).
    pub index: usize,
    pub name: String,
    pub steps: usize,
    pub done: usize,
    pub chart: Chart,
}

#[derive(Template)]
#[template(path = "partials/timeline.html")]
pub struct Timeline {
    /// `step` or `phase`.
    pub unit: &'static str,
    pub chart: Chart,
    /// Per phase, when `unit` is `phase`.
    pub lanes: Vec<Lane>,
    /// The span the axis covers ("3h 10m").
    pub scale: String,
    /// Whether the run is still going (a now line and forecast bars).
    pub live: bool,
    /// Swapped in by the live stream.
    pub oob: bool,
    /// The time axis (origin, span in ms) and the unit: a page drawn on another axis needs the
    /// whole figure again.
    pub axis: (i64, i64, &'static str),
    /// Each lane's steps' ids, to know which lanes a change touched.
    lane_steps: Vec<Vec<String>>,
}

/// The parts of the chart a change touched, swapped in by id: the top chart (with its table),
/// and each touched lane's step chart and count.
#[derive(Template)]
#[template(path = "partials/timeline_live.html")]
pub struct TimelineLive<'a> {
    pub unit: &'static str,
    pub chart: &'a Chart,
    pub lanes: Vec<&'a Lane>,
}

/// Where times fall on the axis.
struct Axis {
    origin: i64,
    span: i64,
}

impl Axis {
    fn x(&self, ms: i64) -> i64 {
        LABEL_W
            + ((ms - self.origin).clamp(0, self.span) as i128 * CHART_W as i128 / self.span as i128)
                as i64
    }
    /// `(x, width)` of a span, at least 2 units wide when it is not empty and on the axis.
    fn bar(&self, from: i64, to: i64) -> (i64, i64) {
        let (a, b) = (self.x(from), self.x(to.max(from)));
        let on_axis = to > from && to >= self.origin && from <= self.origin + self.span;
        (a, if on_axis { (b - a).max(2) } else { 0 })
    }
    fn ticks(&self) -> Vec<Tick> {
        const STEPS: [i64; 12] = [
            60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800,
        ];
        let secs = self.span / 1000;
        let every = STEPS
            .iter()
            .copied()
            .find(|s| secs / s <= 7)
            .unwrap_or(604800);
        (0..=secs / every)
            .map(|i| Tick {
                x: self.x(self.origin + i * every * 1000),
                label: tick_label(i * every),
            })
            // A label at the very end would be cut off by the edge of the drawing.
            .filter(|t| t.x <= LABEL_W + CHART_W - 40)
            .collect()
    }
}

/// The axis' span rounded up to a round figure (and at least a minute), so that it only moves
/// now and then as a run goes on (each move redraws every lane).
fn round_span(ms: i64) -> i64 {
    const MINUTES: [i64; 22] = [
        1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360, 480, 600, 720, 960, 1200, 1440,
        2160, 2880,
    ];
    let min = (ms.max(1) + 59_999) / 60_000;
    let rounded = MINUTES
        .iter()
        .copied()
        .find(|m| *m >= min)
        .unwrap_or_else(|| (min + 1439) / 1440 * 1440);
    rounded * 60_000
}

/// "start", "+30 min", "+1 h", "+1 h 30".
fn tick_label(secs: i64) -> String {
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    match (h, m) {
        (0, 0) => "start".into(),
        (0, m) => format!("+{m} min"),
        (h, 0) => format!("+{h} h"),
        (h, m) => format!("+{h} h {m:02}"),
    }
}

/// The label as drawn: cut to fit, keeping a trailing "on SERVER" (steps on several servers
/// differ only there), with `◆ ` in front on the critical path.
fn short(label: &str, critical: bool) -> String {
    let n = label.chars().count();
    let cut = if n > LABEL_CHARS {
        let tail = label
            .rfind(" on ")
            .map(|i| &label[i..])
            .filter(|t| t.chars().count() + 10 < LABEL_CHARS)
            .unwrap_or("");
        let keep = LABEL_CHARS - 1 - tail.chars().count();
        let mut t: String = label.chars().take(keep).collect();
        t.push('…');
        t.push_str(tail);
        t
    } else {
        label.to_string()
    };
    if critical {
        format!("◆ {cut}")
    } else {
        cut
    }
}

/// What one row covers: planned, actual (if started) and forecast (if not over) spans.
struct Spans {
    label: String,
    planned: (i64, i64),
    actual: Option<(i64, i64)>,
    forecast: Option<(i64, i64)>,
    running: bool,
    critical: bool,
}

fn spans_of(task: &Task, plan: &Span, projected: &Span, now: i64) -> Spans {
    let (actual, forecast, running) = match task.progress {
        Progress::Done { start, end } => (Some((start, end)), None, false),
        Progress::Skipped { .. } => (None, None, false),
        // A step that has just started still shows a sliver of actual time.
        Progress::Running { start } => (
            Some((start, now.max(start + 1))),
            (projected.end > now).then_some((now, projected.end)),
            true,
        ),
        Progress::Pending => (None, Some((projected.start, projected.end)), false),
    };
    Spans {
        label: String::new(),
        planned: (plan.start, plan.end),
        actual,
        forecast,
        running,
        critical: projected.critical,
    }
}

fn bar(i: usize, s: &Spans, axis: &Axis, now: i64, live: bool) -> Bar {
    let y = AXIS_H + 4 + i as i64 * ROW_H;
    let planned_secs = (s.planned.1 - s.planned.0) / 1000;
    let actual_secs = s.actual.map(|(a, b)| (b - a) / 1000);
    let state = match actual_secs {
        Some(a) if a > planned_secs => "late",
        Some(_) if s.running => "running",
        Some(_) if s.forecast.is_some() => "running",
        Some(_) => "done",
        None => "waiting",
    };
    let (planned_x, planned_w) = axis.bar(s.planned.0, s.planned.1);
    let (actual_x, actual_w) = s.actual.map_or((0, 0), |(a, b)| axis.bar(a, b));
    let (forecast_x, forecast_w) = match s.forecast {
        Some((a, b)) if live => axis.bar(a, b),
        _ => (0, 0),
    };
    Bar {
        label: s.label.clone(),
        short: short(&s.label, s.critical && live),
        planned: fmt_duration(planned_secs),
        actual: match actual_secs {
            Some(a) if s.running || (s.forecast.is_some() && live) => {
                format!("{} so far", fmt_duration(a))
            }
            Some(a) => fmt_duration(a),
            None => "not started".into(),
        },
        forecast: match s.forecast {
            Some((_, end)) if live => format!("ends in {}", fmt_duration((end - now) / 1000)),
            _ => String::new(),
        },
        state,
        critical: s.critical && live,
        y,
        text_y: y + 14,
        actual_y: y + 11,
        planned_x,
        planned_w,
        actual_x,
        actual_w,
        forecast_x,
        forecast_w,
    }
}

/// What every chart of one run shares.
struct Frame {
    axis: Axis,
    now: i64,
    live: bool,
    window_end: Option<i64>,
}

fn chart(id: String, title: String, row_class: &'static str, rows: &[Spans], f: &Frame) -> Chart {
    let (axis, now, live, window_end) = (&f.axis, f.now, f.live, f.window_end);
    let bars: Vec<Bar> = rows
        .iter()
        .enumerate()
        .map(|(i, s)| bar(i, s, axis, now, live))
        .collect();
    let within = |t: i64| t >= axis.origin && t <= axis.origin + axis.span;
    Chart {
        id,
        title,
        row_class,
        height: AXIS_H + 8 + bars.len() as i64 * ROW_H,
        bars,
        ticks: axis.ticks(),
        now_x: (live && within(now)).then(|| axis.x(now)),
        window_x: window_end.filter(|t| within(*t)).map(|t| axis.x(t)),
        label_w: LABEL_W,
        width: LABEL_W + CHART_W + 10,
    }
}

/// A lane: the union of its steps' spans.
fn lane_spans(name: &str, rows: &[&Spans], all_over: bool) -> Spans {
    let min_max = |it: &mut dyn Iterator<Item = (i64, i64)>| {
        it.fold(None, |acc: Option<(i64, i64)>, (a, b)| {
            Some(acc.map_or((a, b), |(x, y)| (x.min(a), y.max(b))))
        })
    };
    Spans {
        label: name.to_string(),
        planned: min_max(&mut rows.iter().map(|r| r.planned)).unwrap_or((0, 0)),
        actual: min_max(&mut rows.iter().filter_map(|r| r.actual)),
        forecast: if all_over {
            None
        } else {
            min_max(&mut rows.iter().filter_map(|r| r.forecast))
        },
        running: rows.iter().any(|r| r.running),
        critical: rows.iter().any(|r| r.critical),
    }
}

/// The chart of a run at `now_ms`, with its window's end marked.
pub fn gantt(run: &RunRecord, steps: &[StepRecord], now_ms: i64) -> Timeline {
    build(steps, now_ms, run.window_end, !run.status.is_terminal())
}

/// The chart of a run's steps at `now_ms` (still going while any step is not over).
pub fn timeline(steps: &[StepRecord], now_ms: i64) -> Timeline {
    let live = steps
        .iter()
        .any(|s| s.undo_of.is_none() && !s.status.is_terminal());
    build(steps, now_ms, None, live)
}

fn build(steps: &[StepRecord], now: i64, window_end: Option<i64>, live: bool) -> Timeline {
    let plan: Vec<&StepRecord> = steps.iter().filter(|s| s.undo_of.is_none()).collect();
    let tasks = forecast::tasks_of(steps);
    let started = tasks
        .iter()
        .filter_map(|t| match t.progress {
            Progress::Done { start, .. } | Progress::Running { start } => Some(start),
            Progress::Skipped { at } => Some(at),
            Progress::Pending => None,
        })
        .min();
    let origin = started.unwrap_or(now).min(now);
    // The plan as it was: every step from the run's start at its estimate.
    let baseline: Vec<Task> = tasks
        .iter()
        .map(|t| Task {
            progress: Progress::Pending,
            ..t.clone()
        })
        .collect();
    let planned = forecast::forecast(&baseline, origin);
    let projected = forecast::forecast(&tasks, now);
    let mut rows: Vec<Spans> = Vec::with_capacity(tasks.len());
    for (i, t) in tasks.iter().enumerate() {
        let mut s = spans_of(t, &planned.spans[i], &projected.spans[i], now);
        s.label = plan[i].spec.title.clone();
        rows.push(s);
    }
    let end = rows
        .iter()
        .flat_map(|r| {
            [
                Some(r.planned.1),
                r.actual.map(|a| a.1),
                r.forecast.map(|f| f.1),
            ]
        })
        .flatten()
        .chain(live.then_some(now))
        .max()
        .unwrap_or(now);
    let axis = Axis {
        origin,
        span: round_span(end - origin),
    };
    let frame = Frame {
        axis,
        now,
        live,
        window_end,
    };
    // Joins (barrier steps of large estates) are in the forecast, for the edges that pass
    // through them, but never drawn: nobody waits on them.
    let shown = |i: usize| !plan[i].spec.is_join();
    let by_phase = (0..plan.len()).filter(|&i| shown(i)).count() > MAX_STEP_BARS;
    let title = |unit: &str| {
        format!(
            "Gantt chart: planned, actual and forecast time of each {unit}, from the run's start"
        )
    };
    let (unit, top, lanes, lane_steps) = if by_phase {
        let mut names: Vec<&str> = Vec::new();
        for s in plan.iter().filter(|s| !s.spec.is_join()) {
            if !names.contains(&s.spec.phase.as_str()) {
                names.push(&s.spec.phase);
            }
        }
        let mut lane_rows = Vec::new();
        let mut lanes = Vec::new();
        let mut lane_steps = Vec::new();
        for (n, name) in names.iter().enumerate() {
            let idx: Vec<usize> = (0..plan.len())
                .filter(|&i| shown(i) && plan[i].spec.phase == *name)
                .collect();
            let done = idx
                .iter()
                .filter(|&&i| plan[i].status.is_terminal())
                .count();
            let of: Vec<&Spans> = idx.iter().map(|&i| &rows[i]).collect();
            lane_rows.push(lane_spans(name, &of, done == idx.len()));
            let own: Vec<Spans> = idx
                .iter()
                .map(|&i| Spans {
                    label: rows[i].label.clone(),
                    ..spans_of(&tasks[i], &planned.spans[i], &projected.spans[i], now)
                })
                .collect();
            lane_steps.push(idx.iter().map(|&i| plan[i].id.clone()).collect());
            lanes.push(Lane {
                index: n,
                name: name.to_string(),
                steps: idx.len(),
                done,
                chart: chart(
                    format!("lane-{n}"),
                    format!("Gantt chart of the steps of {name}"),
                    "row",
                    &own,
                    &frame,
                ),
            });
        }
        let top = chart("timeline".into(), title("phase"), "bar", &lane_rows, &frame);
        ("phase", top, lanes, lane_steps)
    } else {
        let rows: Vec<Spans> = rows
            .into_iter()
            .enumerate()
            .filter(|(i, _)| shown(*i))
            .map(|(_, r)| r)
            .collect();
        let top = chart("timeline".into(), title("step"), "bar", &rows, &frame);
        ("step", top, Vec::new(), Vec::new())
    };
    Timeline {
        unit,
        chart: top,
        lanes,
        scale: fmt_duration(frame.axis.span / 1000),
        live,
        oob: false,
        axis: (frame.axis.origin, frame.axis.span, unit),
        lane_steps,
    }
}

/// What the live stream sends of the chart after a change to `touched` steps: the whole figure
/// when `drawn` (the axis the watchers' pages were drawn on) differs from this one's, else only
/// the top chart and the touched lanes. Returns the markup and this chart's axis.
pub fn update(
    run: &RunRecord,
    steps: &[StepRecord],
    now_ms: i64,
    touched: &HashSet<String>,
    drawn: Option<(i64, i64, &'static str)>,
) -> Result<(String, (i64, i64, &'static str)), askama::Error> {
    let t = gantt(run, steps, now_ms);
    let axis = t.axis;
    if drawn != Some(axis) {
        return Ok((t.oob().render()?, axis));
    }
    let lanes = t
        .lanes
        .iter()
        .zip(&t.lane_steps)
        .filter(|(_, ids)| ids.iter().any(|id| touched.contains(id)))
        .map(|(l, _)| l)
        .collect();
    let live = TimelineLive {
        unit: t.unit,
        chart: &t.chart,
        lanes,
    };
    Ok((live.render()?, axis))
}

impl Timeline {
    /// The same chart, marked to be swapped in by the live stream.
    pub fn oob(mut self) -> Timeline {
        self.oob = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_few_and_start_at_the_start() {
        let axis = Axis {
            origin: 0,
            span: 3 * 3600 * 1000,
        };
        let t = axis.ticks();
        assert!(t.len() <= 8, "{}", t.len());
        assert_eq!(t[0].label, "start");
        assert_eq!(t[0].x, LABEL_W);
        assert_eq!(t[1].label, "+30 min");
        assert_eq!(t[2].label, "+1 h");
        assert_eq!(tick_label(5400), "+1 h 30");
        assert!(t.last().map(|l| l.x).unwrap_or(0) <= LABEL_W + CHART_W);
    }

    #[test]
    fn a_long_label_keeps_its_server() {
        let s = short("Turn off backups and restores on NWDIR1B", false);
        assert_eq!(s.chars().count(), LABEL_CHARS);
        assert!(s.ends_with("… on NWDIR1B"), "{s}");
        assert_eq!(short("Prepare", true), "◆ Prepare");
        let plain = short(&"x".repeat(50), false);
        assert!(plain.ends_with('…') && plain.chars().count() == LABEL_CHARS);
    }

    #[test]
    fn the_axis_span_is_rounded_up_to_a_round_figure() {
        assert_eq!(round_span(0), 60_000);
        assert_eq!(round_span(6 * 60_000), 10 * 60_000);
        assert_eq!(round_span(15 * 3_600_000 + 7 * 60_000), 16 * 3_600_000);
        assert_eq!(round_span(49 * 3_600_000), 72 * 3_600_000);
        assert_eq!(round_span(80 * 3_600_000), 96 * 3_600_000);
    }

    #[test]
    fn a_bar_outside_the_axis_is_clamped_and_an_empty_span_has_no_width() {
        let axis = Axis {
            origin: 1000,
            span: 10_000,
        };
        assert_eq!(axis.bar(0, 500), (LABEL_W, 0));
        assert_eq!(axis.bar(1000, 11_000), (LABEL_W, CHART_W));
        assert_eq!(axis.bar(5000, 5000).1, 0);
        assert_eq!(axis.bar(5000, 5001).1, 2, "a started step is visible");
    }
}
