//! The hub task: follows the engine's committed events and the step log, keeps the runs that
//! have watchers in memory, renders each change once per kind of viewer (or once for everyone,
//! for log lines) and hands it to the run's broadcast channel. Nothing here is per watcher.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use tokio::sync::broadcast::{self, error::RecvError};

use super::{render_update, Html, Live, Update, Variant};
use crate::engine::audit::AuditEvent;
use crate::engine::steplog::{self, LogLine, StepTail};
use crate::engine::store::{RunRecord, StepRecord};
use crate::engine::Store;
use crate::web::runview::{self, LogAppend, LogRow, LOG_TAIL};

/// Per-run cache the hub keeps while a run has watchers.
struct Cached {
    run: RunRecord,
    steps: Vec<StepRecord>,
    /// The newest lines of each step, as the cards show them.
    logs: HashMap<String, StepTail>,
    /// Lines up to this id were read with the run; later ones arrive on the channel.
    log_seen: i64,
    /// The Gantt chart's axis as last sent: while it holds, an update sends only the parts of
    /// the chart a change touched.
    gantt_axis: Option<(i64, i64, &'static str)>,
}

pub(super) async fn hub(
    live: Weak<Live>,
    mut events: broadcast::Receiver<AuditEvent>,
    mut lines: broadcast::Receiver<LogLine>,
) {
    let mut cache: HashMap<String, Cached> = HashMap::new();
    let mut last_id = 0i64;
    if let Some(live) = live.upgrade() {
        match live.log.newest_id().await {
            Ok(id) => live.lines_seen.store(id, Ordering::SeqCst),
            Err(e) => tracing::warn!(error = %e, "live view could not read the step log"),
        }
    }
    loop {
        tokio::select! {
            got = events.recv() => {
                let batch: Vec<AuditEvent> = match got {
                    Ok(e) => vec![e],
                    Err(RecvError::Closed) => return,
                    Err(RecvError::Lagged(_)) => {
                        let Some(live) = live.upgrade() else { return };
                        match live.store.events_after(last_id, None, 100_000).await {
                            Ok(v) => v,
                            Err(e) => {
                                tracing::warn!(error = %e, "live view could not replay missed events");
                                continue;
                            }
                        }
                    }
                };
                let Some(live) = live.upgrade() else { return };
                for event in batch {
                    if event.id <= last_id {
                        continue;
                    }
                    last_id = event.id;
                    on_event(&live, &mut cache, &event).await;
                }
                cache.retain(|run_id, _| live.watched(run_id).is_some());
            }
            got = lines.recv() => {
                let Some(live) = live.upgrade() else { return };
                match got {
                    Ok(first) => {
                        // Coalesce a burst into one update per run.
                        let mut batch = vec![first];
                        while let Ok(l) = lines.try_recv() {
                            batch.push(l);
                        }
                        on_lines(&live, &mut cache, batch).await;
                    }
                    Err(RecvError::Lagged(_)) => resend_logged_cards(&live, &mut cache).await,
                    // The step log lives as long as `Live` holds it; never closes first.
                    Err(RecvError::Closed) => return,
                }
            }
        }
    }
}

async fn on_event(live: &Live, cache: &mut HashMap<String, Cached>, event: &AuditEvent) {
    live.estate_event(event).await;
    let Some(run_id) = event.run_id.clone() else {
        return;
    };
    let Some((tx, watchers)) = live.watched(&run_id) else {
        cache.remove(&run_id);
        return;
    };
    if let Err(e) = refresh(live, cache, &run_id, event.step_id.as_deref()).await {
        tracing::warn!(run = %run_id, error = %e, "live view could not read the run");
        return;
    }
    let Some(c) = cache.get_mut(&run_id) else {
        return;
    };
    let touched: HashSet<String> = event.step_id.iter().cloned().collect();
    let html = render_for(live, c, &touched, &watchers);
    let _ = tx.send(Arc::new(Update {
        id: Some(event.id),
        log_id: None,
        terminal: c.run.status.is_terminal(),
        html: Html::per_variant(Some(event.id), html),
    }));
}

/// Renders the header and the touched cards once per kind of viewer watching (the Gantt chart
/// once for all of them).
fn render_for(
    live: &Live,
    c: &mut Cached,
    touched: &HashSet<String>,
    watchers: &[(String, crate::web::auth::Role)],
) -> HashMap<Variant, String> {
    let names: Vec<String> = watchers.iter().map(|(u, _)| u.clone()).collect();
    let variants: HashSet<Variant> = watchers
        .iter()
        .map(|(u, r)| (*r, *u == c.run.requester))
        .collect();
    let now = live.clock.now();
    let gantt = match runview::timeline::update(&c.run, &c.steps, now, touched, c.gantt_axis) {
        Ok((html, axis)) => {
            c.gantt_axis = Some(axis);
            html
        }
        Err(e) => {
            tracing::warn!(error = %e, "rendering the Gantt chart failed");
            String::new()
        }
    };
    let mut html = HashMap::new();
    for v in variants {
        match render_update(&c.run, &c.steps, &c.logs, touched, v, now, &names, &gantt) {
            Ok(h) => {
                html.insert(v, h);
            }
            Err(e) => tracing::warn!(error = %e, "rendering a live update failed"),
        }
    }
    html
}

/// New log lines: appended to the cached tails and sent as one append per run, rendered once.
async fn on_lines(live: &Live, cache: &mut HashMap<String, Cached>, batch: Vec<LogLine>) {
    let mut by_run: HashMap<String, Vec<LogLine>> = HashMap::new();
    if let Some(newest) = batch.iter().map(|l| l.id).max() {
        // Before sending: a watcher joining from now on gets these lines in its catch-up.
        live.lines_seen.fetch_max(newest, Ordering::SeqCst);
    }
    for l in batch {
        by_run.entry(l.run_id.clone()).or_default().push(l);
    }
    for (run_id, lines) in by_run {
        let Some((tx, _)) = live.watched(&run_id) else {
            cache.remove(&run_id);
            continue;
        };
        if !cache.contains_key(&run_id) {
            if let Err(e) = refresh(live, cache, &run_id, None).await {
                tracing::warn!(run = %run_id, error = %e, "live view could not read the run");
                continue;
            }
        }
        if let Some(c) = cache.get_mut(&run_id) {
            for l in lines.iter().filter(|l| l.id > c.log_seen) {
                let tail = c.logs.entry(l.step_id.clone()).or_default();
                tail.lines.push(l.clone());
                if tail.lines.len() > LOG_TAIL {
                    tail.lines.remove(0);
                }
                tail.total += 1;
            }
            c.log_seen = c
                .log_seen
                .max(lines.iter().map(|l| l.id).max().unwrap_or(0));
        }
        let mut html = String::new();
        let mut per_step: Vec<(String, Vec<LogRow>)> = Vec::new();
        // Technical lines reach the cache (and the step's page) but not the cards.
        for l in lines.iter().filter(|l| !l.detail) {
            match per_step.iter_mut().find(|(s, _)| *s == l.step_id) {
                Some((_, rows)) => rows.push(LogRow::of(l)),
                None => per_step.push((l.step_id.clone(), vec![LogRow::of(l)])),
            }
        }
        let dom_ids: HashMap<&str, String> = cache
            .get(&run_id)
            .map(|c| {
                c.steps
                    .iter()
                    .map(|s| (s.id.as_str(), runview::step_dom_id(s)))
                    .collect()
            })
            .unwrap_or_default();
        for (step_id, rows) in per_step {
            let Some(dom_id) = dom_ids.get(step_id.as_str()) else {
                continue;
            };
            let append = LogAppend {
                dom_id: dom_id.clone(),
                lines: rows,
            };
            match askama::Template::render(&append) {
                Ok(h) => html.push_str(&h),
                Err(e) => tracing::warn!(error = %e, "rendering log lines failed"),
            }
        }
        if html.is_empty() {
            continue;
        }
        let _ = tx.send(Arc::new(Update {
            id: None,
            log_id: lines.iter().map(|l| l.id).max(),
            terminal: false,
            html: Html::shared(None, &html),
        }));
    }
}

/// The hub fell behind the step log: reread every watched run and resend the cards of steps
/// that have lines (rare; the table has every line the channel dropped).
async fn resend_logged_cards(live: &Live, cache: &mut HashMap<String, Cached>) {
    match live.log.newest_id().await {
        Ok(id) => live.lines_seen.fetch_max(id, Ordering::SeqCst),
        Err(e) => {
            tracing::warn!(error = %e, "live view could not read the step log");
            return;
        }
    };
    let runs: Vec<String> = live.watched_runs();
    for run_id in runs {
        let Some((tx, watchers)) = live.watched(&run_id) else {
            continue;
        };
        cache.remove(&run_id);
        if let Err(e) = refresh(live, cache, &run_id, None).await {
            tracing::warn!(run = %run_id, error = %e, "live view could not read the run");
            continue;
        }
        let Some(c) = cache.get_mut(&run_id) else {
            continue;
        };
        c.gantt_axis = None;
        let touched: HashSet<String> = c.logs.keys().cloned().collect();
        let html = render_for(live, c, &touched, &watchers);
        let _ = tx.send(Arc::new(Update {
            id: None,
            log_id: Some(c.log_seen),
            terminal: c.run.status.is_terminal(),
            html: Html::per_variant(None, html),
        }));
    }
}

async fn refresh(
    live: &Live,
    cache: &mut HashMap<String, Cached>,
    run_id: &str,
    step_id: Option<&str>,
) -> Result<(), crate::engine::EngineError> {
    let store: &Store = &live.store;
    match (cache.get_mut(run_id), step_id) {
        (Some(c), Some(step_id)) => {
            let fresh = store.step(run_id, step_id).await?;
            match c.steps.iter_mut().find(|s| s.id == step_id) {
                Some(slot) => *slot = fresh,
                None => c.steps = store.steps(run_id).await?,
            }
            c.run = store.run(run_id).await?;
        }
        (Some(c), None) => {
            c.run = store.run(run_id).await?;
        }
        (None, _) => {
            let run = store.run(run_id).await?;
            let steps = store.steps(run_id).await?;
            let log_seen = live.lines_seen.load(Ordering::SeqCst);
            let mut logs = live.log.tails(run_id, LOG_TAIL).await?;
            steplog::up_to(&mut logs, log_seen);
            cache.insert(
                run_id.to_string(),
                Cached {
                    run,
                    steps,
                    logs,
                    log_seen,
                    // Unknown: watchers may have joined on any axis; the first update is whole.
                    gantt_axis: None,
                },
            );
        }
    }
    Ok(())
}
