//! What the e-mail tests share about the real SMTP servers they start (Python's aiosmtpd with a
//! Maildir handler): waiting until one listens, and reading what it stored.

use std::path::Path;
use std::time::{Duration, Instant};

/// Waits (up to 20 s) until `addr` accepts TCP connections; panics naming it otherwise.
pub fn wait_listening(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "aiosmtpd did not start listening on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The messages delivered into the Maildir at `maildir` (its `new/` folder), as stored.
pub fn maildir_messages(maildir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(maildir.join("new")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect()
}
