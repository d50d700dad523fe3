//! One simulated host's state file, and what this process remembers of it.
//!
//! What the file promises, as when every access parsed it and every change replaced it:
//! - **Every access sees the file as it is now**: a change made by another handle, by a
//!   simulator in another process (`lockstep-sim`, a test injecting a fault mid-run) or by a
//!   person editing the file is seen by the very next action.
//! - **Readers never see half a file**: a change is written in full beside the state file, then
//!   takes its place in one step.
//! - **No update is lost**: within a process every handle on the same path shares one mutex;
//!   across processes writers hold a `flock` on `<file>.lock` (`lock.rs`).
//! - **A change survives the agent process dying** right after the action: it is in the kernel
//!   once the name exchange (or rename) returns, and a process killed while writing leaves the
//!   state file whole (only `<file>.next` is half written). There is no fsync, and never was per
//!   action: a simulated host lives for a test or a rehearsal.
//!
//! # Reading: the parsed state, remembered with its bytes
//!
//! Every read used to parse the whole JSON, every change parsed it again. Now each process keeps,
//! per state file, the parsed state together with the exact bytes it was parsed from (or written
//! as). An access still reads the file — an open and a copy of a few kilobytes out of the page
//! cache — and compares the bytes with the remembered ones: it parses only when they differ.
//!
//! Why compare bytes rather than the file's metadata (mtime, size, inode) from one `stat`:
//! metadata can say "unchanged" when the file did change.
//! - mtime comes from the kernel's coarse clock (one tick is 1–10 ms): two writes of the same
//!   size within a tick, ours and a fault injected right after it, leave the same mtime and size.
//! - The inode number does not name a version: the two files below trade places, so it
//!   alternates between two values; and a file replaced by rename frees its inode, which ext4
//!   may hand out again. Pinning versions by keeping them open would cost a descriptor per host
//!   (200 in a 200-server rehearsal process, against the usual limit of 1024).
//! - A generation counter written in the file needs a read of the file as well, and a person's
//!   edit that keeps the counter would go unseen.
//!
//! Equal bytes parse to an equal state, so the comparison cannot be fooled, whoever wrote the
//! file and however fast; its cost is the read, small beside a parse ([`IoCounts`] counts both).
//!
//! # Writing: two files that trade places
//!
//! An update whose result serialises to the bytes already in the file writes nothing. Otherwise
//! the new version is written into `<file>.next` and the two names are exchanged
//! (`renameat2(RENAME_EXCHANGE)`, Linux): `<file>.next` then holds the previous version, and the
//! next change is written into that same file. Nothing is created or removed per write. Measured
//! on the development machine's ext4, replacing a 31 KB file took 210–260 µs by rename over it
//! (ext4's `auto_da_alloc` starts writing a file renamed over another at once), 50–70 µs by
//! exchange with a new file and removal of the old (ext4 without a journal, as there, scans past
//! every inode freed in the last minute to create one, `recently_deleted`: 4.3 % of a 200-server
//! rehearsal's samples) and 16 µs by exchange with the reused file.
//!
//! The previous version is rewritten one change later, and a reader could still have it open:
//! so every reader here (`inspect`, `read`, [`read_state`]) holds the lock file shared while it
//! reads, as writers hold it exclusively. A reader that takes no lock (a person's `cat`) would
//! have to stall between opening and reading for a whole change to see a mix of two versions.
//! The file is written over and cut to length rather than truncated first: ext4 treats a file
//! truncated to nothing and rewritten like one renamed over another, and flushes it on close.
//!
//! What a power cut leaves was never promised (no fsync). Renaming over the file made ext4 write
//! the new blocks before the rename reached the disk; the exchange does not, so a power cut
//! within the kernel's writeback delay (about 30 s) may leave the state file empty or old,
//! which the next reader refuses or reads, naming the file. Where the exchange is unavailable
//! (another system, a file system without it, no state file yet) `<file>.next` is renamed over
//! the file, as before.
//!
//! The file stays pretty-printed JSON: the README tells people to read a host's state and set its
//! faults in this file by hand.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use super::lock::ProcessLock;
use super::SimState;

/// One simulated host's state file; see the module docs for what every call promises.
pub struct SimulatedHost {
    /// The state file as the caller named it (the lock file sits beside it).
    path: PathBuf,
    /// What this process knows of the file, shared with every other handle on the same path.
    shared: Arc<Shared>,
}

/// Per state file and process: the remembered state (behind the mutex that also serialises this
/// process's writers) and the counts of file work done.
#[derive(Default)]
struct Shared {
    cache: Mutex<Cache>,
    counts: Counters,
}

#[derive(Default)]
struct Cache {
    /// The file's bytes as last read or written here, and the state they parse to.
    known: Option<Known>,
    /// The buffer the file is read into, kept so that a steady run allocates nothing per read.
    scratch: Vec<u8>,
}

struct Known {
    bytes: Vec<u8>,
    /// Always what `bytes` parse to.
    state: SimState,
}

/// How much file work one state file cost this process, since its first handle was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoCounts {
    /// Reads of the file (each access reads it once).
    pub reads: u64,
    /// Reads whose bytes differed from the remembered ones, so they were parsed.
    pub parses: u64,
    /// Times the file was replaced.
    pub writes: u64,
    /// Updates that left the state as it was, so nothing was written.
    pub unchanged: u64,
}

#[derive(Default)]
struct Counters {
    reads: AtomicU64,
    parses: AtomicU64,
    writes: AtomicU64,
    unchanged: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> IoCounts {
        IoCounts {
            reads: self.reads.load(Ordering::Relaxed),
            parses: self.parses.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            unchanged: self.unchanged.load(Ordering::Relaxed),
        }
    }
}

/// The shared part for `path`: the same for every handle in this process while one exists.
/// Files no handle holds any more are forgotten, so a finished rehearsal's states are not kept.
fn shared_for(path: &Path) -> Arc<Shared> {
    static ALL: OnceLock<Mutex<HashMap<PathBuf, Weak<Shared>>>> = OnceLock::new();
    let key = canonical(path);
    let mut all = match ALL.get_or_init(Default::default).lock() {
        Ok(m) => m,
        Err(p) => p.into_inner(),
    };
    if let Some(shared) = all.get(&key).and_then(Weak::upgrade) {
        return shared;
    }
    all.retain(|_, w| w.strong_count() > 0);
    let shared = Arc::new(Shared::default());
    all.insert(key, Arc::downgrade(&shared));
    shared
}

/// One name per file whichever way it was spelled; a file not yet written is named by its
/// canonical folder, so `create` and a later `open` agree.
fn canonical(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Cache> {
        match self.cache.lock() {
            Ok(cache) => cache,
            Err(poisoned) => {
                // A panic inside an update may have left the remembered state half changed: forget
                // it, the file is the truth.
                self.cache.clear_poison();
                let mut cache = poisoned.into_inner();
                cache.known = None;
                cache
            }
        }
    }
}

impl Cache {
    /// The state the file holds now: read, compared, parsed only if it changed. The caller holds
    /// the process lock (shared or exclusive), so no writer rewrites the file meanwhile.
    fn current(&mut self, path: &Path, counts: &Counters) -> anyhow::Result<&mut Known> {
        self.scratch.clear();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut self.scratch))
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        Counters::add(&counts.reads);
        let known = match self.known.take() {
            Some(k) if k.bytes == self.scratch => k,
            old => {
                let state = parse(path, &self.scratch)?;
                Counters::add(&counts.parses);
                let spare = old.map(|k| k.bytes).unwrap_or_default();
                let bytes = std::mem::replace(&mut self.scratch, spare);
                Known { bytes, state }
            }
        };
        Ok(self.known.insert(known))
    }
}

impl SimulatedHost {
    /// Writes `state` to `path` (replacing any file there) and returns the host.
    pub fn create(path: impl Into<PathBuf>, state: &SimState) -> anyhow::Result<SimulatedHost> {
        let path = path.into();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        }
        let host = SimulatedHost {
            shared: shared_for(&path),
            path,
        };
        let mut cache = host.shared.lock();
        let _across_processes = ProcessLock::exclusive(&host.path)?;
        cache.known = None;
        let bytes = encode(state, 0)?;
        write_atomically(&host.path, &bytes)?;
        Counters::add(&host.shared.counts.writes);
        cache.known = Some(Known {
            bytes,
            state: state.clone(),
        });
        drop(cache);
        Ok(host)
    }

    /// Opens an existing state file.
    pub fn open(path: impl Into<PathBuf>) -> anyhow::Result<SimulatedHost> {
        let path = path.into();
        let host = SimulatedHost {
            shared: shared_for(&path),
            path,
        };
        host.inspect(|_| ())?;
        Ok(host)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current state, as the file holds it now.
    pub fn read(&self) -> anyhow::Result<SimState> {
        self.inspect(SimState::clone)
    }

    /// Looks at the current state without copying it; returns what `f` returned. `f` must not
    /// use this host again (the host is locked while it runs).
    pub fn inspect<R>(&self, f: impl FnOnce(&SimState) -> R) -> anyhow::Result<R> {
        let mut cache = self.shared.lock();
        let _across_processes = ProcessLock::shared(&self.path)?;
        let known = cache.current(&self.path, &self.shared.counts)?;
        Ok(f(&known.state))
    }

    /// Reads, changes and atomically replaces the state; returns what `f` returned. Nothing is
    /// written when `f` left the state as it was. `f` must not use this host again.
    pub fn update<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> anyhow::Result<R> {
        let mut cache = self.shared.lock();
        let _across_processes = ProcessLock::exclusive(&self.path)?;
        let counts = &self.shared.counts;
        let known = cache.current(&self.path, counts)?;
        let r = f(&mut known.state);
        match store(&self.path, known) {
            Ok(true) => Counters::add(&counts.writes),
            Ok(false) => Counters::add(&counts.unchanged),
            Err(e) => {
                // The remembered state has the change, the file may not: forget it.
                cache.known = None;
                return Err(e);
            }
        }
        Ok(r)
    }

    /// The file work this host's state file cost this process so far (all handles together).
    pub fn io_counts(&self) -> IoCounts {
        self.shared.counts.snapshot()
    }
}

/// Writes `known.state` to the file unless it serialises to the bytes already there; true when
/// it wrote.
fn store(path: &Path, known: &mut Known) -> anyhow::Result<bool> {
    let bytes = encode(&known.state, known.bytes.len())?;
    if bytes == known.bytes {
        return Ok(false);
    }
    write_atomically(path, &bytes)?;
    known.bytes = bytes;
    Ok(true)
}

/// Reads a state file (e.g. from another process than the agent's), without remembering it.
/// Waits for a writer holding the file's lock, so not from inside an update of the same file.
pub fn read_state(path: &Path) -> anyhow::Result<SimState> {
    let _across_processes = ProcessLock::shared(path)?;
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    parse(path, &bytes)
}

fn parse(path: &Path, bytes: &[u8]) -> anyhow::Result<SimState> {
    serde_json::from_slice(bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The file's bytes for `state`; `size_hint` is the size of the last version.
fn encode(state: &SimState, size_hint: usize) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(size_hint + 1024);
    serde_json::to_writer_pretty(&mut bytes, state)?;
    Ok(bytes)
}

/// Replaces the file with `bytes`: written to `<file>.next`, which then takes the file's place
/// (see the module docs). The caller holds the process lock exclusively.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut name = path.as_os_str().to_owned();
    name.push(".next");
    let next = PathBuf::from(name);
    // Written over from the start and cut to length, not truncated to nothing first: ext4 would
    // take a file truncated to zero and rewritten for a replacement, and flush it on close.
    // No fsync: see the module docs (a process crash loses nothing the kernel holds).
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&next)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.set_len(bytes.len() as u64)
        })
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", next.display()))?;
    replace(&next, path)
}

/// Puts `next` in the place of `path` by exchanging the two names: `next` is left holding the
/// previous version, whose file the next write reuses.
#[cfg(target_os = "linux")]
fn replace(next: &Path, path: &Path) -> anyhow::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    if renameat_with(CWD, next, CWD, path, RenameFlags::EXCHANGE).is_err() {
        // No state file yet (a new host) or no exchange on this file system: rename, as before.
        return rename(next, path);
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn replace(next: &Path, path: &Path) -> anyhow::Result<()> {
    rename(next, path)
}

fn rename(tmp: &Path, path: &Path) -> anyhow::Result<()> {
    std::fs::rename(tmp, path)
        .map_err(|e| anyhow::anyhow!("replacing {} by {}: {e}", path.display(), tmp.display()))
}

#[cfg(test)]
mod tests;
