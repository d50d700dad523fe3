//! Space held back on the journal's disk so the "result" record of every action that was
//! accepted can always be written.
//!
//! The reserve is a file of real (non-sparse) bytes next to the journal. When a result record
//! meets a full disk, the reserve is given back to the file system and the write is tried again;
//! while the reserve cannot be rebuilt, the journal admits nothing new (the agent answers 503 and
//! runs nothing). An action is thus never accepted unless its result has somewhere to go.

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

    /// Whether the reserve is whole.
    pub fn is_full(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= RESERVE_BYTES)
    }

    /// Makes the reserve whole, writing real bytes (a sparse `set_len` would hold no space).
    /// On a full disk it fails and leaves what it could not complete removed.
    pub fn fill(&self) -> std::io::Result<()> {
        if self.is_full() {
            return Ok(());
        }
        let result = (|| {
            let mut f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&self.path)?;
            let chunk = vec![0u8; 64 << 10];
            let mut left = RESERVE_BYTES;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                f.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            f.sync_all()
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
