//! The task-local sink executors say their lines into, and the scopes that open it around an
//! executor call.
//!
//! Lines wait in memory while the call runs and are handed back with its result
//! ([`collect`]): the driver commits them in the transaction that records the step's next state
//! (`store/group.rs`), so a quick step's lines cost no commit of their own — before issue 19's
//! second session each call's lines took a transaction of their own on the store's one writer,
//! and the 200-server rehearsal paid for it. A long call (a wait step polling every few
//! seconds, a CHECKDB printing its progress) must still show its lines while it runs, so lines
//! held for [`FLUSH_AFTER`], or [`FLUSH_LINES`] of them, are written on the way as before.
//! [`scope`] writes what is left when the call ends (callers without a transition to ride).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Said, StepLog, MAX_LINE_CHARS};
use crate::engine::clock::Clock;
use crate::engine::executor::IdempotencyKey;

/// Lines waiting for the writer of one call; more are dropped (and counted).
const QUEUE: usize = 256;
/// The longest a line waits in memory while its call still runs (live views show it then).
pub const FLUSH_AFTER: Duration = Duration::from_millis(250);
/// Lines held at once before they are written on the way, whatever their age.
pub const FLUSH_LINES: usize = 64;

struct Sink {
    queue: mpsc::Sender<Said>,
    clock: Arc<dyn Clock>,
    dropped: Arc<AtomicU64>,
}

tokio::task_local! {
    static SINK: Sink;
}

/// Lines of one executor call not yet written: committed with the step's next transition
/// ([`crate::engine::Store::apply_driver_event_logged`]) or on their own ([`Unwritten::write`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwritten {
    pub key: IdempotencyKey,
    /// Each line's time, text, and whether it is a technical detail.
    pub lines: Vec<Said>,
    /// Lines lost before they got here (a full queue); the dropped notice says so.
    pub dropped: u64,
}

impl Unwritten {
    /// No lines (an event no executor call led to).
    pub fn none(key: IdempotencyKey) -> Unwritten {
        Unwritten {
            key,
            lines: Vec::new(),
            dropped: 0,
        }
    }

    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.dropped == 0
    }

    /// Writes the lines in a transaction of their own (when no transition carries them).
    pub async fn write(self, log: &StepLog) {
        if self.is_empty() {
            return;
        }
        if let Err(e) = log.write_marked(&self.key, &self.lines, self.dropped).await {
            tracing::warn!(step = %self.key, error = %e, "step log lines not written");
        }
    }
}

/// Says one line, in words a person reads, on the step whose executor call is running in this
/// task; nothing outside a [`scope`]. Never waits: when the writer is behind, the line is dropped
/// and counted.
pub fn line(text: impl Into<String>) {
    say(text.into(), false);
}

/// Says one technical line (what was sent, a server's raw message): kept and shown on the step's
/// own page, left off the run page's cards.
pub fn detail(text: impl Into<String>) {
    say(text.into(), true);
}

fn say(text: String, detail: bool) {
    let _ = SINK.try_with(|sink| {
        let text = cut(text);
        if sink
            .queue
            .try_send((sink.clock.now(), text, detail))
            .is_err()
        {
            sink.dropped.fetch_add(1, Ordering::Relaxed);
        }
    });
}

pub(super) fn cut(mut text: String) -> String {
    // One line per entry: control characters (newlines included) become spaces.
    if text.chars().any(char::is_control) {
        text = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
    }
    if let Some((at, _)) = text.char_indices().nth(MAX_LINE_CHARS) {
        text.truncate(at);
        text.push('…');
    }
    text
}

/// Runs `work` (an executor call for the step `key`) with a sink for its lines, and waits until
/// they are written.
pub async fn scope<F: Future>(
    log: Arc<StepLog>,
    key: IdempotencyKey,
    clock: Arc<dyn Clock>,
    work: F,
) -> F::Output {
    let (out, left) = collect(log.clone(), key, clock, work).await;
    left.write(&log).await;
    out
}

/// Runs `work` with a sink for its lines and returns its output with the lines not yet written
/// (see the module docs): the caller commits them with the step's next transition.
pub async fn collect<F: Future>(
    log: Arc<StepLog>,
    key: IdempotencyKey,
    clock: Arc<dyn Clock>,
    work: F,
) -> (F::Output, Unwritten) {
    let (queue, rx) = mpsc::channel::<Said>(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(hold(log, key.clone(), rx, dropped.clone()));
    let sink = Sink {
        queue,
        clock,
        dropped: dropped.clone(),
    };
    let out = SINK.scope(sink, work).await;
    // The sink (and with it the queue's sender) is gone: the writer hands back what it holds.
    let lines = writer.await.unwrap_or_else(|e| {
        tracing::warn!(step = %key, error = %e, "step log writer ended abnormally");
        Vec::new()
    });
    let dropped = dropped.swap(0, Ordering::Relaxed);
    (
        out,
        Unwritten {
            key,
            lines,
            dropped,
        },
    )
}

/// Holds a call's lines until it ends, writing those that waited [`FLUSH_AFTER`] (or the
/// [`FLUSH_LINES`]th) on the way; returns the rest.
async fn hold(
    log: Arc<StepLog>,
    key: IdempotencyKey,
    mut rx: mpsc::Receiver<Said>,
    dropped: Arc<AtomicU64>,
) -> Vec<Said> {
    let mut held: Vec<Said> = Vec::new();
    let mut oldest: Option<Instant> = None;
    loop {
        let due = oldest.map(|t| t + FLUSH_AFTER);
        tokio::select! {
            n = rx.recv_many(&mut held, QUEUE) => {
                if n == 0 {
                    return held;
                }
                oldest.get_or_insert_with(Instant::now);
                if held.len() < FLUSH_LINES {
                    continue;
                }
            }
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {}
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if let Err(e) = log.write_marked(&key, &held, lost).await {
            tracing::warn!(step = %key, error = %e, "step log lines not written");
        }
        held.clear();
        oldest = None;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{collect, line, FLUSH_LINES};
    use crate::engine::clock::{Clock, TokioClock};
    use crate::engine::executor::IdempotencyKey;
    use crate::engine::Store;

    fn key() -> IdempotencyKey {
        IdempotencyKey {
            run_id: "r1".into(),
            step_id: "s1".into(),
            attempt: 1,
        }
    }

    fn clock() -> Arc<dyn Clock> {
        Arc::new(TokioClock::new())
    }

    #[tokio::test]
    async fn a_quick_call_s_lines_are_handed_back_unwritten_for_the_step_s_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("l.db")).await.unwrap();
        let log = store.step_log().clone();
        let (out, left) = collect(log.clone(), key(), clock(), async {
            line("stopped BackupServer");
            7
        })
        .await;
        assert_eq!(out, 7);
        assert_eq!(left.key, key());
        assert_eq!(left.lines.len(), 1);
        assert_eq!(left.lines[0].1, "stopped BackupServer");
        assert_eq!(log.tail("r1", "s1", 10).await.unwrap().total, 0);
        left.write(&log).await;
        assert_eq!(log.tail("r1", "s1", 10).await.unwrap().total, 1);
    }

    #[tokio::test]
    async fn a_long_call_s_lines_are_written_and_published_while_it_still_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("l.db")).await.unwrap();
        let log = store.step_log().clone();
        let mut published = log.subscribe();
        // The call itself waits for its line to be published: it ends only if the line was
        // written on the way (the bound turns a hang into a failure, it measures nothing).
        let call = async move {
            line("poll 1: not yet");
            published.recv().await.map(|l| l.text)
        };
        let (seen, left) = tokio::time::timeout(
            Duration::from_secs(60),
            collect(log.clone(), key(), clock(), call),
        )
        .await
        .expect("the line is written while the call runs");
        assert_eq!(seen.unwrap(), "poll 1: not yet");
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(log.tail("r1", "s1", 10).await.unwrap().total, 1);
    }

    #[tokio::test]
    async fn a_burst_of_lines_is_written_on_the_way_without_waiting_for_its_age() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("l.db")).await.unwrap();
        let log = store.step_log().clone();
        let (_, left) = collect(log.clone(), key(), clock(), async {
            for i in 0..FLUSH_LINES {
                line(format!("line {i}"));
            }
            // Lets the writer take the burst before the call ends.
            for _ in 0..1000 {
                tokio::task::yield_now().await;
                if log.tail("r1", "s1", 1).await.unwrap().total > 0 {
                    break;
                }
            }
        })
        .await;
        let written = log.tail("r1", "s1", 1000).await.unwrap().total as usize;
        assert_eq!(written + left.lines.len(), FLUSH_LINES);
        assert!(written > 0, "a full batch is not held back");
    }
}
