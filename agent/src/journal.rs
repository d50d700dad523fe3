//! The journal: an append-only, fsync'd file of checked frames recording every action id before
//! it runs.
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
//!   mark is journaled too), never re-run;
//! - every record is one checked frame ([`frame`]): a write that fails (a full disk) is cut back
//!   off before anything else is written, so no record is ever glued to half of another;
//! - an action is accepted only while the [`reserve`] can hold its result record; otherwise the
//!   agent answers 503 and runs nothing;
//! - on start-up every frame is verified. A write cut short at the very end (the process died
//!   mid-write) is cut off: its action cannot have started if it changes the host, because such
//!   an action begins only after the write was synced. Any other damage stops the agent with a
//!   message naming the journal and how to recover. Why refuse rather than carry on: a damaged
//!   record may name any action id (the id's own bytes may be the damaged ones), so there is no
//!   list of "ids it could concern" to mark unknown — and an id read as never seen is one the
//!   orchestrator re-sends, which would run it twice.

pub mod frame;
pub mod reserve;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lockstep_protocol::{Action, ActionId, ActionState, LogLine};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use self::frame::Damage;
use self::reserve::{Reserve, MAX_RESULT_FRAME, MAX_RUNNING};

/// Progress lines kept per action (the result record must fit the reserve's share).
const MAX_LOG_LINES: usize = 200;
/// Characters kept per progress line.
const MAX_LOG_LINE_CHARS: usize = 1000;

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
    /// The journal cannot take this action and its result now (full disk, too many running, a
    /// failed write): nothing was recorded and nothing may run. The text says why.
    Unavailable(String),
}

/// The append side of the file: the handle, where the verified end is, and whether a failed
/// write could not be undone (then nothing new is admitted until a restart verifies the file).
struct Tail {
    file: File,
    len: u64,
    broken: Option<String>,
}

pub struct Journal {
    path: PathBuf,
    tail: Mutex<Tail>,
    entries: Mutex<HashMap<ActionId, Entry>>,
    reserve: Reserve,
}

/// SHA-256 of the action's JSON: the same action always gives the same digest.
pub fn digest(action: &Action) -> String {
    let bytes = serde_json::to_vec(action).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn is_disk_full(e: &std::io::Error) -> bool {
    // ENOSPC (28) on Unix; ERROR_DISK_FULL (112) / ERROR_HANDLE_DISK_FULL (39) on Windows.
    e.kind() == std::io::ErrorKind::StorageFull
        || matches!(e.raw_os_error(), Some(28) | Some(112) | Some(39))
}

/// Opens a file readable and writable by its owner only (the journal holds old and new
/// registry values).
fn open_private(path: &Path, append: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let f = o.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

/// The message an agent stops with when its journal is damaged.
fn damaged_message(path: &Path, d: &Damage) -> String {
    format!(
        "the journal {} is damaged at {d}. The agent will not start: a damaged record may name any \
         action id, and reading it as never seen would let a re-sent action run twice. See every \
         damaged place with `lockstep-agent journal --config <agent.toml>`; then restore the \
         journal from a backup, or — once every action Lockstep sent to this host is accounted \
         for (no run in flight here; mark its steps by hand) — move the file aside and start the \
         agent again",
        path.display()
    )
}

/// Every record of a journal's bytes, or the first damage (a frame that verifies but is not a
/// record counts as damage too).
fn parse_all(path: &Path, scan: &frame::Scan) -> anyhow::Result<Vec<Record>> {
    if let Some(d) = scan.damage.first() {
        anyhow::bail!(damaged_message(path, d));
    }
    let mut out = Vec::with_capacity(scan.records.len());
    for f in &scan.records {
        match serde_json::from_slice::<Record>(&f.payload) {
            Ok(r) => out.push(r),
            Err(e) => anyhow::bail!(damaged_message(
                path,
                &Damage {
                    offset: f.offset,
                    line: f.line,
                    reason: format!("not a journal record ({e})"),
                }
            )),
        }
    }
    Ok(out)
}

/// Writes `records` as frames to a new file and puts it in place of `path` (old-format journals
/// become checked frames once, on open).
fn rewrite(path: &Path, payloads: &[&[u8]]) -> anyhow::Result<()> {
    let tmp = path.with_extension("rewrite");
    {
        let mut f = open_private(&tmp, false)?;
        for p in payloads {
            f.write_all(&frame::encode(p))?;
        }
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // Makes the rename durable on Unix; a directory cannot be opened this way on Windows.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

impl Journal {
    /// Opens (or creates) the journal, verifies and replays it, and marks interrupted actions
    /// unknown. A damaged journal is an error naming the file, where it is damaged and how to
    /// recover.
    pub fn open(path: &Path) -> anyhow::Result<Journal> {
        if let Some(dir) = path.parent() {
            crate::config::ensure_private_dir(dir)?;
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => anyhow::bail!("reading the journal {}: {e}", path.display()),
        };
        let scan = frame::scan(&bytes);
        let records = parse_all(path, &scan)?;
        if scan.records.iter().any(|f| f.legacy) {
            let payloads: Vec<&[u8]> = scan.records.iter().map(|f| &f.payload[..]).collect();
            rewrite(path, &payloads)?;
            tracing::info!(path = %path.display(), "journal rewritten as checked frames");
        } else if let Some(at) = scan.torn_at {
            tracing::warn!(path = %path.display(), offset = at, "cutting off a record whose write never finished");
            let f = OpenOptions::new().write(true).open(path)?;
            f.set_len(scan.whole_len)?;
            f.sync_all()?;
        }
        let mut entries: HashMap<ActionId, Entry> = HashMap::new();
        for rec in records {
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
        let file = open_private(path, true)?;
        let len = file.metadata()?.len();
        let reserve = Reserve::new(path);
        if let Err(e) = reserve.fill() {
            tracing::warn!(path = %reserve.path().display(), error = %e, "could not reserve space for results; new actions are refused until it can");
        }
        let journal = Journal {
            path: path.to_path_buf(),
            tail: Mutex::new(Tail {
                file,
                len,
                broken: None,
            }),
            entries: Mutex::new(HashMap::new()),
            reserve,
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

    /// Appends one frame; `durable` syncs it to disk before returning (see the module doc for
    /// which records are). A failed write is cut back off, so the next frame starts clean.
    fn append(&self, rec: &Record, durable: bool) -> Result<(), std::io::Error> {
        let payload = serde_json::to_vec(rec).map_err(std::io::Error::other)?;
        self.append_frame(&frame::encode(&payload), durable)
    }

    fn append_frame(&self, bytes: &[u8], durable: bool) -> Result<(), std::io::Error> {
        let mut t = self
            .tail
            .lock()
            .map_err(|_| std::io::Error::other("journal lock poisoned"))?;
        if let Some(why) = &t.broken {
            return Err(std::io::Error::other(why.clone()));
        }
        let start = t.len;
        let written =
            t.file.write_all(bytes).and_then(
                |()| {
                    if durable {
                        t.file.sync_data()
                    } else {
                        Ok(())
                    }
                },
            );
        match written {
            Ok(()) => {
                t.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                if let Err(cut) = t.file.set_len(start).and_then(|()| t.file.sync_data()) {
                    t.broken = Some(format!(
                        "a failed write ({e}) could not be cut back off the journal ({cut}); restart the agent to verify it"
                    ));
                }
                Err(e)
            }
        }
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
        let running = entries
            .values()
            .filter(|e| e.state == ActionState::Running)
            .count();
        if running >= MAX_RUNNING {
            return Ok(Admission::Unavailable(format!(
                "{running} actions are running, the most the journal holds room for; nothing was run, try again later"
            )));
        }
        if let Err(e) = self.reserve.fill() {
            return Ok(Admission::Unavailable(format!(
                "the journal's disk ({}) has no room for this action's records ({e}); nothing was run",
                self.path.display()
            )));
        }
        let at_ms = now_ms();
        let rec = Record::Accepted {
            id: id.clone(),
            digest: d.clone(),
            action: action.clone(),
            at_ms,
        };
        if let Err(e) = self.append(&rec, action.is_change()) {
            return Ok(Admission::Unavailable(format!(
                "the journal {} could not record this action ({e}); nothing was run",
                self.path.display()
            )));
        }
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

    /// Records the final state (with the log) durably. On a full disk the reserve is given back
    /// and the write tried again; if it still fails the id reads `unknown` (never `not_found`)
    /// and nothing new is admitted.
    pub fn finish(&self, id: &ActionId, state: ActionState) -> anyhow::Result<()> {
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| anyhow::anyhow!("journal lock poisoned"))?;
        let mut log = entries.get(id).map(|e| e.log.clone()).unwrap_or_default();
        // An id the journal does not know (cannot happen through `admit`) is synced to be safe.
        let durable = entries.get(id).is_none_or(|e| e.action.is_change());
        let at_ms = now_ms();
        let mut dropped = 0usize;
        let bytes = loop {
            let rec = Record::Finished {
                id: id.clone(),
                state: state.clone(),
                log: log.clone(),
                at_ms,
            };
            let payload = serde_json::to_vec(&rec)?;
            if payload.len() <= MAX_RESULT_FRAME || log.is_empty() {
                break frame::encode(&payload);
            }
            // Too long for the reserve's share: keep the newest lines.
            let cut = log.len().div_ceil(4).max(1);
            log.drain(..cut);
            dropped += cut;
            if let Some(first) = log.first_mut() {
                first.text = format!("({dropped} earlier lines not kept) {}", first.text);
            }
        };
        let mut written = self.append_frame(&bytes, durable);
        if matches!(&written, Err(e) if is_disk_full(e)) {
            tracing::warn!(%id, "journal disk full; writing the result from the reserve");
            self.reserve.release();
            written = self.append_frame(&bytes, durable);
        }
        let result = match written {
            Ok(()) => {
                if let Some(e) = entries.get_mut(id) {
                    e.state = state;
                }
                Ok(())
            }
            Err(e) => {
                if let Ok(mut t) = self.tail.lock() {
                    t.broken.get_or_insert_with(|| {
                        format!("a result could not be journaled ({e}); restart the agent once the disk has room")
                    });
                }
                if let Some(entry) = entries.get_mut(id) {
                    entry.state = ActionState::Unknown {
                        reason: format!("the agent could not journal this action's result: {e}"),
                    };
                }
                Err(anyhow::anyhow!("journaling the result of {id}: {e}"))
            }
        };
        result
    }

    /// Adds a progress line (kept in memory; written with the final record). Bounded: the
    /// result record must fit its share of the reserve.
    pub fn log(&self, id: &ActionId, text: impl Into<String>) {
        if let Ok(mut entries) = self.entries.lock() {
            if let Some(e) = entries.get_mut(id) {
                if e.log.len() >= MAX_LOG_LINES {
                    return;
                }
                let mut text: String = text.into();
                if let Some((cut, _)) = text.char_indices().nth(MAX_LOG_LINE_CHARS) {
                    text.truncate(cut);
                    text.push('…');
                }
                e.log.push(LogLine {
                    at_ms: now_ms(),
                    text,
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

/// What `lockstep-agent journal` shows: the records that verify, and where the file is damaged.
pub struct Inspection {
    /// (id, "accepted" or the final state's name), in file order.
    pub records: Vec<(ActionId, &'static str)>,
    pub damage: Vec<Damage>,
    /// Offset of a last write that never finished.
    pub torn_at: Option<u64>,
}

/// Reads a journal file without opening it for writing. Never fails on damage (any bytes,
/// including ones that are not UTF-8): it reports where.
pub fn inspect(path: &Path) -> anyhow::Result<Inspection> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let scan = frame::scan(&bytes);
    let mut damage = scan.damage.clone();
    let mut records = Vec::new();
    for f in &scan.records {
        match serde_json::from_slice::<Record>(&f.payload) {
            Ok(Record::Accepted { id, .. }) => records.push((id, "accepted")),
            Ok(Record::Finished { id, state, .. }) => records.push((id, state.name())),
            Err(e) => damage.push(Damage {
                offset: f.offset,
                line: f.line,
                reason: format!("not a journal record ({e})"),
            }),
        }
    }
    damage.sort_by_key(|d| d.offset);
    Ok(Inspection {
        records,
        damage,
        torn_at: scan.torn_at,
    })
}

/// Every record of a journal file that verifies: (id, "accepted" or the final state's name).
/// Used by tests and tools to count what ran.
pub fn read_records(path: &Path) -> anyhow::Result<Vec<(ActionId, &'static str)>> {
    Ok(inspect(path)?.records)
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

    /// A journal with a finished change, a finished read and a change cut off by a crash.
    fn sample(path: &Path) -> Vec<(ActionId, Action)> {
        let j = Journal::open(path).unwrap();
        let items = vec![
            (id("run1/stop/1"), Action::IisReset {}),
            (id("run1/ver/1"), Action::ProductVersion { component: None }),
            (id("run1/midway/1"), Action::IisReset {}),
        ];
        for (i, a) in &items[..2] {
            assert!(matches!(j.admit(i, a).unwrap(), Admission::New));
            j.log(i, "did it");
            j.finish(
                i,
                ActionState::Cancelled {
                    message: "x".into(),
                },
            )
            .unwrap();
        }
        j.admit(&items[2].0, &items[2].1).unwrap();
        items
    }

    /// Every single-byte corruption of a sample journal (several values per byte, including a
    /// line end and bytes that are not UTF-8): the agent either refuses to start with a message
    /// naming the journal, or knows every sampled id — none reads `not_found`, none runs again.
    #[test]
    fn no_single_byte_corruption_lets_an_action_run_again() {
        let dir = tempfile::tempdir().unwrap();
        let clean = dir.path().join("clean.jsonl");
        let items = sample(&clean);
        let bytes = std::fs::read(&clean).unwrap();
        let (mut refused, mut opened) = (0, 0);
        for i in 0..bytes.len() {
            for v in [bytes[i] ^ 0x01, bytes[i] ^ 0x80, b'\n', b'{', 0xff, b' '] {
                if v == bytes[i] {
                    continue;
                }
                let mut bad = bytes.clone();
                bad[i] = v;
                let p = dir.path().join("bad.jsonl");
                std::fs::write(&p, &bad).unwrap();
                let _ = std::fs::remove_file(dir.path().join("bad.jsonl.reserve"));
                match Journal::open(&p) {
                    Err(e) => {
                        let msg = format!("{e:#}");
                        assert!(
                            msg.contains(&p.display().to_string()) && msg.contains("damaged"),
                            "byte {i} = {v:#x}: {msg}"
                        );
                        refused += 1;
                    }
                    Ok(j) => {
                        opened += 1;
                        for (id, a) in &items {
                            assert!(
                                j.get(id).is_some(),
                                "byte {i} = {v:#x}: {id} reads not_found"
                            );
                            assert!(
                                !matches!(j.admit(id, a).unwrap(), Admission::New),
                                "byte {i} = {v:#x}: {id} would run again"
                            );
                        }
                    }
                }
                // The inspector reads every variant without failing and says where.
                let seen = inspect(&p).unwrap();
                let _ = seen.damage.len();
            }
        }
        assert!(refused > bytes.len(), "{refused} refusals");
        eprintln!("{refused} corruptions refused, {opened} read safely");
    }

    #[test]
    fn an_old_format_journal_is_read_and_rewritten_as_frames() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        let accepted = Record::Accepted {
            id: id("old"),
            digest: digest(&Action::IisReset {}),
            action: Action::IisReset {},
            at_ms: 1,
        };
        let mut text = serde_json::to_string(&accepted).unwrap();
        text.push('\n');
        std::fs::write(&p, text).unwrap();
        let j = Journal::open(&p).unwrap();
        assert!(matches!(
            j.get(&id("old")).unwrap().state,
            ActionState::Unknown { .. }
        ));
        drop(j);
        let seen = inspect(&p).unwrap();
        assert!(seen.damage.is_empty());
        assert_eq!(seen.records.len(), 2);
        assert!(!std::fs::read(&p).unwrap().starts_with(b"{"));
    }

    #[test]
    fn a_failed_write_is_cut_back_off_and_the_next_record_starts_clean() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        let j = Journal::open(&p).unwrap();
        j.admit(&id("a"), &Action::IisReset {}).unwrap();
        // Half a frame, as a full disk leaves it, then the journal's own cut-back.
        let len = std::fs::metadata(&p).unwrap().len();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"0000002a 0123")
            .unwrap();
        j.tail.lock().unwrap().file.set_len(len).unwrap();
        j.finish(
            &id("a"),
            ActionState::Cancelled {
                message: "x".into(),
            },
        )
        .unwrap();
        drop(j);
        assert!(inspect(&p).unwrap().damage.is_empty());
        assert!(matches!(
            Journal::open(&p).unwrap().get(&id("a")).unwrap().state,
            ActionState::Cancelled { .. }
        ));
    }

    #[cfg(unix)]
    #[test]
    fn the_journal_is_private_to_the_agent() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let p = state.join("j.jsonl");
        Journal::open(&p).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(&state), 0o700);
    }
}
