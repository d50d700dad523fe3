//! A real `lockstep serve` process for tests: started on a free loopback port with a clean
//! environment, its address read from the line it announces, its standard error kept readable
//! (and drained, so it never blocks on a full pipe), killed when dropped.

#![allow(dead_code)] // each test binary uses the part it needs

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Serve {
    child: Child,
    /// `http://127.0.0.1:PORT` or `https://…`, without a trailing slash.
    pub base: String,
    /// Lines on standard error after the address was announced.
    pub lines: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// The process id (to read its memory from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// `lockstep serve --listen 127.0.0.1:0` with its data in `dir`, and none of the test's own
/// `LOCKSTEP_*` or `RUST_LOG` variables.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockstep"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LOCKSTEP_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("LOCKSTEP_DATA_DIR", dir);
    cmd
}

/// Starts `cmd` (from [`command`]) and waits up to 30 s for it to announce its address; `dir`
/// lives as long as the process.
pub fn start(mut cmd: Command, dir: tempfile::TempDir) -> Serve {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lockstep serve starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let base = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "serve announces its address within 30 s; it printed:\n{}",
                seen.join("\n")
            )
        });
        if let Some(rest) = line.split("Lockstep dashboard on ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_string();
        }
        seen.push(line);
    };
    Serve {
        child,
        base,
        lines,
        _dir: dir,
    }
}
