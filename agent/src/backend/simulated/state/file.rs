//! One simulated host's state file, and what this process remembers of it.
//!
//! What the file promises, unchanged by the memory kept here:
//! - **Every access sees the file as it is now**: a change made by another handle, by a
//!   simulator in another process (`lockstep-sim`, a test injecting a fault mid-run) or by a
//!   person editing the file is seen by the very next action.
//! - **Readers never see half a file**: a change is written to a temporary file that then
//!   replaces the state file (rename).
//! - **No update is lost**: within a process every handle on the same path shares one mutex;
//!   across processes writers also hold a `flock` on `<file>.lock` (`lock.rs`).
//! - **A change survives the agent process dying** right after the action: it is in the kernel
//!   once the rename returns. There is no fsync, and never was per action: a simulated host lives
//!   for a test or a rehearsal, and a machine crash is not what its tests simulate.
//!
//! On Linux the new file takes the old one's place by exchanging the two names
//! (`renameat2(RENAME_EXCHANGE)`), then the old one is removed, rather than by renaming over it.
//! Both are atomic for every reader in every process. The difference: renaming over an existing
//! file makes ext4 allocate and start writing the new file's blocks at once (`auto_da_alloc`, so
//! that a power cut leaves the old or the new version rather than an empty file), which was most
//! of the cost of a write: replacing a 31 KB file took 210–260 µs that way against 55–72 µs by
//! exchange and removal (ext4 on the 2-core development machine, `docs/perf/README.md`).
//! A power cut within the kernel's writeback delay may now leave an empty state file, which the
//! next reader refuses, naming it. No power cut was ever survived by what a test or rehearsal
//! holds in memory, and none was promised here (there is no fsync); a process crash loses nothing
//! either way. Where the exchange is not available (another system, a file system without it, no
//! file yet) the plain rename is used.
//!
//! What made it costly: every read parsed the whole JSON, every change parsed it again,
//! serialised it and replaced the file — even when the action changed nothing. Now each process
//! keeps, per state file, the parsed state together with the exact bytes it was parsed from (or
//! written as). An access still reads the file — an open and a copy of a few kilobytes out of the
//! page cache — and compares the bytes with the remembered ones: parsing happens only when they
//! differ. An update whose result serialises to the bytes already in the file writes nothing.
//!
//! Why compare bytes rather than the file's metadata (mtime, size, inode) from one `stat`:
//! metadata can say "unchanged" when the file did change.
//! - mtime comes from the kernel's coarse clock (one tick is 1–10 ms): two writes of the same
//!   size within a tick, ours and a fault injected right after it, leave the same mtime and size.
//! - A state file is replaced by rename, so its inode changes — but the replaced inode is freed,
//!   and ext4 hands out the lowest free inode number again, so a file replaced twice in a row can
//!   come back with the same inode number, size and mtime. Keeping the old inode open would pin
//!   its number, at one descriptor per host (200 in a 200-server rehearsal process, against the
//!   usual limit of 1024) — and would still miss a person's editor writing the file in place.
//! - A generation counter written in the file needs a read of the file as well, and a person's
//!   edit that keeps the counter would go unseen.
//!
//! Equal bytes parse to an equal state, so this comparison cannot be fooled, whoever wrote the
//! file and however fast; its cost is the read, which is small beside a parse (the counts below
//! and `docs/perf/README.md` have the figures).
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
    /// The state the file holds now: read, compared, parsed only if it changed.
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
        let _across_processes = ProcessLock::acquire(&host.path)?;
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
        let known = cache.current(&self.path, &self.shared.counts)?;
        Ok(f(&known.state))
    }

    /// Reads, changes and atomically replaces the state; returns what `f` returned. Nothing is
    /// written when `f` left the state as it was. `f` must not use this host again.
    pub fn update<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> anyhow::Result<R> {
        let mut cache = self.shared.lock();
        let _across_processes = ProcessLock::acquire(&self.path)?;
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
pub fn read_state(path: &Path) -> anyhow::Result<SimState> {
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

/// Replaces the file with `bytes`: written beside it, then renamed over it.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
    {
        // No fsync: see the module docs (a process crash loses nothing the kernel holds). An
        // fsync per simulated action was a large share of a 200-server rehearsal's time.
        std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
    }
    replace(&tmp, path)
}

/// Puts `tmp` in the place of `path`: exchanges the two names, then removes the old version (see
/// the module docs for why not a rename over it).
#[cfg(target_os = "linux")]
fn replace(tmp: &Path, path: &Path) -> anyhow::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    if renameat_with(CWD, tmp, CWD, path, RenameFlags::EXCHANGE).is_err() {
        // No state file yet (a new host) or no exchange on this file system: rename, as before.
        return rename(tmp, path);
    }
    // The state file is already the new version: a leftover old one changes nothing.
    if let Err(e) = std::fs::remove_file(tmp) {
        tracing::warn!(file = %tmp.display(), "previous simulated host state left behind: {e}");
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn replace(tmp: &Path, path: &Path) -> anyhow::Result<()> {
    rename(tmp, path)
}

fn rename(tmp: &Path, path: &Path) -> anyhow::Result<()> {
    std::fs::rename(tmp, path)
        .map_err(|e| anyhow::anyhow!("replacing {} by {}: {e}", path.display(), tmp.display()))
}

#[cfg(test)]
mod tests;
