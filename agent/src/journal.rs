//! The journal: an append-only, fsync'd JSON-lines file recording every action id before it runs.
//!
//! Guarantees:
//! - an id of an action that changes the host is written and synced to disk *before* the action
//!   starts, so after any crash the agent knows it may have run; its result is synced before it
//!   is reported;
//! - a read (`Action::is_change` false: versions, disk space, service states, probes, …) is
//!   written before it starts and its result before it is reported, but neither is synced: a
//!   process crash loses nothing (the operating system has the lines), and a power cut can only
//!   forget a read — asked again it runs again, which changes nothing — or leave it `unknown`,
//!   as a power cut during the read would. Two fsyncs per read were most of a remote check's
//!   time; changes keep both;
//! - a repeated id returns what is recorded and never runs again;
//! - on start-up, an id that was accepted but never finished is marked outcome unknown (and that
//!   mark is journaled too), never re-run.
//!
//! A torn last line (the process died mid-write) is ignored: its action cannot have started if it
//! changes the host, because such an action begins only after the write was synced (a read may
//! have, which is harmless).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lockstep_protocol::{Action, ActionId, ActionState, LogLine};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum Record {
    Accepted {
        id: ActionId,
        digest: String,
        action: Action,
        at_ms: i64,
    },
    Finished {
        id: ActionId,
        state: ActionState,
        log: Vec<LogLine>,
        at_ms: i64,
    },
}

/// What the journal knows about one id.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub digest: String,
    pub action: Action,
    pub state: ActionState,
    pub log: Vec<LogLine>,
    pub accepted_at_ms: i64,
}

/// The answer to [`Journal::admit`].
#[derive(Debug)]
pub enum Admission {
    /// Journaled now; the caller must run it.
    New,
    /// Seen before with the same action: return this, run nothing.
    Replay(Box<Entry>),
    /// Seen before with a different action.
    Conflict,
}

pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
    entries: Mutex<HashMap<ActionId, Entry>>,
}

/// SHA-256 of the action's JSON: the same action always gives the same digest.
pub fn digest(action: &Action) -> String {
    let bytes = serde_json::to_vec(action).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Journal {
    /// Opens (or creates) the journal, replays it, and marks interrupted actions unknown.
    pub fn open(path: &Path) -> anyhow::Result<Journal> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut entries: HashMap<ActionId, Entry> = HashMap::new();
        if path.exists() {
            let f = File::open(path)?;
            for (n, line) in BufReader::new(f).split(b'\n').enumerate() {
                let line = line?;
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                let rec: Record = match serde_json::from_slice(&line) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(line = n + 1, error = %e, "ignoring a torn journal line");
                        continue;
                    }
                };
                match rec {
                    Record::Accepted {
                        id,
                        digest,
                        action,
                        at_ms,
                    } => {
                        entries.insert(
                            id,
                            Entry {
                                digest,
                                action,
                                state: ActionState::Running,
                                log: Vec::new(),
                                accepted_at_ms: at_ms,
                            },
                        );
                    }
                    Record::Finished { id, state, log, .. } => {
                        if let Some(e) = entries.get_mut(&id) {
                            e.state = state;
                            e.log = log;
                        }
                    }
                }
            }
        }
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        // A torn last line must not glue itself to the next record.
        let len = file.metadata()?.len();
        if len > 0 {
            use std::io::{Read, Seek, SeekFrom};
            let mut last = [0u8; 1];
            let mut r = File::open(path)?;
            r.seek(SeekFrom::Start(len - 1))?;
            r.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
                file.sync_data()?;
            }
        }
        let journal = Journal {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            entries: Mutex::new(HashMap::new()),
        };
        let interrupted: Vec<ActionId> = entries
            .iter()
            .filter(|(_, e)| e.state == ActionState::Running)
            .map(|(id, _)| id.clone())
            .collect();
        *journal
            .entries
            .lock()
            .map_err(|_| anyhow::anyhow!("journal lock poisoned"))? = entries;
        for id in interrupted {
            tracing::warn!(%id, "action was interrupted by an agent restart; outcome unknown");
            journal.finish(
                &id,
                ActionState::Unknown {
                    reason: "the agent restarted while this action ran; it was not run again"
                        .into(),
                },
            )?;
        }
        Ok(journal)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line; `durable` syncs it to disk before returning (see the module doc for
    /// which records are).
    fn append(&self, rec: &Record, durable: bool) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(rec)?;
        line.push(b'\n');
        let mut f = self
            .file
            .lock()
            .map_err(|_| anyhow::anyhow!("journal lock poisoned"))?;
        f.write_all(&line)?;
        if durable {
            f.sync_data()?;
        }
        Ok(())
    }

    /// Records `id` durably before its action runs, or says why it must not run.
    pub fn admit(&self, id: &ActionId, action: &Action) -> anyhow::Result<Admission> {
        let d = digest(action);
        // Held across the append, so two concurrent requests with one id cannot both be New.
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| anyhow::anyhow!("journal lock poisoned"))?;
        if let Some(e) = entries.get(id) {
            return Ok(if e.digest == d {
                Admission::Replay(Box::new(e.clone()))
            } else {
                Admission::Conflict
            });
        }
        let at_ms = now_ms();
        self.append(
            &Record::Accepted {
                id: id.clone(),
                digest: d.clone(),
                action: action.clone(),
                at_ms,
            },
            action.is_change(),
        )?;
        entries.insert(
            id.clone(),
            Entry {
                digest: d,
                action: action.clone(),
                state: ActionState::Running,
                log: Vec::new(),
                accepted_at_ms: at_ms,
            },
        );
        Ok(Admission::New)
    }

    /// Records the final state (with the log) durably.
    pub fn finish(&self, id: &ActionId, state: ActionState) -> anyhow::Result<()> {
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| anyhow::anyhow!("journal lock poisoned"))?;
        let log = entries.get(id).map(|e| e.log.clone()).unwrap_or_default();
        // An id the journal does not know (cannot happen through `admit`) is synced to be safe.
        let durable = entries.get(id).is_none_or(|e| e.action.is_change());
        self.append(
            &Record::Finished {
                id: id.clone(),
                state: state.clone(),
                log,
                at_ms: now_ms(),
            },
            durable,
        )?;
        if let Some(e) = entries.get_mut(id) {
            e.state = state;
        }
        Ok(())
    }

    /// Adds a progress line (kept in memory; written with the final record).
    pub fn log(&self, id: &ActionId, text: impl Into<String>) {
        if let Ok(mut entries) = self.entries.lock() {
            if let Some(e) = entries.get_mut(id) {
                e.log.push(LogLine {
                    at_ms: now_ms(),
                    text: text.into(),
                });
            }
        }
    }

    pub fn get(&self, id: &ActionId) -> Option<Entry> {
        self.entries.lock().ok().and_then(|e| e.get(id).cloned())
    }

    pub fn running(&self) -> usize {
        self.entries
            .lock()
            .map(|e| {
                e.values()
                    .filter(|x| x.state == ActionState::Running)
                    .count()
            })
            .unwrap_or(0)
    }

    /// Every id with its state, sorted by id (for tests and `lockstep-agent journal`).
    pub fn list(&self) -> Vec<(ActionId, ActionState)> {
        let mut v: Vec<_> = self
            .entries
            .lock()
            .map(|e| {
                e.iter()
                    .map(|(k, v)| (k.clone(), v.state.clone()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// Reads a journal file without opening it for writing: every accepted id with its last state.
/// Used by tests and tools to count what ran.
pub fn read_records(path: &Path) -> anyhow::Result<Vec<(ActionId, &'static str)>> {
    let text = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Ok(rec) = serde_json::from_str::<Record>(line) {
            out.push(match rec {
                Record::Accepted { id, .. } => (id, "accepted"),
                Record::Finished { id, state, .. } => (id, state.name()),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ActionId {
        ActionId::new(s).unwrap()
    }

    #[test]
    fn an_id_is_admitted_once_and_replayed_after() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.jsonl")).unwrap();
        let a = Action::IisReset {};
        assert!(matches!(j.admit(&id("a"), &a).unwrap(), Admission::New));
        assert!(matches!(
            j.admit(&id("a"), &a).unwrap(),
            Admission::Replay(_)
        ));
        assert!(matches!(
            j.admit(&id("a"), &Action::ProductVersion { component: None })
                .unwrap(),
            Admission::Conflict
        ));
    }

    #[test]
    fn an_action_interrupted_by_a_restart_is_unknown_and_stays_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        {
            let j = Journal::open(&p).unwrap();
            j.admit(&id("done"), &Action::IisReset {}).unwrap();
            j.finish(
                &id("done"),
                ActionState::Cancelled {
                    message: "x".into(),
                },
            )
            .unwrap();
            j.admit(&id("midway"), &Action::IisReset {}).unwrap();
        }
        let j = Journal::open(&p).unwrap();
        assert!(matches!(
            j.get(&id("midway")).unwrap().state,
            ActionState::Unknown { .. }
        ));
        assert!(matches!(
            j.get(&id("done")).unwrap().state,
            ActionState::Cancelled { .. }
        ));
        // And a second restart keeps it unknown without adding anything new to run.
        drop(j);
        let j = Journal::open(&p).unwrap();
        assert!(matches!(
            j.admit(&id("midway"), &Action::IisReset {}).unwrap(),
            Admission::Replay(_)
        ));
    }

    #[test]
    fn a_read_and_its_result_are_journaled_and_found_again_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let j = Journal::open(&path).unwrap();
        let read = Action::ProductVersion { component: None };
        assert!(!read.is_change());
        assert!(matches!(j.admit(&id("r"), &read).unwrap(), Admission::New));
        let done = ActionState::Succeeded {
            evidence: lockstep_protocol::Evidence::ProductVersion {
                version: Some("8.8.6".into()),
                component: None,
            },
        };
        j.finish(&id("r"), done.clone()).unwrap();
        drop(j);
        let again = Journal::open(&path).unwrap();
        assert_eq!(again.get(&id("r")).unwrap().state, done);
        assert!(matches!(
            again.admit(&id("r"), &read).unwrap(),
            Admission::Replay(_)
        ));
    }

    #[test]
    fn a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        {
            let j = Journal::open(&p).unwrap();
            j.admit(&id("a"), &Action::IisReset {}).unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(br#"{"record":"accepted","id":"b","dig"#)
            .unwrap();
        drop(f);
        let j = Journal::open(&p).unwrap();
        assert!(j.get(&id("b")).is_none());
        assert!(j.get(&id("a")).is_some());
        assert!(matches!(
            j.admit(&id("c"), &Action::IisReset {}).unwrap(),
            Admission::New
        ));
        drop(j);
        let j = Journal::open(&p).unwrap();
        assert!(j.get(&id("c")).is_some());
    }
}
