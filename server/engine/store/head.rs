//! The chain-head file beside the database (`<db>.audit-head`), written after every commit
//! without an fsync of its own on the commit path.
//!
//! The head file records the newest event's id and hash outside the database, so truncating the
//! log or rebuilding it with fresh hashes no longer matches it (see `audit::verify_chain`). Until
//! this module existed the file was replaced and fsync'd after every commit: a second fsync per
//! transition that halved the durable transition rate. Now:
//!
//! - After each commit, before the call returns and before its events are published, the record
//!   is overwritten in place: one fixed-size write of [`RECORD_LEN`] bytes at offset 0 of a file
//!   kept open (the JSON of [`ChainHead`] padded with spaces). The write reaches the operating
//!   system, so a process crash (SIGKILL, panic) loses nothing but a commit whose head write had
//!   not happened yet: the head lags the log by at most one commit, as it always could.
//! - A background task flushes the file to disk (`fdatasync`) at most [`SYNC_DELAY`] after a
//!   write, and the last handle to close flushes it too. After power loss or an OS crash the head
//!   on disk may therefore lag the durable log by the commits of the last [`SYNC_DELAY`] (plus
//!   the flush itself). Verification accepts a head that lags (the event at the head's id must
//!   carry the head's hash), so a crash never looks like tampering; what such a lag gives up is
//!   the detection of someone removing exactly those newest, not yet flushed events.
//! - A record never straddles a sector (it is shorter than 512 bytes and written at offset 0),
//!   so a power cut leaves the old or the new record, not a mixture.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::engine::audit::ChainHead;

/// Size of the record on disk: the JSON (at most 210 bytes for any i64 id with its signature)
/// padded with spaces.
pub const RECORD_LEN: usize = 256;

/// The longest a written head waits for its flush to disk.
pub const SYNC_DELAY: Duration = Duration::from_millis(100);

/// The head file of a writable store. Shared by every clone of the store; the last one to go
/// flushes it.
pub(super) struct HeadFile {
    path: PathBuf,
    state: Mutex<State>,
    /// Wakes the flusher after a write (and once more on drop, so it can end).
    flush: Arc<Notify>,
}

struct State {
    /// Opened on the first write (a store that never commits leaves the file alone).
    file: Option<File>,
    /// The id last written (never written backwards).
    written: i64,
    /// Written since the last flush.
    dirty: bool,
}

impl HeadFile {
    /// The head file of `path`; starts the flusher on the current tokio runtime. A read-only
    /// store's head file is never written.
    pub(super) fn new(path: PathBuf, read_only: bool) -> Arc<HeadFile> {
        let flush = Arc::new(Notify::new());
        let head = Arc::new(HeadFile {
            path,
            state: Mutex::new(State {
                file: None,
                written: if read_only { i64::MAX } else { 0 },
                dirty: false,
            }),
            flush: flush.clone(),
        });
        tokio::spawn(flusher(Arc::downgrade(&head), flush));
        head
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Records `head` if it is newer than what the file holds. No fsync here: see the module doc.
    pub(super) fn record(&self, head: &ChainHead) -> std::io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if head.id <= state.written {
            return Ok(());
        }
        let mut record = serde_json::to_string(head).map_err(std::io::Error::other)?;
        if record.len() > RECORD_LEN - 1 {
            return Err(std::io::Error::other(
                "the chain head does not fit its record",
            ));
        }
        record.extend(std::iter::repeat_n(' ', RECORD_LEN - 1 - record.len()));
        record.push('\n');
        let mut file = match state.file.take() {
            Some(f) => f,
            None => self.open()?,
        };
        let fresh = file.metadata()?.len() != RECORD_LEN as u64;
        let written = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(record.as_bytes()));
        let file = state.file.insert(file);
        written?;
        if fresh {
            // A new file, or one of an older format (written whole each time): cut it to one
            // record and flush it with its directory entry now, once, so that a power cut can
            // never leave a file of zeros; later flushes need only the data.
            file.set_len(RECORD_LEN as u64)?;
            file.sync_all()?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                // Not every platform can open a directory; the file itself is flushed anyway.
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
            }
        } else {
            state.dirty = true;
        }
        state.written = head.id;
        drop(state);
        self.flush.notify_one();
        Ok(())
    }

    /// Lets the next record go backwards: after an admin acknowledged a truncated log, the head
    /// names the acknowledgement, below the deleted events it had recorded.
    pub(super) fn reset(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.written != i64::MAX {
            state.written = 0;
        }
    }

    fn open(&self) -> std::io::Result<File> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options.open(&self.path)
    }

    /// Flushes the record to disk if it was written since the last flush.
    pub(super) fn sync(&self) -> std::io::Result<()> {
        let file = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if !state.dirty {
                return Ok(());
            }
            state.dirty = false;
            match &state.file {
                Some(f) => f.try_clone()?,
                None => return Ok(()),
            }
        };
        // Outside the lock: commits keep writing while the disk flushes.
        file.sync_data()
    }
}

impl Drop for HeadFile {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::error!(path = %self.path.display(), error = %e, "cannot flush the audit head file");
        }
        self.flush.notify_one();
    }
}

/// Flushes the head file [`SYNC_DELAY`] after a write; ends when the store is gone.
async fn flusher(head: Weak<HeadFile>, flush: Arc<Notify>) {
    loop {
        flush.notified().await;
        tokio::time::sleep(SYNC_DELAY).await;
        let Some(head) = head.upgrade() else { return };
        let result = tokio::task::spawn_blocking(move || {
            let r = head.sync();
            (r, head.path.clone())
        })
        .await;
        match result {
            Ok((Err(e), path)) => {
                tracing::error!(path = %path.display(), error = %e, "cannot flush the audit head file")
            }
            Ok((Ok(()), _)) => {}
            Err(_) => return, // runtime shutting down
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::audit::{self, GENESIS_HASH};
    use crate::engine::machine::RunEvent;
    use crate::engine::store::{NewRun, Store};
    use crate::engine::testkit::{noop_plan, operator};

    fn head(id: i64) -> ChainHead {
        ChainHead {
            id,
            hash: GENESIS_HASH.replace('0', &(id % 10).to_string()),
            // As long as a real signature.
            sig: Some(format!("ed25519:{}:{}", "k".repeat(16), "s".repeat(88))),
        }
    }

    #[tokio::test]
    async fn the_head_is_one_fixed_size_record_overwritten_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.audit-head");
        let file = HeadFile::new(path.clone(), false);
        file.record(&head(7)).unwrap();
        file.record(&head(12345)).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), RECORD_LEN as u64);
        assert_eq!(audit::read_head(&path).unwrap(), Some(head(12345)));
        file.record(&head(9)).unwrap();
        assert_eq!(
            audit::read_head(&path).unwrap(),
            Some(head(12345)),
            "never backwards"
        );
        file.sync().unwrap();
        assert!(!file.state.lock().unwrap().dirty, "flushed");
    }

    #[tokio::test]
    async fn the_largest_id_fits_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.audit-head");
        HeadFile::new(path.clone(), false)
            .record(&head(i64::MAX))
            .unwrap();
        assert_eq!(audit::read_head(&path).unwrap(), Some(head(i64::MAX)));
    }

    #[tokio::test]
    async fn a_read_only_store_never_writes_its_head() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.audit-head");
        HeadFile::new(path.clone(), true).record(&head(3)).unwrap();
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_head_file_of_the_older_whole_file_format_is_taken_over_and_still_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("h.db");
        let store = Store::open(&db).await.unwrap();
        let new = NewRun {
            change_ticket: "CHG-1".into(),
            window_start: None,
            window_end: None,
            plan: noop_plan(2, false, &[]),
        };
        let run = store.create_run(new, &operator("olga"), 0).await.unwrap();
        drop(store);
        // What earlier versions wrote: the JSON alone, replaced whole after each commit.
        let last = audit::read_head(&audit::head_path(&db)).unwrap().unwrap();
        assert_eq!(last.id, 1);
        std::fs::write(audit::head_path(&db), serde_json::to_string(&last).unwrap()).unwrap();
        let store = Store::open(&db).await.unwrap();
        assert_eq!(store.verify_audit().await.unwrap().problem, None);
        let submit = RunEvent::Submit {
            actor: operator("olga"),
        };
        store.apply_run_event(&run.id, &submit, 1).await.unwrap();
        let written = audit::read_head(&audit::head_path(&db)).unwrap().unwrap();
        assert_eq!(written.id, 2);
        assert_eq!(
            std::fs::metadata(audit::head_path(&db)).unwrap().len(),
            RECORD_LEN as u64
        );
        assert_eq!(store.verify_audit().await.unwrap().problem, None);
    }
}
