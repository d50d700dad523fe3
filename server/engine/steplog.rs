//! Step log lines: what executors say while a step runs (agent action progress, SQL Server INFO
//! messages, probe attempts, wait-step polls), kept in the `step_log` table and published to live
//! views.
//!
//! The channel is a task-local sink (`steplog/sink.rs`): the driver runs each executor call
//! inside [`collect`], and executor code calls [`line`] wherever it has something to say.
//! Outside a scope (a CLI probe, a unit test) [`line`] does nothing, so executors need no new
//! parameter and the `Executor` trait is unchanged. A call's lines are held in memory and handed
//! back with its result; the driver commits them in the same transaction as the step's next
//! state (the group commit, `store/group.rs`), so a step's lines are durable before — in fact
//! together with — its result, and cost no transaction of their own. A call that runs long writes
//! lines that waited a quarter of a second on the way, so live views still follow it.
//!
//! Bounds, so a chatty host cannot fill the disk: at most [`LINES_PER_STEP`] lines per step
//! (over all its attempts), each cut to [`MAX_LINE_CHARS`] characters, plus one line saying that
//! more was dropped — 200,000 characters (under 1 MiB of UTF-8) per step at worst. A line
//! offered while the queue is full is dropped and counted in that same notice.
//!
//! The step log is a table of the store's database and is reached through it
//! ([`Store::step_log`](super::store::Store::step_log)): its lines ride the store's one writer
//! connection and are read through the store's readers, so the driver and the dashboard, which
//! share the [`Store`](super::store::Store), share the log too.
//!
//! Durability without an fsync of their own: lines written on the way (a long call) or on their
//! own ([`scope`]) are committed on the writer with `synchronous=NORMAL` for that one transaction
//! (the connection is set back to `FULL` right after, and again each time the writer is
//! acquired). In WAL mode such a commit is visible and survives a crash of the process at once,
//! and reaches the disk with the next `FULL` commit — the step's own transition, which follows
//! its lines.
//!
//! A line is either what happened, in words a person reads ([`line`]: "Stopped BackupServer in
//! 2.1 s"), or a technical detail behind it ([`detail`]: the agent action's id, each SQL Server
//! message); run page cards show the first kind, the step's own page and its `log.txt` both.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use sqlx::{Row, SqlitePool};
use tokio::sync::broadcast;

use super::error::Result;
use super::executor::IdempotencyKey;
use super::machine::Millis;

/// Lines kept per step, over all its attempts.
pub const LINES_PER_STEP: i64 = 200;
/// Characters kept of one line; the rest is cut and marked with `…`.
pub const MAX_LINE_CHARS: usize = 1000;
/// Text of the line written once a step reaches its bound.
pub const DROPPED_NOTICE: &str = "… further output dropped: at most 200 lines are kept per step";

mod sink;

pub use sink::{collect, detail, line, scope, Unwritten, FLUSH_AFTER, FLUSH_LINES};

/// One line as said: its time, its text (already cut), and whether it is a technical detail.
pub type Said = (Millis, String, bool);

/// One stored line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LogLine {
    pub id: i64,
    pub run_id: String,
    pub step_id: String,
    pub attempt: u32,
    pub at: Millis,
    pub text: String,
    /// A technical line (see [`detail`]), left off the run page's cards.
    pub detail: bool,
}

/// The newest lines of one step and how many it has in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepTail {
    pub lines: Vec<LogLine>,
    pub total: i64,
}

/// Leaves out of `tails` the lines newer than `id` (not yet published to this reader).
pub fn up_to(tails: &mut HashMap<String, StepTail>, id: i64) {
    for t in tails.values_mut() {
        let before = t.lines.len();
        t.lines.retain(|l| l.id <= id);
        t.total -= (before - t.lines.len()) as i64;
    }
    tails.retain(|_, t| t.total > 0);
}

/// The step log of one database: the store's writer and readers, and the channel live views
/// follow. Made by the store, one per store (see the module docs).
pub struct StepLog {
    /// The store's `rusqlite` wrappers of the pools' connections (see `store/raw.rs`). First
    /// field: dropped before the pools below.
    wrappers: std::sync::Arc<crate::engine::store::Wrappers>,
    /// The store's one writer connection (shared with every transition).
    writer: SqlitePool,
    /// Held from a batch's first insert to its publication, so lines are published in id order
    /// (live views rely on it to tell which lines they already showed).
    order: tokio::sync::Mutex<()>,
    /// The store's read-only pool.
    reader: SqlitePool,
    published: broadcast::Sender<LogLine>,
}

impl StepLog {
    /// The log over the store's `writer` and `reader` pools (called by the store when it opens).
    pub(crate) fn new(
        writer: SqlitePool,
        reader: SqlitePool,
        wrappers: std::sync::Arc<crate::engine::store::Wrappers>,
    ) -> StepLog {
        StepLog {
            writer,
            wrappers,
            order: tokio::sync::Mutex::new(()),
            reader,
            published: broadcast::channel(1024).0,
        }
    }

    /// Lines as they are written (a slow receiver lags; the table has them all).
    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.published.subscribe()
    }

    /// Writes lines of one step (already cut to length), keeping the per-step bound; returns
    /// what was written, in order. `dropped` counts lines lost before they got here.
    pub async fn write(
        &self,
        key: &IdempotencyKey,
        lines: &[(Millis, String)],
        dropped: u64,
    ) -> Result<Vec<LogLine>> {
        let marked: Vec<Said> = lines
            .iter()
            .map(|(at, t)| (*at, t.clone(), false))
            .collect();
        self.write_marked(key, &marked, dropped).await
    }

    /// [`StepLog::write`] with each line marked technical (`true`) or not.
    pub async fn write_marked(
        &self,
        key: &IdempotencyKey,
        lines: &[Said],
        dropped: u64,
    ) -> Result<Vec<LogLine>> {
        let _order = self.order().await;
        let written = crate::engine::store::with_conn(&self.writer, &self.wrappers, true, |db| {
            // No fsync for this commit: the step's next transition (FULL) carries these lines to
            // the disk with its own (see the module docs). The connection is set back to FULL
            // when this returns, or closed (see `store/raw.rs`).
            db.execute_batch("PRAGMA synchronous = NORMAL")?;
            crate::engine::store::immediate(db, || Self::insert_in(db, key, lines, dropped))
        })
        .await?;
        self.publish(&written);
        Ok(written)
    }

    /// Inserts one step's lines inside the write transaction open on `db` (the caller's, which
    /// holds [`StepLog::order`] and publishes what was written once it has committed), keeping
    /// the per-step bound.
    pub(crate) fn insert_in(
        db: &rusqlite::Connection,
        key: &IdempotencyKey,
        lines: &[Said],
        dropped: u64,
    ) -> Result<Vec<LogLine>> {
        let have: i64 = db
            .prepare_cached("SELECT count(*) FROM step_log WHERE run_id = ? AND step_id = ?")?
            .query_row([&key.run_id, &key.step_id], |r| r.get(0))?;
        let room = (LINES_PER_STEP - have).max(0) as usize;
        let mut keep: Vec<Said> = lines.iter().take(room).cloned().collect();
        let over = lines.len() > room || dropped > 0;
        if over && have + (keep.len() as i64) <= LINES_PER_STEP {
            let at = lines.last().map(|l| l.0).unwrap_or_default();
            keep.push((at, DROPPED_NOTICE.to_string(), false));
        }
        let mut insert = db.prepare_cached(
            "INSERT INTO step_log (run_id, step_id, attempt, at, text, detail, after_event) \
             VALUES (?, ?, ?, ?, ?, ?, (SELECT coalesce(max(id), 0) FROM events)) RETURNING id",
        )?;
        let mut written = Vec::with_capacity(keep.len());
        for (at, text, detail) in keep {
            let id: i64 = insert.query_row(
                rusqlite::params![
                    key.run_id,
                    key.step_id,
                    key.attempt as i64,
                    at,
                    text,
                    detail
                ],
                |r| r.get(0),
            )?;
            written.push(LogLine {
                id,
                run_id: key.run_id.clone(),
                step_id: key.step_id.clone(),
                attempt: key.attempt,
                at,
                text,
                detail,
            });
        }
        Ok(written)
    }

    /// Held by whoever inserts lines, from the first insert until they are published (taken
    /// *before* the writer connection, by [`StepLog::write_marked`] and by the group commit
    /// alike, so the two cannot wait for each other).
    pub(crate) async fn order(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.order.lock().await
    }

    /// Publishes lines that have committed (the caller holds [`StepLog::order`]).
    pub(crate) fn publish(&self, written: &[LogLine]) {
        for l in written {
            // No subscribers is fine.
            let _ = self.published.send(l.clone());
        }
    }

    /// The id of the newest line written (0 when there is none).
    pub async fn newest_id(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT coalesce(max(id), 0) FROM step_log")
            .fetch_one(&self.reader)
            .await?
            .get(0))
    }

    /// The newest `per_step` lines of every step of a run that has any.
    pub async fn tails(&self, run_id: &str, per_step: usize) -> Result<HashMap<String, StepTail>> {
        let rows = sqlx::query(
            "SELECT id, step_id, attempt, at, text, detail, rn, total FROM ( \
               SELECT id, step_id, attempt, at, text, detail, \
                      row_number() OVER (PARTITION BY step_id ORDER BY id DESC) AS rn, \
                      count(*) OVER (PARTITION BY step_id) AS total \
               FROM step_log WHERE run_id = ?) \
             WHERE rn <= ? ORDER BY id",
        )
        .bind(run_id)
        .bind(per_step as i64)
        .fetch_all(&self.reader)
        .await?;
        let mut out: HashMap<String, StepTail> = HashMap::new();
        for r in rows {
            let step_id: String = r.try_get("step_id")?;
            let tail = out.entry(step_id.clone()).or_default();
            tail.total = r.try_get("total")?;
            tail.lines.push(LogLine {
                id: r.try_get("id")?,
                run_id: run_id.to_string(),
                step_id,
                attempt: r.try_get::<i64, _>("attempt")?.clamp(0, u32::MAX as i64) as u32,
                at: r.try_get("at")?,
                text: r.try_get("text")?,
                detail: r.try_get("detail")?,
            });
        }
        Ok(out)
    }

    /// The newest `n` lines of one step.
    pub async fn tail(&self, run_id: &str, step_id: &str, n: usize) -> Result<StepTail> {
        let rows = sqlx::query(
            "SELECT id, attempt, at, text, detail FROM step_log WHERE run_id = ? AND step_id = ? \
             ORDER BY id DESC LIMIT ?",
        )
        .bind(run_id)
        .bind(step_id)
        .bind(n as i64)
        .fetch_all(&self.reader)
        .await?;
        let total: i64 =
            sqlx::query("SELECT count(*) FROM step_log WHERE run_id = ? AND step_id = ?")
                .bind(run_id)
                .bind(step_id)
                .fetch_one(&self.reader)
                .await?
                .get(0);
        let mut lines = Vec::with_capacity(rows.len());
        for r in rows.iter().rev() {
            lines.push(LogLine {
                id: r.try_get("id")?,
                run_id: run_id.to_string(),
                step_id: step_id.to_string(),
                attempt: r.try_get::<i64, _>("attempt")?.clamp(0, u32::MAX as i64) as u32,
                at: r.try_get("at")?,
                text: r.try_get("text")?,
                detail: r.try_get("detail")?,
            });
        }
        Ok(StepTail { lines, total })
    }

    /// Steps of a run with lines written since audit event `after` committed (inclusive: a line
    /// written right after event N carries N).
    pub async fn steps_with_lines_since(
        &self,
        run_id: &str,
        after: i64,
    ) -> Result<HashSet<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT step_id FROM step_log WHERE run_id = ? AND after_event >= ?",
        )
        .bind(run_id)
        .bind(after)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(Into::into))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::sink::cut;
    use crate::engine::executor::IdempotencyKey;
    use crate::engine::Store;

    #[tokio::test]
    async fn lines_ride_the_store_s_writer_which_is_back_at_full_durability_after_each_flush() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("l.db")).await.unwrap();
        let key = IdempotencyKey {
            run_id: "r1".into(),
            step_id: "s1".into(),
            attempt: 1,
        };
        let log = store.step_log();
        let written = log.write(&key, &[(1, "copied".into())], 0).await.unwrap();
        assert_eq!(written.len(), 1);
        assert_eq!(log.tail("r1", "s1", 10).await.unwrap().total, 1);
        // 2 = FULL: the next transition on the writer fsyncs, and carries the line with it.
        let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(store.writer())
            .await
            .unwrap();
        assert_eq!(level, 2);
    }

    #[test]
    fn the_dropped_notice_names_the_bound() {
        assert!(super::DROPPED_NOTICE.contains(&super::LINES_PER_STEP.to_string()));
    }

    #[test]
    fn a_line_is_kept_on_one_line_and_cut_at_the_bound() {
        assert_eq!(cut("a\nb\tc".into()), "a b c");
        let long = "é".repeat(super::MAX_LINE_CHARS + 5);
        let kept = cut(long);
        assert_eq!(kept.chars().count(), super::MAX_LINE_CHARS + 1);
        assert!(kept.ends_with('…'));
    }
}
