//! The journal under bad luck, with real `lockstep-agent` processes over real mutual TLS:
//! - its disk (a small tmpfs made by the test; we run as root, as CI does — the server's
//!   `tests/reliability_disk_full.rs` does the same) runs full while actions are running and new
//!   ones keep coming: every running action's result is still written, new ones are refused with
//!   503 and run nothing, and after a restart every id reads what it was — no action ever ran
//!   twice, counted in the simulated host's history;
//! - one byte of the journal is damaged (here: made a byte that is not UTF-8): the agent refuses
//!   to start with a message naming the journal, `lockstep-agent journal` says where, and once
//!   the journal is restored a re-send replays instead of running again.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use lockstep_agent::backend::simulated::SimState;
use lockstep_agent::client::{ClientError, Driven};
use lockstep_agent::tls::Identity;
use lockstep_protocol::{Action, ActionId, ActionKind, ActionState, ErrorCode};

/// A tmpfs of `size` mounted on `dir`; unmounted when dropped.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("the disk-full test needs the `mount` command");
        assert!(
            out.status.success(),
            "the disk-full test mounts a small tmpfs and must run as root (as CI does): mount said {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        SmallDisk {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
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

const KEY: &str = r"HKLM\SOFTWARE\Wow6432Node\SupportCenter";

fn set_action(i: usize) -> Action {
    Action::RegistrySet {
        key: KEY.into(),
        name: "RegistryConnect".into(),
        value: format!("SERVER=SERVER{i}"),
    }
}

fn slow_seed() -> SimState {
    let mut s = SimState::data_center_server("dc1", "8.8.6");
    s.set_registry(KEY, "RegistryConnect", "SERVER=SERVER1");
    s.faults.delay_ms.insert(ActionKind::IisReset, 1500);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_journal_disk_never_runs_an_action_twice_and_refuses_new_ones_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let _disk = SmallDisk::mount(&dir.path().join("state"), "3m");
    let me = Identity::generate("orchestrator").unwrap();
    let agent = AgentProcess::start(dir.path(), Some(&slow_seed()), &me);
    let client = agent.client(&me);

    // Five changes accepted and running when the disk runs full under them.
    let running: Vec<String> = (0..5).map(|i| format!("disk/running/{i}")).collect();
    for id in &running {
        let r = client
            .start(&request(id, Action::IisReset {}))
            .await
            .unwrap();
        assert_eq!(r.state, ActionState::Running, "{id}");
    }
    let ballast = fill(&dir.path().join("state"));

    // Their results are still written (from the reserve), and reported.
    for id in &running {
        let r = client
            .status(&ActionId::new(id).unwrap(), Duration::from_secs(10), 0)
            .await
            .unwrap();
        assert!(
            matches!(r.state, ActionState::Succeeded { .. }),
            "{id}: {:?}",
            r.state
        );
    }
    // New actions keep coming. The journal's last page may still hold a few records; once it
    // cannot take both records of one more action, each is refused with 503: nothing journaled,
    // nothing run. Every action accepted on the way succeeds (its result always has room).
    let mut accepted_on_full = Vec::new();
    let mut refused = Vec::new();
    for i in 0..200 {
        let id = format!("disk/full/{i}");
        match client.start(&request(&id, set_action(i))).await {
            Ok(r) => {
                assert!(refused.is_empty(), "{id} accepted after a refusal");
                let r = if r.state == ActionState::Running {
                    let id = ActionId::new(id.clone()).unwrap();
                    client
                        .status(&id, Duration::from_secs(10), 0)
                        .await
                        .unwrap()
                } else {
                    r
                };
                assert!(
                    matches!(r.state, ActionState::Succeeded { .. }),
                    "{id}: {:?}",
                    r.state
                );
                accepted_on_full.push(id);
            }
            Err(ClientError::Refused(e)) => {
                assert_eq!(e.code, ErrorCode::Unavailable, "{id}: {}", e.message);
                assert!(e.message.contains("nothing was run"), "{}", e.message);
                refused.push(id);
                if refused.len() == 5 {
                    break;
                }
            }
            Err(e) => panic!("{id} on a full disk: {e}"),
        }
    }
    assert_eq!(refused.len(), 5, "a full disk never refused an action");

    // Space comes back: actions are accepted again.
    std::fs::remove_file(&ballast).unwrap();
    let after = "disk/after/1";
    let r = client
        .drive(
            &request(after, Action::IisReset {}),
            Duration::from_secs(15),
        )
        .await;
    assert!(
        matches!(&r, Driven::Finished(s) if matches!(s.state, ActionState::Succeeded { .. })),
        "{r:?}"
    );

    // A restart verifies the journal; every id reads what it was and a re-send replays.
    let config = agent.config_path.clone();
    drop(agent);
    let agent = AgentProcess::run(dir.path(), &config);
    let client = agent.client(&me);
    for id in running.iter().map(String::as_str).chain([after]) {
        let r = client
            .start(&request(id, Action::IisReset {}))
            .await
            .unwrap();
        assert!(r.replayed, "{id} was not replayed");
        assert!(
            matches!(r.state, ActionState::Succeeded { .. }),
            "{id}: {:?}",
            r.state
        );
    }
    let host = agent.sim();
    for (i, id) in accepted_on_full.iter().enumerate() {
        let r = client.start(&request(id, set_action(i))).await.unwrap();
        assert!(
            r.replayed && matches!(r.state, ActionState::Succeeded { .. }),
            "{id}: {r:?}"
        );
    }
    for id in running
        .iter()
        .chain(&accepted_on_full)
        .map(String::as_str)
        .chain([after])
    {
        assert_eq!(
            host.executions_of(id),
            1,
            "{id} ran {} times",
            host.executions_of(id)
        );
    }
    for id in &refused {
        assert_eq!(host.executions_of(id), 0, "{id} was refused but ran");
    }
}

/// Runs `lockstep-agent run` expecting it to refuse to start; returns its stderr.
fn refused_start(config: &Path) -> String {
    let mut child = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..400 {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success());
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return err;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    panic!("the agent started on a damaged journal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_journal_stops_the_agent_says_where_and_never_runs_an_action_twice() {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate("orchestrator").unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        Some(&SimState::data_center_server("dc1", "8.8.6")),
        &me,
    );
    let client = agent.client(&me);
    for id in ["dmg/first/1", "dmg/second/1"] {
        let r = client
            .drive(&request(id, Action::IisReset {}), Duration::from_secs(10))
            .await;
        assert!(matches!(r, Driven::Finished(_)), "{r:?}");
    }
    let config = agent.config_path.clone();
    let journal = agent.journal_path();
    drop(agent);

    // One byte of the first action's id, in its `accepted` record, becomes a byte that is not
    // UTF-8 (the old agent skipped such a line and read the id as never seen).
    let good = std::fs::read(&journal).unwrap();
    let at = good
        .windows(b"dmg/first/1".len())
        .position(|w| w == b"dmg/first/1")
        .unwrap()
        + 4;
    let mut bad = good.clone();
    bad[at] = 0xff;
    std::fs::write(&journal, &bad).unwrap();

    let err = refused_start(&config);
    assert!(
        err.contains(&journal.display().to_string()) && err.contains("damaged"),
        "{err}"
    );
    assert!(err.contains("line 1"), "{err}");

    let out = Command::new(BIN)
        .args(["journal", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("dmg/second/1\tsucceeded"), "{stdout}");
    assert!(stdout.contains("# damaged: line 1 (byte 0)"), "{stdout}");

    // Restored (from a backup): the agent starts and a re-send replays the first result.
    std::fs::write(&journal, &good).unwrap();
    let agent = AgentProcess::run(dir.path(), &config);
    let r = agent
        .client(&me)
        .start(&request("dmg/first/1", Action::IisReset {}))
        .await
        .unwrap();
    assert!(r.replayed);
    let host = agent.sim();
    assert_eq!(host.executions_of("dmg/first/1"), 1);
    assert_eq!(host.executions_of("dmg/second/1"), 1);
}
