//! The store's statements run on sqlx's connections directly, one closure per transaction.
//!
//! sqlx runs each SQLite connection on a worker thread of its own and hands every statement,
//! every row and every `BEGIN`/`COMMIT` to it over a channel: a thread wake-up each way. A
//! transition is about ten statements (the chain's tail, the run, the step, the order check, the
//! compare-and-set, the event, the claim's questions, the commit), so most of its time went to
//! those hand-offs, not to SQLite (issue 19's profiles: futex wake-ups 25 % and more of every
//! engine benchmark, the hand-offs growing with the statements rather than with the work).
//!
//! Here a pooled connection is locked once (`lock_handle`: sqlx's worker waits while we hold
//! it) and the whole closure runs synchronously on SQLite's handle through `rusqlite`, which
//! links the same bundled SQLite (one `libsqlite3-sys`). The pools, their pragmas (WAL,
//! `synchronous=FULL`, foreign keys, busy timeout) and the single writer are unchanged; so is
//! everything written with sqlx on the same pools (the web layer's tables).
//!
//! Each connection keeps its `rusqlite` wrapper, and with it its prepared statements, from one
//! closure to the next ([`Wrappers`]): parsing the statements again for every transaction was a
//! sixth of a transition's time. A prepared statement that is still alive makes sqlx's close of
//! its connection fail (sqlx panics on its worker thread), so every way a connection of a store
//! can be closed drops its wrapper first: the pools never close connections on their own (no
//! idle timeout, no maximum lifetime), the writer's check before it is handed out drops the
//! wrapper of a connection it replaces, a connection left stuck here drops its wrapper before it
//! is closed, [`super::Store::close`] drops them all before closing the pools, and a store's
//! wrappers are dropped before its pools (field order of `Store`).
//!
//! The closure runs under [`tokio::task::block_in_place`] on a multi-threaded runtime (a commit
//! waits for its fsync; the other tasks move to another worker meanwhile), and inline on a
//! current-thread runtime (tests), where nothing else could run anyway.
//!
//! What a closure must leave: no open transaction. If it does (an error between `BEGIN` and
//! `COMMIT` that the caller did not roll back, or a rollback SQLite refused) the transaction is
//! rolled back here, and a connection that still cannot leave it is closed instead of going back
//! to the pool, so the next user gets a clean one.

use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::Mutex;

use sqlx::SqlitePool;

use super::Result;

/// Prepared statements kept per connection: the engine's hot statements and the readers'.
const STATEMENT_CACHE: usize = 64;

/// The `rusqlite` wrappers of a store's connections, by SQLite handle (see the module docs).
#[derive(Default)]
pub(crate) struct Wrappers {
    by_handle: Mutex<HashMap<usize, rusqlite::Connection>>,
}

impl Wrappers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, rusqlite::Connection>> {
        self.by_handle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The wrapper of `handle`, taken out while it is used (a handle is used by one task at a
    /// time: the pool hands its connection to one caller).
    fn take(&self, handle: NonNull<rusqlite::ffi::sqlite3>) -> Result<rusqlite::Connection> {
        if let Some(db) = self.lock().remove(&(handle.as_ptr() as usize)) {
            return Ok(db);
        }
        // The one unsafe block of the server: a borrowed handle, used as documented.
        // SAFETY: the caller holds sqlx's lock on the connection (`lock_handle`), so the handle
        // is valid and sqlx's worker thread does not touch it meanwhile. The wrapper does not
        // own the handle: dropping it finalizes only the statements it prepared, and it is
        // dropped before sqlx can close the handle (see the module docs).
        #[allow(unsafe_code)]
        let db = unsafe { rusqlite::Connection::from_handle(handle.as_ptr()) }?;
        db.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // The query planner's stability guarantee: a statement's plan does not depend on the
        // values bound to it. Without it SQLite marks parameters it looked at while planning
        // (a key equal through a join, a flag compared with 0 or 1, a range bound) and re-parses
        // the statement whenever one of them is bound anew, which was every hot statement on
        // every use (`plans.rs` checks both the plans and that they are kept).
        db.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        Ok(db)
    }

    fn put_back(&self, handle: NonNull<rusqlite::ffi::sqlite3>, db: rusqlite::Connection) {
        self.lock().insert(handle.as_ptr() as usize, db);
    }

    /// Drops the wrapper of `handle` (its statements finalized): before sqlx closes it.
    pub(crate) fn forget(&self, handle: NonNull<rusqlite::ffi::sqlite3>) {
        let dropped = self.lock().remove(&(handle.as_ptr() as usize));
        drop(dropped);
    }

    /// Drops every wrapper: before the pools are closed.
    pub(crate) fn clear(&self) {
        let all = std::mem::take(&mut *self.lock());
        drop(all);
    }
}

/// Runs `f` on one connection of `pool`, synchronously, without sqlx's worker in between.
/// `writer`: the connection is the store's writer, and leaves with `synchronous = FULL` whatever
/// `f` set (the step log relaxes its own flushes), or is closed.
pub(crate) async fn with_conn<R>(
    pool: &SqlitePool,
    wrappers: &Wrappers,
    writer: bool,
    f: impl FnOnce(&rusqlite::Connection) -> Result<R>,
) -> Result<R> {
    let mut conn = pool.acquire().await?;
    let (out, stuck) = {
        let mut locked = conn.lock_handle().await?;
        let handle = locked.as_raw_handle();
        blocking(|| {
            let db = wrappers.take(handle)?;
            let out = f(&db);
            let stuck = !db.is_autocommit() && {
                let _ = db.execute_batch("ROLLBACK");
                !db.is_autocommit()
            };
            let stuck = stuck
                || (writer
                    && db
                        .prepare_cached("PRAGMA synchronous = FULL")
                        .and_then(|mut st| st.execute([]))
                        .is_err());
            if stuck {
                drop(db);
            } else {
                wrappers.put_back(handle, db);
            }
            Ok::<_, super::EngineError>((out, stuck))
        })?
    };
    if stuck {
        tracing::warn!("a store connection could not be set back (left inside a transaction, or not FULL); it is closed");
        conn.close_on_drop();
    }
    out
}

/// Runs a blocking section off the async scheduler when there is one to leave.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Runs `body` between `BEGIN IMMEDIATE` and `COMMIT` on `db`; any error rolls it back.
pub(crate) fn immediate<R>(
    db: &rusqlite::Connection,
    body: impl FnOnce() -> Result<R>,
) -> Result<R> {
    db.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let out = body().and_then(|value| {
        db.prepare_cached("COMMIT")?.execute([])?;
        Ok(value)
    });
    if out.is_err() && !db.is_autocommit() {
        // A failed COMMIT (disk full, I/O error) may leave the transaction open; SQLite may also
        // have rolled it back already, and then this does nothing.
        let _ = db.execute_batch("ROLLBACK");
    }
    out
}

/// Runs `body` inside one read transaction (`BEGIN` … `COMMIT`): every statement sees the same
/// moment of the database.
pub(crate) fn snapshot<R>(
    db: &rusqlite::Connection,
    body: impl FnOnce() -> Result<R>,
) -> Result<R> {
    db.prepare_cached("BEGIN")?.execute([])?;
    let out = body();
    // Nothing was written: ending it either way is the same; with_conn rolls back what is left.
    let _ = db
        .prepare_cached("COMMIT")
        .and_then(|mut st| st.execute([]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testkit::{noop_plan, started_run};
    use crate::engine::Store;

    /// A closure that leaves a write open is rolled back when it returns, the writer goes on, and
    /// a relaxed `synchronous` is set back to FULL.
    #[tokio::test]
    async fn what_a_closure_leaves_open_or_relaxed_is_undone_before_the_next_user() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("r.db")).await.expect("open");
        let run = started_run(&store, noop_plan(2, false, &[]), "CHG-RAW").await;
        with_conn(&store.writer, &store.wrappers, true, |db| {
            db.execute_batch("BEGIN IMMEDIATE; UPDATE runs SET change_ticket = 'CHANGED';")?;
            Ok(())
        })
        .await
        .expect("the closure's own work succeeds");
        assert_eq!(store.run(&run).await.expect("run").change_ticket, "CHG-RAW");
        let level: i64 = with_conn(&store.writer, &store.wrappers, true, |db| {
            Ok(db.query_row("PRAGMA synchronous", [], |r| r.get(0))?)
        })
        .await
        .expect("level");
        assert_eq!(level, 2, "synchronous is FULL (2)");
        // The step log relaxes its own flush; the connection is set back to FULL after it.
        with_conn(&store.writer, &store.wrappers, true, |db| {
            db.execute_batch("PRAGMA synchronous = NORMAL")?;
            Ok(())
        })
        .await
        .expect("relaxed");
        let level: i64 = with_conn(&store.writer, &store.wrappers, true, |db| {
            Ok(db.query_row("PRAGMA synchronous", [], |r| r.get(0))?)
        })
        .await
        .expect("level");
        assert_eq!(level, 2);
        // The writer still commits, and the chain still verifies.
        let actor = crate::engine::testkit::approver("boss");
        store
            .comment(&run, None, &actor, "after an abandoned write", 5)
            .await
            .expect("a later write commits");
        assert_eq!(store.verify_audit().await.expect("verify").problem, None);
    }
}
