//! Live run pages: one server-sent event stream per run page, authorized per run.
//!
//! A single hub task follows the engine's committed events. For a run that has watchers it keeps
//! the run's steps in memory, refreshes what the event touched, renders the changed step card and
//! the run header once per kind of viewer (role × requester-or-not), and hands the result to every
//! watcher of that run — so 1,000 watchers cost one render, not 1,000, and no watcher's stream
//! reads the database after its catch-up. Each watcher's stream sends `update` events whose data
//! is those partials marked `hx-swap-oob` (htmx swaps them by id), with the engine's event id as
//! the SSE id. A watcher that reconnects with `Last-Event-ID` (or the page's `?after=` for the
//! first connection) first gets the current state of everything touched since then, read back
//! from the event log and the step log. At a terminal state the stream sends `done` and ends.
//!
//! The same hub drives the Data Center pages' drawings (see `live/estate.rs`).
//!
//! Two more kinds of update carry no SSE id (they are not engine events): step log lines, which
//! the hub follows from [`StepLog`] and renders once as an append to the card's log, and the list
//! of who is watching, pushed when someone opens or closes the page.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use tokio::sync::broadcast;

use crate::engine::steplog::{self, StepLog, StepTail};
use crate::engine::store::{RunRecord, StepRecord};
use crate::engine::Store;
use crate::web::auth::Role;
use crate::web::runview::{self, Viewer};
use crate::web::{AppError, SharedClock};

mod estate;
mod hub;
mod stream;

pub use estate::{EstateJoin, Renderer};

pub use stream::stream;

/// One server-sent event frame without an id (for streams that are not engine events).
pub fn frame(event: &str, data: &str) -> Bytes {
    stream::frame(None, event, data)
}

/// One rendering kind: controls differ by role and by whether the viewer requested the run.
pub type Variant = (Role, bool);

/// What the hub sends to a run's watchers.
#[derive(Debug)]
pub struct Update {
    /// The engine event's id (the SSE id); `None` for log lines and the watcher list.
    pub id: Option<i64>,
    /// For log lines: the newest line's id, so a watcher whose catch-up already showed it skips it.
    pub log_id: Option<i64>,
    pub terminal: bool,
    pub html: Html,
}

/// The rendered partials of an update, already encoded as server-sent event frames (id, event
/// name, data lines): encoded once by the hub, each watcher's stream only clones the bytes.
#[derive(Debug)]
pub enum Html {
    /// One frame per kind of viewer (controls differ).
    PerVariant(HashMap<Variant, Bytes>),
    /// The same frame for everyone.
    Shared(Bytes),
}

impl Html {
    /// Frames of per-variant renderings, with the SSE id `id`.
    pub fn per_variant(id: Option<i64>, html: HashMap<Variant, String>) -> Html {
        Html::PerVariant(
            html.into_iter()
                .map(|(v, h)| (v, stream::frame(id, "update", &h)))
                .collect(),
        )
    }

    /// One frame for everyone, with the SSE id `id`.
    pub fn shared(id: Option<i64>, html: &str) -> Html {
        Html::Shared(stream::frame(id, "update", html))
    }

    fn for_variant(&self, v: &Variant) -> Option<&Bytes> {
        match self {
            Html::PerVariant(m) => m.get(v),
            Html::Shared(s) => Some(s),
        }
    }
}

type UpdateSender = broadcast::Sender<Arc<Update>>;

/// How long arrivals and departures are gathered before the watcher list is sent.
const ANNOUNCE_AFTER: std::time::Duration = std::time::Duration::from_millis(250);

struct RunFeed {
    tx: broadcast::Sender<Arc<Update>>,
    /// user name → (role, open streams)
    watchers: BTreeMap<String, (Role, usize)>,
    /// A new watcher list is due to be sent (see [`ANNOUNCE_AFTER`]).
    announcing: bool,
}

/// Shared between the hub task and the stream handlers.
pub struct Live {
    store: Store,
    /// Output lines of running steps (shared with the driver through the database file).
    log: Arc<StepLog>,
    /// The newest log line the hub has handled (stored before it sends the append): lines up to
    /// here reach a new watcher through its catch-up, later ones as appends.
    lines_seen: AtomicI64,
    clock: SharedClock,
    feeds: Mutex<HashMap<String, RunFeed>>,
    /// Data Center pages being watched (see `live/estate.rs`).
    estates: Mutex<estate::EstateFeeds>,
    /// Each run's Data Center, as the estate feeds look it up.
    run_inventory: Mutex<HashMap<String, String>>,
}

impl Live {
    /// Creates the hub and starts its task (needs a Tokio runtime).
    pub fn start(store: Store, clock: SharedClock) -> Arc<Live> {
        let live = Arc::new(Live {
            log: store.step_log().clone(),
            lines_seen: AtomicI64::new(0),
            store,
            clock,
            feeds: Mutex::new(HashMap::new()),
            estates: Mutex::new(HashMap::new()),
            run_inventory: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&live);
        let events = live.store.subscribe();
        let lines = live.log.subscribe();
        tokio::spawn(hub::hub(weak, events, lines));
        live
    }

    /// The step log the hub follows (for pages that show log lines).
    pub fn step_log(&self) -> &StepLog {
        &self.log
    }

    /// Names of the people with the run open right now.
    pub fn watching(&self, run_id: &str) -> Vec<String> {
        let feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        feeds
            .get(run_id)
            .map(|f| f.watchers.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn join(
        self: &Arc<Self>,
        run_id: &str,
        user: &str,
        role: Role,
    ) -> broadcast::Receiver<Arc<Update>> {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        let feed = feeds.entry(run_id.to_string()).or_insert_with(|| RunFeed {
            tx: broadcast::channel(256).0,
            watchers: BTreeMap::new(),
            announcing: false,
        });
        let rx = feed.tx.subscribe();
        let w = feed.watchers.entry(user.to_string()).or_insert((role, 0));
        w.1 += 1;
        if w.1 == 1 {
            self.announce_soon(feed, run_id);
        }
        rx
    }

    /// Sends the watcher list a moment from now, once for every arrival and departure in
    /// between: a crowd opening the page at once costs one list per moment, not one per person
    /// to each of the others.
    fn announce_soon(self: &Arc<Self>, feed: &mut RunFeed, run_id: &str) {
        if std::mem::replace(&mut feed.announcing, true) {
            return;
        }
        let live = Arc::downgrade(self);
        let run_id = run_id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(ANNOUNCE_AFTER).await;
            if let Some(live) = live.upgrade() {
                let mut feeds = live.feeds.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(feed) = feeds.get_mut(&run_id) {
                    feed.announcing = false;
                    announce(feed);
                }
            }
        });
    }

    fn leave(self: &Arc<Self>, run_id: &str, user: &str) {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(feed) = feeds.get_mut(run_id) {
            if let Some(w) = feed.watchers.get_mut(user) {
                w.1 -= 1;
                if w.1 == 0 {
                    feed.watchers.remove(user);
                    self.announce_soon(feed, run_id);
                }
            }
            if feed.watchers.is_empty() {
                feeds.remove(run_id);
            }
        }
    }

    fn watched_runs(&self) -> Vec<String> {
        let feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        feeds.keys().cloned().collect()
    }

    fn watched(&self, run_id: &str) -> Option<(UpdateSender, Vec<(String, Role)>)> {
        let feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        feeds.get(run_id).map(|f| {
            (
                f.tx.clone(),
                f.watchers
                    .iter()
                    .map(|(u, (r, _))| (u.clone(), *r))
                    .collect(),
            )
        })
    }
}

/// Tells a run's watchers who is watching now (rendered once, sent to all).
fn announce(feed: &RunFeed) {
    use askama::Template;
    let list = runview::Watching {
        names: feed.watchers.keys().cloned().collect(),
        oob: true,
    };
    match list.render() {
        Ok(html) => {
            let _ = feed.tx.send(Arc::new(Update {
                id: None,
                log_id: None,
                terminal: false,
                html: Html::shared(None, &html),
            }));
        }
        Err(e) => tracing::warn!(error = %e, "rendering the watcher list failed"),
    }
}

/// Renders the header and the named steps' cards as out-of-band partials for one variant, after
/// `gantt` (the chart's markup, the same for every variant: see [`runview::timeline::update`]).
#[allow(clippy::too_many_arguments)]
pub fn render_update(
    run: &RunRecord,
    steps: &[StepRecord],
    logs: &HashMap<String, StepTail>,
    touched: &HashSet<String>,
    variant: Variant,
    now_ms: i64,
    watching: &[String],
    gantt: &str,
) -> Result<String, askama::Error> {
    use askama::Template;
    let viewer = Viewer {
        role: variant.0,
        is_requester: variant.1,
        person: None,
        csrf: String::new(),
    };
    let mut header = runview::run_header(run, steps, &viewer, now_ms, watching);
    header.oob = true;
    let mut out = header.render()?;
    // The attention strip follows every change: a gate opening, a claim, a failure.
    let mut attention = runview::attention::attention(run, steps, &viewer, now_ms);
    attention.oob = true;
    out.push_str(&attention.render()?);
    // The Gantt chart: bars change state, the now line moves, the forecast follows.
    out.push_str(gantt);
    for step in steps.iter().filter(|s| touched.contains(&s.id)) {
        let mut card = runview::step_card(run, step, &viewer, logs.get(&step.id));
        card.oob = true;
        out.push_str(&card.render()?);
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
pub struct StreamQuery {
    /// The newest event id the page already shows (used when no `Last-Event-ID` is sent).
    pub after: Option<i64>,
}

/// What a watcher is sent before it follows the hub.
struct CatchUp {
    /// The newest engine event since `after`, if any (the SSE id).
    last_event: Option<i64>,
    /// The newest log line of the run read here.
    log_seen: i64,
    /// The header and every card touched since `after` (by events or new log lines).
    html: Option<String>,
    terminal: bool,
}

async fn catch_up(
    live: &Live,
    run_id: &str,
    after: i64,
    variant: Variant,
) -> Result<CatchUp, AppError> {
    // Lines the hub has handled are shown here (it handled them before this watcher joined, or
    // this watcher skips their append); newer ones reach the watcher as appends.
    let log_seen = live.lines_seen.load(Ordering::SeqCst);
    let mut logs = live.log.tails(run_id, runview::LOG_TAIL).await?;
    steplog::up_to(&mut logs, log_seen);
    let missed = live
        .store
        .events_after(after, Some(run_id), 1_000_000)
        .await?;
    let mut touched: HashSet<String> = missed.iter().filter_map(|e| e.step_id.clone()).collect();
    touched.extend(live.log.steps_with_lines_since(run_id, after).await?);
    let run = live.store.run(run_id).await?;
    let last_event = missed.last().map(|e| e.id);
    let html = if last_event.is_some() || !touched.is_empty() {
        let steps = live.store.steps(run_id).await?;
        let now = live.clock.now();
        // A page catching up gets the whole chart (its axis may have moved since it was drawn).
        let (gantt, _) = runview::timeline::update(&run, &steps, now, &touched, None)?;
        Some(render_update(
            &run,
            &steps,
            &logs,
            &touched,
            variant,
            now,
            &live.watching(run_id),
            &gantt,
        )?)
    } else {
        None
    };
    Ok(CatchUp {
        last_event,
        log_seen,
        html,
        terminal: run.status.is_terminal(),
    })
}
