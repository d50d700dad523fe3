//! The Windows backend's service actions over the Connected group, against a stand-in `sc.exe`
//! (a shell script on PATH that keeps each service's state and startup type in a file and logs
//! every call): only installed services are acted on, in the configured order, missing ones are
//! listed as absent, a disabled DCAlerter is left alone with a note, and a start the service
//! refuses fails at once instead of at the timeout.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lockstep_agent::backend::windows::WindowsBackend;
use lockstep_agent::backend::{ActionCtx, Backend, Failure};
use lockstep_agent::config::{AgentConfig, BackendKind};
use lockstep_protocol::evidence::ServiceRunState;
use lockstep_protocol::{Action, Evidence, ServiceSelector};

/// `svc/NAME` holds "STATE START_TYPE [refuse]" in sc's numbers; no file: not installed.
const FAKE_SC: &str = r#"#!/bin/sh
d="__DIR__"
echo "$1 $2" >> "$d/calls.log"
f="$d/svc/$2"
if [ ! -f "$f" ]; then
  echo "[SC] OpenService FAILED 1060:"
  echo "The specified service does not exist as an installed service."
  exit 36
fi
read state start refuse < "$f"
case "$1" in
  query) echo "        STATE              : $state  X" ;;
  qc) echo "        START_TYPE         : $start   X" ;;
  start)
    if [ "$refuse" = "refuse" ]; then echo "[SC] StartService FAILED 1053:"; exit 29; fi
    echo "4 $start" > "$f" ;;
  stop) echo "1 $start" > "$f" ;;
esac
exit 0
"#;

fn fake_site(services: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("svc")).unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    for (name, line) in services {
        std::fs::write(root.join("svc").join(name), format!("{line}\n")).unwrap();
    }
    let sc = root.join("bin").join("sc.exe");
    std::fs::write(&sc, FAKE_SC.replace("__DIR__", &root.display().to_string())).unwrap();
    std::fs::set_permissions(&sc, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, root)
}

fn backend(root: &Path) -> WindowsBackend {
    // The stand-in is found first on PATH (this test binary runs only the tests in this file,
    // which all put the same kind of stand-in first).
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::set_var("PATH", format!("{}:{path}", root.join("bin").display()));
    WindowsBackend::new(&AgentConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        root.join("state"),
        BackendKind::Windows,
    ))
}

fn calls(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

// One test, so PATH is set once and never raced.
#[tokio::test]
async fn the_connected_group_is_what_is_installed_and_a_refused_start_fails_at_once() {
    // BackupServer and IndexServer installed and stopped, DCAlerter disabled; the rest missing.
    let (_dir, root) = fake_site(&[
        ("BackupServer", "1 2"),
        ("IndexServer", "1 3"),
        ("DCAlerter", "1 4"),
    ]);
    let b = backend(&root);
    let start = Action::ServicesStart {
        services: ServiceSelector::Connected,
        timeout_secs: 30,
    };
    let ev = b.run(&start, &ActionCtx::detached("t1")).await.unwrap();
    let Evidence::Services {
        services,
        before,
        absent,
        notes,
    } = ev
    else {
        panic!("not service evidence: {ev:?}");
    };
    let acted: Vec<(&str, ServiceRunState)> = services
        .iter()
        .map(|s| (s.name.as_str(), s.state))
        .collect();
    assert_eq!(
        acted,
        [
            ("BackupServer", ServiceRunState::Running),
            ("IndexServer", ServiceRunState::Running)
        ]
    );
    assert_eq!(
        absent,
        ["PoolServer", "ReplicationServer", "Compactor", "dctomcat"]
    );
    // Read before write: the evidence says how they were before the start.
    assert!(
        before.len() == 2 && before.iter().all(|s| s.state == ServiceRunState::Stopped),
        "{before:?}"
    );
    assert!(
        notes.len() == 1 && notes[0].contains("DCAlerter is disabled"),
        "{notes:?}"
    );
    let started: Vec<String> = calls(&root)
        .into_iter()
        .filter(|c| c.starts_with("start "))
        .collect();
    assert_eq!(started, ["start BackupServer", "start IndexServer"]);

    // A service that refuses to start: the step fails now, not after 60 s.
    let (_dir2, root2) = fake_site(&[("BackupServer", "1 2 refuse"), ("IndexServer", "1 2")]);
    let b = backend(&root2);
    let start = Action::ServicesStart {
        services: ServiceSelector::Connected,
        timeout_secs: 60,
    };
    let began = Instant::now();
    let err = b.run(&start, &ActionCtx::detached("t2")).await.unwrap_err();
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "{:?}",
        began.elapsed()
    );
    let Failure::Failed { message, evidence } = err else {
        panic!("not a failure: {err:?}");
    };
    assert!(
        message.contains("did not start and stays stopped: BackupServer"),
        "{message}"
    );
    assert!(matches!(evidence, Some(Evidence::Services { .. })));
}
