//! The durable store: runs, steps and the hash-chained event log in SQLite (sqlx).
//!
//! Every state change is a compare-and-set (`WHERE … AND status = ? AND attempt = ?`, zero rows is
//! a typed [`EngineError::Conflict`]) and appends its audit event in the same `BEGIN IMMEDIATE`
//! transaction; if the event cannot be written the change is rolled back (fail closed). After the
//! commit the chain head is written next to the database and the events are published on a
//! broadcast channel for live views.
//!
//! Durability: a call that returns `Ok` has committed with SQLite WAL and `synchronous=FULL` (one
//! fsync of the write-ahead log per transaction, however many transitions it holds). The head
//! file is written after every commit but flushed to disk in the background, at most
//! [`head::SYNC_DELAY`] later — never a second fsync on the commit path. The exact guarantee
//! (what a process crash and a power cut can each leave, and what verification still detects) is
//! in `head.rs`.
//!
//! `Store` is cheap to clone (pools and channels behind `Arc`s) and meant to live in web state.
//!
//! It is the one owner of the database: it opens the file once, applies the migrations once, and
//! holds the only writer (one connection, so every write in the process has one order) and the
//! readers. The other tables of the same file are reached through it: the step log
//! ([`Store::step_log`]), and the dashboard's accounts, sessions, tokens, agents, Data Centers
//! and notify's deliveries through [`Store::writer`] — one set of pragmas (WAL, `synchronous=FULL`,
//! foreign keys, busy timeout) for everything.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::OptionalExtension;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::sync::broadcast;

use super::audit::{self, AuditEvent, ChainHead};
use super::machine::{Millis, Refusal};
use super::steplog::StepLog;

pub mod agents;
pub mod campaigns;
mod chain;
mod claim;
mod events_page;
mod export;
mod group;
mod head;
mod plans;
mod preflight;
mod queries;
mod raw;
mod transitions;
mod window;

pub use claim::{Claimed, DriveLimits};
pub use events_page::EventFilter;
pub use queries::{RunRecord, StepRecord, StepStatusRow};
pub(crate) use raw::{immediate, with_conn, Wrappers};
pub use transitions::{NewRun, StepBatchResult};

pub use super::error::{EngineError, Result};

/// Capacity of the live event channel; a slower subscriber lags and should replay from the table.
const BROADCAST_CAPACITY: usize = 4096;

#[derive(Clone)]
pub struct Store {
    /// The `rusqlite` wrappers of the pools' connections, with their prepared statements
    /// (`raw.rs`). First field: dropped before the pools, as sqlx's close of a connection needs.
    wrappers: Arc<raw::Wrappers>,
    /// Readers (WAL lets them run beside the writer).
    pool: SqlitePool,
    /// The one writer connection: serialises transitions so the hash chain has one order.
    writer: SqlitePool,
    /// `<db>.audit-head`, written after each commit and flushed in the background.
    head: Arc<head::HeadFile>,
    events: broadcast::Sender<AuditEvent>,
    path: Arc<PathBuf>,
    /// Driver events waiting to be committed together (group commit).
    group: Arc<group::Group>,
    /// Signs every event and head (writable stores); kept in a file outside the database.
    signer: Option<Arc<audit::SigningKey>>,
    /// Checks signatures (the signer's public half, or a key file for a read-only store).
    verifier: Option<audit::VerifyingKey>,
    /// Where the signing key is (named in errors when it is missing).
    key_path: Arc<PathBuf>,
    /// Refusal of writes on a broken chain, and how far it was verified.
    chain: Arc<chain::ChainGuard>,
    /// How old agent facts may be before the preflight that gates a start stops trusting them
    /// (`[agents] facts_stale_secs`); shared by every clone, set once by `serve`.
    facts_stale_secs: Arc<std::sync::atomic::AtomicI64>,
    /// Per run, the newest event the driver's claim has looked at for steps to unblock: later
    /// claims look only at what changed since (see `claim.rs`).
    scans: Arc<claim::Scans>,
    /// The step log's lines, written on `writer` (see [`super::steplog`]).
    log: Arc<StepLog>,
}

impl Store {
    /// Opens (creating if needed) the database, applies the embedded migrations and checks the
    /// file with `PRAGMA integrity_check`. The signing key is `LOCKSTEP_AUDIT_KEY` or
    /// `audit-signing.key` in the database's folder (created 0600 if missing).
    pub async fn open(path: &Path) -> Result<Store> {
        Store::open_with_key(path, &audit::signing::key_path_for(path)).await
    }

    /// [`Store::open`] with the signing key at `key_path`.
    pub async fn open_with_key(path: &Path, key_path: &Path) -> Result<Store> {
        // A first start with a fresh data folder: the database's folder is made, not refused.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                EngineError::Invalid(format!("cannot create the folder {}: {e}", dir.display()))
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Durable commits: an approval or an audit event survives power loss.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // SQLite's own lock around every call on a connection: the store also calls SQLite
            // on sqlx's connections directly (`raw.rs`), and a store dropped while someone else
            // still uses a pool finalizes its statements from whichever thread drops it.
            .serialized(true);
        let wrappers = Arc::new(raw::Wrappers::default());
        // Weak: the pool must not keep the wrappers alive past its own connections.
        let forget = Arc::downgrade(&wrappers);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            // The pools never close a connection on their own: each keeps prepared statements
            // that must be dropped first (see `raw.rs`).
            .idle_timeout(None)
            .max_lifetime(None)
            // sqlx pings a pooled connection before handing it out, one more round trip to its
            // worker thread per statement or transaction; a connection to a local file does not
            // go stale (issue 19). The check below is the one this writer needs.
            .test_before_acquire(false)
            // After a failed write (disk full, I/O error) SQLite may have rolled the transaction
            // back itself; sqlx's own rollback then fails and leaves the connection believing it
            // is still inside a transaction, refusing every later BEGIN: such a connection is
            // replaced by a new one. A rollback sqlx queued when a transaction was dropped may
            // not have run yet: one statement waits for it before the connection is judged. (The
            // store's own transactions, run directly on the handle, clean up after themselves and
            // set `synchronous = FULL` back: see `raw.rs`.)
            .before_acquire(move |conn, _meta| {
                let forget = forget.clone();
                Box::pin(async move {
                    if !sqlx::Connection::is_in_transaction(conn) {
                        return Ok(true);
                    }
                    let _ = sqlx::query("SELECT 1").execute(&mut *conn).await;
                    if !sqlx::Connection::is_in_transaction(conn) {
                        return Ok(true);
                    }
                    // Replaced: its prepared statements go first (see `raw.rs`).
                    if let Some(wrappers) = forget.upgrade() {
                        wrappers.forget(conn.lock_handle().await?.as_raw_handle());
                    }
                    Ok(false)
                })
            })
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!().run(&writer).await?;
        private_files(path);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.read_only(true))
            .await?;
        let (signer, created) = audit::SigningKey::load_or_create(key_path)
            .map_err(|e| EngineError::Audit(e.to_string()))?;
        let store = Store {
            log: Arc::new(StepLog::new(writer.clone(), pool.clone(), wrappers.clone())),
            wrappers,
            pool,
            writer,
            head: head::HeadFile::new(audit::head_path(path), false),
            events: broadcast::channel(BROADCAST_CAPACITY).0,
            path: Arc::new(path.to_path_buf()),
            group: Arc::default(),
            verifier: Some(signer.verifying().clone()),
            signer: Some(Arc::new(signer)),
            key_path: Arc::new(key_path.to_path_buf()),
            chain: Arc::default(),
            facts_stale_secs: preflight::default_stale_secs(),
            scans: Arc::default(),
        };
        store.integrity_check().await?;
        if created {
            store.start_signing().await?;
        }
        Ok(store)
    }

    /// A log recorded before signing existed, opened with a key created just now: one signed
    /// event marks where signing starts (its chain link covers every event before it). Never
    /// done when the key file already existed, so someone who rebuilds the log without the key
    /// cannot have it blessed.
    async fn start_signing(&self) -> Result<()> {
        let unsigned_tail: Option<i64> =
            sqlx::query_scalar("SELECT MAX(id) FROM events WHERE sig IS NULL")
                .fetch_one(&self.writer)
                .await?;
        let signed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE sig IS NOT NULL")
            .fetch_one(&self.writer)
            .await?;
        let Some(last_unsigned) = unsigned_tail.filter(|_| signed == 0) else {
            return Ok(());
        };
        let key = self
            .verifier
            .as_ref()
            .map(|k| (k.key_id.clone(), k.public_base64()));
        let written = self
            .write(false, |w| {
                w.append(
                    None,
                    None,
                    "lockstep",
                    now_millis(),
                    audit::verify::SIGNING_STARTED_KIND,
                    serde_json::json!({
                        "key_id": key.as_ref().map(|k| &k.0),
                        "public_key": key.as_ref().map(|k| &k.1),
                        "unsigned_before": last_unsigned + 1,
                    }),
                )
            })
            .await?;
        self.commit(written.appended, &written.scanned)?;
        Ok(())
    }

    /// Opens an existing database for reading only: no migrations, no writes (verification,
    /// export). Transitions through this store fail. Signatures are checked with the key that
    /// [`Store::open`] would use (its `.pub` file if the private key is not readable).
    pub async fn open_read_only(path: &Path) -> Result<Store> {
        Store::open_read_only_with_key(path, &audit::signing::key_path_for(path)).await
    }

    /// [`Store::open_read_only`] checking signatures with the key (or `.pub` file) at `key`.
    pub async fn open_read_only_with_key(path: &Path, key: &Path) -> Result<Store> {
        if !path.exists() {
            return Err(EngineError::NotFound(format!(
                "database {}",
                path.display()
            )));
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .read_only(true)
            .busy_timeout(Duration::from_secs(10))
            // See `open_with_key`.
            .serialized(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        let wrappers = Arc::new(raw::Wrappers::default());
        let public = audit::signing::public_path(key);
        let verifier = [key, public.as_path()]
            .iter()
            .find_map(|k| audit::VerifyingKey::load(k).ok());
        Ok(Store {
            log: Arc::new(StepLog::new(pool.clone(), pool.clone(), wrappers.clone())),
            wrappers,
            writer: pool.clone(),
            pool,
            head: head::HeadFile::new(audit::head_path(path), true),
            events: broadcast::channel(1).0,
            path: Arc::new(path.to_path_buf()),
            group: Arc::default(),
            signer: None,
            verifier,
            key_path: Arc::new(key.to_path_buf()),
            chain: Arc::default(),
            facts_stale_secs: preflight::default_stale_secs(),
            scans: Arc::default(),
        })
    }

    /// Writes an online copy of the database to `target` (`VACUUM INTO`), with the chain head of
    /// the copy next to it so the copy verifies on its own. Refuses to overwrite.
    pub async fn backup(&self, target: &Path) -> Result<ChainHead> {
        if target.exists() {
            return Err(EngineError::Invalid(format!(
                "{} already exists; choose a new file",
                target.display()
            )));
        }
        let target_str = target
            .to_str()
            .ok_or_else(|| EngineError::Invalid("the backup path is not valid UTF-8".into()))?;
        // One statement on the writer: no transition can land between the copy and its head.
        let mut conn = self.writer.acquire().await?;
        sqlx::query("VACUUM INTO ?")
            .bind(target_str)
            .execute(&mut *conn)
            .await?;
        drop(conn);
        let copy = Store::open_read_only(target).await?;
        copy.integrity_check().await?;
        let head = sqlx::query("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1")
            .fetch_optional(&copy.pool)
            .await?
            .map(|r| ChainHead {
                id: r.get(0),
                hash: r.get(1),
                sig: None,
            })
            .unwrap_or(ChainHead {
                id: 0,
                hash: audit::GENESIS_HASH.into(),
                sig: None,
            });
        let head = self.signed_head(head.id, head.hash);
        audit::write_head(&audit::head_path(target), &head)
            .map_err(|e| EngineError::Audit(format!("cannot write the backup's head file: {e}")))?;
        Ok(head)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the database: the store's prepared statements first, then the pools (waiting for
    /// their connections to finish). Other clones of this store cannot be used afterwards.
    pub async fn close(&self) {
        self.wrappers.clear();
        self.writer.close().await;
        self.pool.close().await;
    }

    /// The read pool, for other modules' own tables in the same database (the web layer's users).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The one writer, for the other tables of the database (accounts, sessions, tokens, agents,
    /// Data Centers, deliveries). One connection: hold it briefly, and never call back into the
    /// store while holding a transaction on it (the store would wait for the connection).
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// The step log of this database (its lines ride [`Store::writer`]).
    pub fn step_log(&self) -> &Arc<StepLog> {
        &self.log
    }

    /// `PRAGMA integrity_check`; anything but `ok` is an error naming what SQLite found.
    pub async fn integrity_check(&self) -> Result<()> {
        let rows = sqlx::query("PRAGMA integrity_check")
            .fetch_all(&self.writer)
            .await?;
        let found: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
        if found == ["ok"] {
            Ok(())
        } else {
            Err(EngineError::Audit(format!(
                "database integrity check failed: {}",
                found.join("; ")
            )))
        }
    }

    /// Live events, published after they commit. On `Lagged`, replay with [`Store::events_after`].
    pub fn subscribe(&self) -> broadcast::Receiver<AuditEvent> {
        self.events.subscribe()
    }

    /// Runs `body` as one write transaction on the one writer (`BEGIN IMMEDIATE … COMMIT`, see
    /// `raw.rs`), holding the chain's tail; refused while the chain is broken (on a store that
    /// enforces it, see `chain.rs`). An error from `body` rolls everything back. After the
    /// commit the new chain head is recorded and the events are published; returns `body`'s
    /// value and the events it appended.
    async fn transact<R>(
        &self,
        body: impl FnOnce(&mut WriteTx<'_>) -> Result<R>,
    ) -> Result<(R, Vec<AuditEvent>)> {
        let written = self.write(true, body).await?;
        let events = self.commit(written.appended, &written.scanned)?;
        Ok((written.value, events))
    }

    /// The transaction of [`Store::transact`], committed but not yet published: the caller
    /// publishes with [`Store::commit`] (the group commit does more in between). `guarded`:
    /// refused while the chain is broken; off only for the acknowledgement of a break.
    async fn write<R>(
        &self,
        guarded: bool,
        body: impl FnOnce(&mut WriteTx<'_>) -> Result<R>,
    ) -> Result<Written<R>> {
        raw::with_conn(&self.writer, &self.wrappers, true, |db| {
            raw::immediate(db, || {
                let last = db
                    .prepare_cached("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1")?
                    .query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                    .optional()?
                    .unwrap_or_else(|| (0, audit::GENESIS_HASH.to_string()));
                if guarded {
                    self.guard_write(db, &last)?;
                }
                let mut w = WriteTx {
                    db,
                    last,
                    appended: Vec::new(),
                    signer: self.signer.clone(),
                    scanned: Vec::new(),
                };
                let value = body(&mut w)?;
                Ok(Written {
                    value,
                    appended: w.appended,
                    scanned: w.scanned,
                })
            })
        })
        .await
    }

    /// A read on one of the readers, synchronously on its connection (see `raw.rs`).
    async fn read<R>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<R>) -> Result<R> {
        raw::with_conn(&self.pool, &self.wrappers, false, f).await
    }

    /// After a write's commit: remembers what its claims looked at, records the new chain head,
    /// then publishes the events.
    fn commit(
        &self,
        appended: Vec<AuditEvent>,
        scanned: &[(String, i64)],
    ) -> Result<Vec<AuditEvent>> {
        self.scans.record(scanned);
        self.committed(appended)
    }

    /// After a commit: records the new chain head, then publishes the events. An error here
    /// means the transaction did commit but its head could not be written.
    fn committed(&self, appended: Vec<AuditEvent>) -> Result<Vec<AuditEvent>> {
        if let Some(last) = appended.last() {
            let head = self.signed_head(last.id, last.hash.clone());
            self.head.record(&head).map_err(|e| {
                EngineError::Audit(format!("cannot write {}: {e}", self.head.path().display()))
            })?;
        }
        self.advance_verified(&appended);
        for e in &appended {
            // No subscribers is fine.
            let _ = self.events.send(e.clone());
        }
        Ok(appended)
    }

    /// The head record for `(id, hash)`, signed when this store holds the key.
    fn signed_head(&self, id: i64, hash: String) -> ChainHead {
        let sig = self.signer.as_ref().map(|k| k.sign_head(id, &hash));
        ChainHead { id, hash, sig }
    }

    /// Appends a free-text comment to a run (or one of its steps). Changes no state.
    pub async fn comment(
        &self,
        run_id: &str,
        step_id: Option<&str>,
        actor: &super::machine::Actor,
        text: &str,
        now: Millis,
    ) -> Result<AuditEvent> {
        if text.trim().is_empty() {
            return Err(Refusal::CommentRequired.into());
        }
        let ((), mut events) = self
            .transact(|w| {
                queries::load_run(w.db, run_id)?;
                if let Some(step) = step_id {
                    queries::load_step(w.db, run_id, step)?;
                }
                w.append(
                    Some(run_id),
                    step_id,
                    &actor.name,
                    now,
                    "comment",
                    serde_json::json!({ "text": text, "roles": actor.roles }),
                )
            })
            .await?;
        events
            .pop()
            .ok_or_else(|| EngineError::Audit("the comment event was not recorded".into()))
    }

    /// Many comments on a run in one commit: fills a long audit log quickly (tests and
    /// benchmarks of the Audit page), each comment its own signed, chained event.
    pub async fn comment_many(
        &self,
        run_id: &str,
        actor: &super::machine::Actor,
        texts: &[String],
        now: Millis,
    ) -> Result<usize> {
        if texts.iter().any(|t| t.trim().is_empty()) {
            return Err(Refusal::CommentRequired.into());
        }
        let ((), events) = self
            .transact(|w| {
                queries::load_run(w.db, run_id)?;
                for text in texts {
                    w.append(
                        Some(run_id),
                        None,
                        &actor.name,
                        now,
                        "comment",
                        serde_json::json!({ "text": text, "roles": actor.roles }),
                    )?;
                }
                Ok(())
            })
            .await?;
        Ok(events.len())
    }
}

impl Store {
    /// Appends a system note about a run (e.g. the estate's recorded versions updated after it
    /// succeeded) as an audit event of `kind`. Changes no run or step state.
    pub async fn record_note(
        &self,
        run_id: &str,
        actor: &str,
        kind: &str,
        payload: serde_json::Value,
        now: Millis,
    ) -> Result<AuditEvent> {
        let ((), mut events) = self
            .transact(|w| {
                queries::load_run(w.db, run_id)?;
                w.append(Some(run_id), None, actor, now, kind, payload)
            })
            .await?;
        events
            .pop()
            .ok_or_else(|| EngineError::Audit(format!("the {kind} event was not recorded")))
    }
}

/// One write transaction and the audit events it appends (see [`Store::transact`]).
struct WriteTx<'c> {
    /// The writer, inside `BEGIN IMMEDIATE`.
    db: &'c rusqlite::Connection,
    /// Id and hash of the newest event (committed or appended here).
    last: (i64, String),
    appended: Vec<AuditEvent>,
    /// Signs each appended event's hash (`None` on a read-only store, which cannot write).
    signer: Option<Arc<audit::SigningKey>>,
    /// Runs whose claim in this transaction looked for steps to unblock, and the newest event it
    /// saw; remembered only once the transaction has committed.
    scanned: Vec<(String, i64)>,
}

/// What a committed write transaction leaves to publish.
struct Written<R> {
    value: R,
    appended: Vec<AuditEvent>,
    scanned: Vec<(String, i64)>,
}

impl WriteTx<'_> {
    fn append(
        &mut self,
        run_id: Option<&str>,
        step_id: Option<&str>,
        actor: &str,
        at: Millis,
        kind: &str,
        payload: serde_json::Value,
    ) -> Result<()> {
        let mut event = AuditEvent {
            id: self.last.0 + 1,
            run_id: run_id.map(str::to_string),
            step_id: step_id.map(str::to_string),
            actor: actor.to_string(),
            at,
            kind: audit::EventKind::from(kind),
            payload,
            prev_hash: self.last.1.clone(),
            hash: String::new(),
            sig: None,
        };
        let payload = audit::canonical_json(&event.payload);
        event.hash = audit::event_hash_with_payload(&event, &payload);
        event.sig = self.signer.as_ref().map(|k| k.sign_event(&event.hash));
        self.db
            .prepare_cached(
                "INSERT INTO events (id, run_id, step_id, actor, at, kind, payload, prev_hash, hash, sig)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .and_then(|mut st| {
                st.execute(rusqlite::params![
                    event.id,
                    event.run_id,
                    event.step_id,
                    event.actor,
                    event.at,
                    event.kind.as_str(),
                    payload,
                    event.prev_hash,
                    event.hash,
                    event.sig,
                ])
            })
            .map_err(|e| {
                EngineError::Audit(format!(
                    "the audit event could not be written, so the change was not made: {e}"
                ))
            })?;
        self.last = (event.id, event.hash.clone());
        self.appended.push(event);
        Ok(())
    }
}

/// Milliseconds since the Unix epoch, for events the store writes on its own.
fn now_millis() -> Millis {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as Millis
}

/// The database and its side files are readable by their owner only (they hold password hashes,
/// tokens and the record); SQLite creates them with the umask, so they are narrowed here.
fn private_files(db: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm", ".audit-head"] {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            let _ = std::fs::set_permissions(
                PathBuf::from(name),
                std::fs::Permissions::from_mode(0o600),
            );
        }
    }
}
