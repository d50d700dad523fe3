//! Space held back on the journal's disk so the "result" record of every action that was
//! accepted can always be written.
//!
//! The reserve is a file of real (non-sparse) bytes next to the journal. When a result record
//! meets a full disk, the reserve is given back to the file system and the write is tried again;
//! while the reserve cannot be rebuilt, the journal admits nothing new (the agent answers 503 and
//! runs nothing). An action is thus never accepted unless its result has somewhere to go.
//!
//! On Linux the space is taken with `fallocate` (the file system hands the blocks to the file
//! without anything being written) and without an fsync: what the reserve guarantees is space
//! the running agent can give back, which the allocation holds at once; after a crash or a power
//! cut the journal opens again through [`Reserve::fill`], which checks the blocks the file holds
//! (not only its length) and takes what is missing. Writing 2 MiB of zeros and syncing them was
//! most of what a simulated site of 200 hosts spent starting (issue 19). Elsewhere (the Windows
//! agent), and where a file system refuses `fallocate`, zeros are written and synced as before.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What the reserve holds: the result records of [`MAX_RUNNING`] actions of at most
/// [`MAX_RESULT_FRAME`] bytes each.
pub const RESERVE_BYTES: u64 = 2 << 20;
/// A result record is cut to this size (log lines are dropped first) so the reserve covers it.
pub const MAX_RESULT_FRAME: usize = 32 << 10;
/// Actions that may be running at once (each may need its result written from the reserve).
pub const MAX_RUNNING: usize = (RESERVE_BYTES as usize) / MAX_RESULT_FRAME;

pub struct Reserve {
    path: PathBuf,
}

impl Reserve {
    pub fn new(journal: &Path) -> Reserve {
        let mut name = journal.file_name().unwrap_or_default().to_os_string();
        name.push(".reserve");
        Reserve {
            path: journal.with_file_name(name),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the reserve is whole: long enough, and (where the platform says) holding that
    /// many blocks, so a sparse file or one whose blocks a crash lost does not pass.
    pub fn is_full(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= RESERVE_BYTES && holds_blocks(&m))
    }

    /// Makes the reserve whole with real blocks (a sparse `set_len` would hold no space). On a
    /// full disk it fails and leaves what it could not complete removed.
    pub fn fill(&self) -> std::io::Result<()> {
        if self.is_full() {
            return Ok(());
        }
        let result = (|| {
            let f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&self.path)?;
            #[cfg(target_os = "linux")]
            match rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, RESERVE_BYTES) {
                Ok(()) => return Ok(()),
                // A full disk is the answer; anything else (a file system without fallocate)
                // falls back to writing the bytes.
                Err(e) if e == rustix::io::Errno::NOSPC => return Err(e.into()),
                Err(_) => {}
            }
            write_zeros(f)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&self.path);
        }
        result
    }

    /// Gives the reserved space back to the file system (for the result records that need it).
    pub fn release(&self) {
        if let Ok(f) = File::options().write(true).open(&self.path) {
            let _ = f.set_len(0);
            let _ = f.sync_all();
        }
    }
}

/// The bytes of the reserve written out and synced: where `fallocate` is not to be had.
fn write_zeros(mut f: File) -> std::io::Result<()> {
    let chunk = vec![0u8; 64 << 10];
    let mut left = RESERVE_BYTES;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.sync_all()
}

/// Whether a file's blocks cover [`RESERVE_BYTES`] (Unix reports them in 512-byte units).
#[cfg(unix)]
fn holds_blocks(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    m.blocks().saturating_mul(512) >= RESERVE_BYTES
}

/// Elsewhere only the length is known.
#[cfg(not(unix))]
fn holds_blocks(_: &std::fs::Metadata) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::{Reserve, RESERVE_BYTES};

    #[test]
    fn a_filled_reserve_holds_real_blocks_and_a_sparse_one_is_filled_again() {
        let dir = tempfile::tempdir().unwrap();
        let reserve = Reserve::new(&dir.path().join("journal.jsonl"));
        reserve.fill().unwrap();
        assert!(reserve.is_full());
        // A file of the right length but no blocks (what a crash can leave, or a sparse copy)
        // is not taken for a reserve.
        std::fs::File::create(reserve.path())
            .unwrap()
            .set_len(RESERVE_BYTES)
            .unwrap();
        #[cfg(unix)]
        assert!(!reserve.is_full());
        reserve.fill().unwrap();
        assert!(reserve.is_full());
        reserve.release();
        assert!(!reserve.is_full());
    }
}
