//! The lock that orders the processes sharing one state file: an advisory lock (`flock`) on
//! `<state file>.lock`, which the kernel drops if the process holding it dies. A writer holds it
//! exclusively, so writers in different processes never lose each other's change; a reader holds
//! it shared while it reads, so no writer rewrites the file it is reading (`file.rs` reuses the
//! previous version's file for the next one). Within one process the shared cache's mutex
//! (`file.rs`) already orders every handle; this adds the other processes.

use std::path::Path;

/// An advisory lock on `<state file>.lock`, held until dropped (Unix); elsewhere only the
/// in-process lock applies (the simulated backend is a Linux test and demo tool).
pub(super) struct ProcessLock {
    #[cfg(unix)]
    _file: std::fs::File,
}

impl ProcessLock {
    /// For a writer: no other writer and no reader while it is held.
    pub(super) fn exclusive(state: &Path) -> anyhow::Result<ProcessLock> {
        ProcessLock::acquire(state, true)
    }

    /// For a reader: no writer while it is held.
    pub(super) fn shared(state: &Path) -> anyhow::Result<ProcessLock> {
        ProcessLock::acquire(state, false)
    }

    #[cfg(unix)]
    fn acquire(state: &Path, exclusive: bool) -> anyhow::Result<ProcessLock> {
        let mut name = state.as_os_str().to_owned();
        name.push(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&name)
            .map_err(|e| anyhow::anyhow!("{}: {e}", Path::new(&name).display()))?;
        loop {
            // flock on Unix, released when `file` closes.
            let locked = if exclusive {
                file.lock()
            } else {
                file.lock_shared()
            };
            match locked {
                Ok(()) => return Ok(ProcessLock { _file: file }),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => anyhow::bail!("locking {}: {e}", Path::new(&name).display()),
            }
        }
    }

    #[cfg(not(unix))]
    fn acquire(_state: &Path, _exclusive: bool) -> anyhow::Result<ProcessLock> {
        Ok(ProcessLock {})
    }
}
