//! The lock that keeps writers of one state file in different processes from losing each
//! other's change: an exclusive advisory lock (`flock`) on `<state file>.lock`, which the kernel
//! drops if the process holding it dies. Within one process the shared cache's mutex
//! (`file.rs`) already serialises writers; this adds the other processes.

use std::path::Path;

/// An exclusive advisory lock on `<state file>.lock`, held until dropped (Unix); elsewhere only
/// the in-process lock applies (the simulated backend is a Linux test and demo tool).
pub(super) struct ProcessLock {
    #[cfg(unix)]
    _file: std::fs::File,
}

impl ProcessLock {
    #[cfg(unix)]
    pub(super) fn acquire(state: &Path) -> anyhow::Result<ProcessLock> {
        let mut name = state.as_os_str().to_owned();
        name.push(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&name)
            .map_err(|e| anyhow::anyhow!("{}: {e}", Path::new(&name).display()))?;
        loop {
            // An exclusive advisory lock (flock on Unix), released when `file` closes.
            match file.lock() {
                Ok(()) => return Ok(ProcessLock { _file: file }),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => anyhow::bail!("locking {}: {e}", Path::new(&name).display()),
            }
        }
    }

    #[cfg(not(unix))]
    pub(super) fn acquire(_state: &Path) -> anyhow::Result<ProcessLock> {
        Ok(ProcessLock {})
    }
}
