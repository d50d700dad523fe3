//! The state file's memory never hides a change, and costs one read per access and one write per
//! change.

use std::io::{Seek, Write};
use std::sync::Arc;

use lockstep_protocol::evidence::{RegistryValue, ServiceRunState};
use lockstep_protocol::{Action, ActionKind, Evidence, ServiceSelector};

use super::*;
use crate::backend::simulated::SimulatedBackend;
use crate::backend::{ActionCtx, Backend};
use crate::config::{AgentConfig, BackendKind};

const KEY: &str = r"HKLM\SOFTWARE\Wow6432Node\Connected\DataCenter";

fn backend(dir: &Path) -> (SimulatedBackend, PathBuf) {
    let path = dir.join("sim.json");
    let seed = SimState::data_center_server("DC1", "8.8.6");
    let host = Arc::new(SimulatedHost::create(&path, &seed).unwrap());
    let cfg = AgentConfig::new("127.0.0.1:0".parse().unwrap(), dir, BackendKind::Simulated);
    (SimulatedBackend::new(host, &cfg), path)
}

fn set(value: &str) -> Action {
    Action::RegistrySet {
        key: KEY.into(),
        name: "Version".into(),
        value: value.into(),
    }
}

async fn version(b: &SimulatedBackend) -> Option<String> {
    let get = Action::RegistryGet {
        key: KEY.into(),
        name: "Version".into(),
    };
    match b.run(&get, &ActionCtx::detached("get")).await.unwrap() {
        Evidence::Registry {
            value: RegistryValue { value, .. },
        } => value,
        other => panic!("not registry evidence: {other:?}"),
    }
}

/// Rewrites the file in place (same inode), the same length, and puts its mtime back: the file's
/// metadata cannot tell this change from no change at all.
fn change_behind_its_back(path: &Path, from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let before = std::fs::metadata(path).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(text.matches(from).count(), 1, "{from} once in the file");
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.rewind().unwrap();
    f.write_all(text.replace(from, to).as_bytes()).unwrap();
    f.set_modified(before.modified().unwrap()).unwrap();
    drop(f);
    let after = std::fs::metadata(path).unwrap();
    assert_eq!(after.len(), before.len());
    assert_eq!(after.modified().unwrap(), before.modified().unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(after.ino(), before.ino(), "the same file, changed in place");
    }
}

#[tokio::test]
async fn an_outside_change_in_the_same_millisecond_as_our_write_is_seen_by_the_next_action() {
    let dir = tempfile::tempdir().unwrap();
    let (b, path) = backend(dir.path());
    b.run(&set("8.8.7"), &ActionCtx::detached("set-1"))
        .await
        .unwrap();
    // Another process (a simulator injecting a fault) changes the file right after our write:
    // same length, same inode, same mtime.
    change_behind_its_back(&path, "\"8.8.7\"", "\"8.8.9\"");
    assert_eq!(version(&b).await.as_deref(), Some("8.8.9"));

    // The same for an update: it starts from the outside change, not from what we remembered.
    change_behind_its_back(&path, "\"8.8.9\"", "\"8.8.1\"");
    let changed = b
        .run(&set("8.8.2"), &ActionCtx::detached("set-2"))
        .await
        .unwrap();
    assert!(
        matches!(&changed, Evidence::RegistryChanged { previous: Some(p), .. } if p == "8.8.1"),
        "{changed:?}"
    );
    assert_eq!(
        read_state(&path)
            .unwrap()
            .registry_value(KEY, "Version")
            .unwrap(),
        "8.8.2"
    );
}

#[tokio::test]
async fn a_fault_injected_through_another_handle_is_seen_by_the_next_action() {
    let dir = tempfile::tempdir().unwrap();
    let (b, path) = backend(dir.path());
    assert_eq!(version(&b).await.as_deref(), Some("8.8.6"));
    // A second handle on the same file (a simulator in this process): it shares the memory.
    SimulatedHost::open(&path)
        .unwrap()
        .update(|s| {
            s.faults
                .fail
                .insert(ActionKind::RegistryGet, "registry unreadable".into())
        })
        .unwrap();
    let get = Action::RegistryGet {
        key: KEY.into(),
        name: "Version".into(),
    };
    let refused = b.run(&get, &ActionCtx::detached("get")).await.unwrap_err();
    assert!(
        format!("{refused:?}").contains("registry unreadable"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_state_read_back_after_an_action_is_what_the_action_did() {
    let dir = tempfile::tempdir().unwrap();
    let (b, path) = backend(dir.path());
    let mut expected = b.host().read().unwrap();
    let stop = Action::ServicesStop {
        services: ServiceSelector::Named {
            names: vec!["W3SVC".into()],
        },
        timeout_secs: 5,
    };
    // Stopping waits the transition time, so its context must be able to pause.
    let (_cancel, rx) = tokio::sync::watch::channel(false);
    let id = lockstep_protocol::ActionId::new("stop-1").unwrap();
    b.run(&stop, &ActionCtx::new(id, None, rx)).await.unwrap();
    b.run(&set("8.8.7"), &ActionCtx::detached("set-1"))
        .await
        .unwrap();

    let Some(w3svc) = expected.services.get_mut("W3SVC") else {
        panic!("seeded with W3SVC")
    };
    w3svc.state = ServiceRunState::Stopped;
    expected.set_registry(KEY, "Version", "8.8.7");
    let history = b.host().read().unwrap().history;
    let ids: Vec<&str> = history.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["stop-1", "set-1"]);
    expected.history = history;

    // What this process remembers, what a fresh parse of the file says and what the actions did
    // are the same state.
    assert_eq!(b.host().read().unwrap(), expected);
    assert_eq!(read_state(&path).unwrap(), expected);
    assert_eq!(
        SimulatedHost::open(&path).unwrap().read().unwrap(),
        expected
    );
}

#[tokio::test]
async fn an_action_costs_one_read_and_a_parse_only_when_the_file_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (b, path) = backend(dir.path());
    let created = b.host().io_counts();
    assert_eq!(
        created,
        IoCounts {
            writes: 1,
            ..IoCounts::default()
        }
    );

    // A query: one read for the faults, one for the answer; nothing parsed, nothing written.
    assert_eq!(version(&b).await.as_deref(), Some("8.8.6"));
    let after_get = b.host().io_counts();
    assert_eq!(after_get.reads - created.reads, 2);
    assert_eq!(after_get.parses, 0);
    assert_eq!(after_get.writes, 1);

    // A change: one more read and one write; still nothing parsed.
    b.run(&set("8.8.7"), &ActionCtx::detached("set-1"))
        .await
        .unwrap();
    let after_set = b.host().io_counts();
    assert_eq!(after_set.reads - after_get.reads, 2);
    assert_eq!(after_set.parses, 0);
    assert_eq!(after_set.writes, 2);

    // A change from outside: parsed once, then remembered again.
    change_behind_its_back(&path, "\"8.8.7\"", "\"8.8.9\"");
    assert_eq!(version(&b).await.as_deref(), Some("8.8.9"));
    assert_eq!(version(&b).await.as_deref(), Some("8.8.9"));
    assert_eq!(b.host().io_counts().parses, 1);
}

#[tokio::test]
async fn a_query_that_changes_nothing_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (b, path) = backend(dir.path());
    let before = std::fs::read(&path).unwrap();
    let writes = b.host().io_counts().writes;
    // Backup sessions are counted through an update (they may drain); with nothing draining the
    // state is as it was, and the file is left alone.
    for n in 0..3 {
        let id = format!("sessions-{n}");
        b.run(&Action::BackupSessions {}, &ActionCtx::detached(&id))
            .await
            .unwrap();
    }
    let counts = b.host().io_counts();
    assert_eq!(counts.writes, writes);
    assert_eq!(counts.unchanged, 3);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_panic_inside_an_update_leaves_the_file_as_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.json");
    let host = SimulatedHost::create(&path, &SimState::data_center_server("DC1", "8.8.6")).unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        host.update(|s| {
            s.product_version = Some("half changed".into());
            panic!("an update that fails half-way");
        })
    }));
    assert!(panicked.is_err());
    // The half-made change was never written, and is not remembered either.
    assert_eq!(
        host.read().unwrap().product_version.as_deref(),
        Some("8.8.6")
    );
    host.update(|s| s.iis_resets += 1).unwrap();
    assert_eq!(
        read_state(&path).unwrap().product_version.as_deref(),
        Some("8.8.6")
    );
}

#[test]
fn a_file_that_is_not_a_state_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.json");
    let host = SimulatedHost::create(&path, &SimState::default()).unwrap();
    std::fs::write(&path, "{ not json").unwrap();
    let e = host.read().unwrap_err().to_string();
    assert!(e.contains("sim.json"), "{e}");
    // The refusal changed nothing: once the file is whole again, it is read as it is.
    std::fs::write(&path, r#"{"hostname": "DC9"}"#).unwrap();
    assert_eq!(host.read().unwrap().hostname, "DC9");
}

#[test]
fn a_reader_in_another_process_never_sees_the_file_missing_or_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.json");
    let host = SimulatedHost::create(&path, &SimState::data_center_server("DC1", "8.8.6")).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        // A reader that remembers nothing, as another process would read: every read must find
        // a whole state, the one before or the one after a change.
        let reader = scope.spawn(|| {
            let mut reads = 0u32;
            while !done.load(Ordering::Relaxed) || reads == 0 {
                let s = read_state(&path).unwrap();
                assert!(s.iis_resets <= 300);
                reads += 1;
            }
            reads
        });
        for _ in 0..300 {
            host.update(|s| {
                s.iis_resets += 1;
                s.events.clear();
            })
            .unwrap();
        }
        done.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
    assert_eq!(read_state(&path).unwrap().iis_resets, 300);
    // No file is left per write: the folder holds the state, the previous version the next write
    // reuses, and the lock file.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["sim.json", "sim.json.lock", "sim.json.next"]);
}

#[test]
fn a_writer_killed_while_writing_leaves_the_state_whole_and_the_next_write_whole_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.json");
    let host = SimulatedHost::create(&path, &SimState::data_center_server("DC1", "8.8.6")).unwrap();
    host.update(|s| s.iis_resets = 1).unwrap();
    // What a writer killed half-way through leaves: a longer, broken next version.
    let next = dir.path().join("sim.json.next");
    std::fs::write(&next, vec![b'{'; 200_000]).unwrap();
    assert_eq!(read_state(&path).unwrap().iis_resets, 1);
    assert_eq!(host.read().unwrap().iis_resets, 1);
    // The next change is written whole over it, cut to its own length.
    host.update(|s| s.iis_resets = 2).unwrap();
    assert_eq!(read_state(&path).unwrap().iis_resets, 2);
    let fresh = SimulatedHost::open(&path).unwrap();
    assert_eq!(fresh.read().unwrap().iis_resets, 2);
}

#[test]
fn readers_wait_for_a_writer_that_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.json");
    let host = SimulatedHost::create(&path, &SimState::data_center_server("DC1", "8.8.6")).unwrap();
    // A writer in another process, half-way through the file a reader may have open (the
    // previous version, which the next write reuses).
    let writer = super::super::lock::ProcessLock::exclusive(&path).unwrap();
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
    let (fresh, remembered) = std::thread::scope(|scope| {
        let fresh = scope.spawn(|| read_state(&path));
        let remembered = scope.spawn(|| host.read());
        // Time for a reader that ignored the lock to read half a file; a reader that waits
        // passes however long this takes.
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::fs::write(&path, &whole).unwrap();
        drop(writer);
        (fresh.join().unwrap(), remembered.join().unwrap())
    });
    assert_eq!(fresh.unwrap().hostname, "DC1");
    assert_eq!(remembered.unwrap().hostname, "DC1");
}
