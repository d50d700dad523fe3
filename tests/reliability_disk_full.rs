//! Disk full under the orchestrator database: the store lives on a small tmpfs made by the test
//! (the test runs as root, as CI does; without `mount` it fails and says so). The disk is filled
//! with a ballast file while people keep writing. Properties:
//! - a write that cannot be stored returns an error (no panic, no hang);
//! - every call that returned `Ok` left its event in the log, every call that returned `Err` left
//!   nothing (no half-written transition, nothing acknowledged then lost);
//! - a state change refused for lack of space leaves the run exactly as it was;
//! - when space returns, writes succeed again, `PRAGMA integrity_check` is ok and the audit chain
//!   verifies, also after reopening the file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use lockstep::engine::machine::{RunEvent, RunStatus};
use lockstep::engine::store::NewRun;
use lockstep::engine::testkit::{approver, noop_plan, operator};
use lockstep::engine::Store;

/// A tmpfs of `size` mounted on a fresh directory; unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("the disk-full test needs the `mount` command");
        assert!(
            out.status.success(),
            "the disk-full test mounts a small tmpfs and must run as root (as CI does): mount said {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: the pools close their connections on their own threads a moment later.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes a ballast file until the file system says it is full; returns its path.
fn fill(disk: &Path) -> PathBuf {
    let ballast = disk.join("ballast");
    let mut f = std::fs::File::create(&ballast).expect("create ballast");
    let chunk = vec![0x5au8; 4096];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => continue,
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the disk failed with something else than ENOSPC: {e}"),
        }
    }
    let _ = f.sync_all();
    ballast
}

async fn running_run(store: &Store) -> String {
    let new = NewRun {
        change_ticket: "CHG-DISK".into(),
        window_start: None,
        window_end: None,
        plan: noop_plan(20, true, &["h1", "h2"]),
    };
    let run = store.create_run(new, &operator("olga"), 1).await.unwrap();
    let submit = RunEvent::Submit {
        actor: operator("olga"),
    };
    store.apply_run_event(&run.id, &submit, 2).await.unwrap();
    let start = RunEvent::ApproveStart {
        actor: approver("carl"),
        comment: "go".into(),
    };
    store.apply_run_event(&run.id, &start, 3).await.unwrap();
    run.id
}

async fn comment_texts(store: &Store, run_id: &str) -> Vec<String> {
    store
        .run_events(run_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "comment")
        .map(|e| e.payload["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_errors_loses_no_acknowledged_write_and_recovers_when_space_returns() {
    let disk = SmallDisk::mount("3m");
    let db = disk.path().join("lockstep.db");
    let store = Store::open(&db).await.expect("open on the small disk");
    let run_id = running_run(&store).await;

    let ballast = fill(disk.path());
    // Give back 64 KiB so a few writes fit and the disk runs full in the middle of them.
    let len = std::fs::metadata(&ballast).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&ballast)
        .unwrap()
        .set_len(len.saturating_sub(64 * 1024))
        .unwrap();

    // Keep writing comments (4 KiB each) until the store refuses a few in a row.
    let body = "x".repeat(4000);
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    let mut failures_in_a_row = 0;
    for i in 0..2_000 {
        let text = format!("note {i} {body}");
        match store
            .comment(&run_id, None, &operator("olga"), &text, 100 + i)
            .await
        {
            Ok(_) => {
                acknowledged.push(text);
                failures_in_a_row = 0;
            }
            Err(e) => {
                refused.push((text, e.to_string()));
                failures_in_a_row += 1;
                if failures_in_a_row == 5 {
                    break;
                }
            }
        }
    }
    assert!(
        failures_in_a_row == 5,
        "2,000 comments of 4 KiB fitted on a full 3 MiB disk: the test did not fill it"
    );
    println!(
        "disk full after {} acknowledged comments; first error: {}",
        acknowledged.len(),
        refused[0].1
    );

    // A state change on the full disk: refused, and the run is exactly as it was.
    let pause = RunEvent::Pause {
        actor: operator("olga"),
        reason: "disk check".into(),
    };
    let before = store.run(&run_id).await.unwrap();
    let events_before = store.run_events(&run_id).await.unwrap().len();
    let paused = store.apply_run_event(&run_id, &pause, 9_000).await;
    let after = store.run(&run_id).await.unwrap();
    match &paused {
        Ok(_) => assert_eq!(after.status, RunStatus::Paused),
        Err(e) => {
            println!("pause on a full disk: {e}");
            assert_eq!(
                after.status, before.status,
                "a refused pause changed the run"
            );
            assert_eq!(
                after.version, before.version,
                "a refused pause bumped the version"
            );
            assert_eq!(
                store.run_events(&run_id).await.unwrap().len(),
                events_before,
                "a refused pause left an event"
            );
        }
    }

    // Ok means stored, Err means not stored: nothing in between.
    let stored = comment_texts(&store, &run_id).await;
    let stored_short: Vec<&str> = stored.iter().map(|t| &t[..t.len().min(12)]).collect();
    let acked_short: Vec<&str> = acknowledged.iter().map(|t| &t[..t.len().min(12)]).collect();
    assert_eq!(
        stored_short, acked_short,
        "the log holds exactly the acknowledged comments, in order"
    );

    // Space returns: writes succeed again and everything checks out.
    std::fs::remove_file(&ballast).unwrap();
    store
        .comment(&run_id, None, &operator("olga"), "space is back", 10_000)
        .await
        .expect("a write after space returned");
    if paused.is_err() {
        store
            .apply_run_event(&run_id, &pause, 10_001)
            .await
            .expect("the pause refused for lack of space succeeds now");
    }
    assert_eq!(store.run(&run_id).await.unwrap().status, RunStatus::Paused);
    store.integrity_check().await.expect("integrity_check");
    let report = store.verify_audit().await.unwrap();
    assert_eq!(report.problem, None, "audit chain after the disk was full");
    drop(store);

    let reopened = Store::open(&db)
        .await
        .expect("reopen after the disk was full");
    let report = reopened.verify_audit().await.unwrap();
    assert_eq!(report.problem, None, "audit chain after reopening");
    let stored = comment_texts(&reopened, &run_id).await;
    assert_eq!(stored.len(), acknowledged.len() + 1);
}
