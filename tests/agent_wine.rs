//! The Windows backend against a real `reg.exe`: the `lockstep-agent` binary runs with
//! `backend = "windows"` and, first on its PATH, a `reg.exe` that runs Wine's (Debian `wine64`;
//! same output layout as Windows, UTF-16 exports, CRLF line ends). Values with spaces, quotes,
//! `%`, non-ASCII characters, empty and 2 KB long round-trip through set, get and delete; a
//! missing value reads `null` and a missing key `key_exists: false` (never a failure, whatever
//! language reg.exe answers in); and the orchestrator's redirect over the three spellings of the
//! Support Center key changes the one that exists, and its undo puts the value back.
//!
//! Wine's `sc.exe` and `schtasks.exe` implement no queries, so the service and task actions are
//! proven against golden outputs only (see the README). Without wine this test fails, naming
//! the package: it never skips.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lockstep::engine::executor::{Dispatch, Executor, IdempotencyKey, Outcome};
use lockstep::executors::agent::{AgentEndpoint, AgentExecutor};
use lockstep::knowledge::operation::{Operation, RedirectValue};
use lockstep_agent::client::{AgentClient, Driven};
use lockstep_agent::config::{AgentConfig, BackendKind};
use lockstep_protocol::evidence::RegistryValue;
use lockstep_protocol::tls::{Identity, Thumbprint};
use lockstep_protocol::{Action, ActionId, ActionRequest, ActionState, Evidence};

const BIN: &str = env!("CARGO_BIN_EXE_lockstep");
const SUPPORT_CENTER: [&str; 3] = [
    r"HKLM\SOFTWARE\Wow6432Node\SupportCenter",
    r"HKLM\SOFTWARE\Connected\WoW6432Node\SupportCenter",
    r"HKLM\SOFTWARE\Wow6432Node\Connected\SupportCenter",
];
const CONNECT: &str =
    "DRIVER={SQL Server Native Client 11.0};SERVER=DC1;DATABASE=Registry;Trusted_Connection=Yes";

/// `lockstep-agent` belongs to another workspace member, which `cargo test --test …` does not
/// build: build it into the same target folder when it is missing or older than the agent's
/// sources (this test is about the backend's code, so a stale binary would prove nothing).
fn agent_binary() -> PathBuf {
    let dir = Path::new(BIN).parent().unwrap().to_path_buf();
    let path = dir.join("lockstep-agent");
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = newest(&root.join("agent/src")).max(newest(&root.join("protocol/src")));
    if built.is_none_or(|b| sources.is_some_and(|s| s > b)) {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "lockstep-agent", "--bin", "lockstep-agent"])
            .env("CARGO_TARGET_DIR", dir.parent().unwrap())
            .current_dir(root)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of lockstep-agent failed");
    }
    path
}

/// The newest modification time of the files under `dir`.
fn newest(dir: &Path) -> Option<std::time::SystemTime> {
    let mut out = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        let t = if p.is_dir() {
            newest(&p)
        } else {
            e.metadata().and_then(|m| m.modified()).ok()
        };
        out = out.max(t);
    }
    out
}

/// A Wine prefix of its own, and a `reg.exe` on a PATH folder that runs Wine's in it.
struct Wine {
    prefix: PathBuf,
    bin: PathBuf,
}

impl Wine {
    fn new(dir: &Path) -> Wine {
        let found = Command::new("sh")
            .args(["-c", "command -v wine"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            found,
            "wine is not installed: this test needs Debian's `wine64` package \
             (apt-get install wine64; scripts/test and scripts/test-wine install it)"
        );
        let prefix = dir.join("wineprefix");
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        // UTF-8 locale: Wine turns the Unix arguments into Windows (UTF-16) ones with it.
        let script = format!(
            "#!/bin/sh\nWINEPREFIX='{}' WINEDEBUG=-all LC_ALL=C.UTF-8 exec wine reg.exe \"$@\"\n",
            prefix.display()
        );
        let reg = bin.join("reg.exe");
        std::fs::write(&reg, script).unwrap();
        std::fs::set_permissions(&reg, std::fs::Permissions::from_mode(0o755)).unwrap();
        let wine = Wine { prefix, bin };
        // The first start builds the prefix (a minute or more on a busy machine): done here,
        // with a generous timeout, so the agent's own 30 s per command is about reg.exe only.
        let out = Command::new("timeout")
            .arg("600")
            .arg(&reg)
            .args(["query", r"HKLM\SOFTWARE"])
            .output()
            .expect("run reg.exe under wine");
        assert!(
            out.status.success(),
            "wine reg.exe query HKLM\\SOFTWARE failed while making the prefix: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wine
    }

    /// Runs reg.exe directly (seeding and checking behind the agent's back).
    fn reg(&self, args: &[&str]) -> std::process::Output {
        Command::new(self.bin.join("reg.exe"))
            .args(args)
            .output()
            .expect("run reg.exe")
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        let _ = Command::new("wineserver")
            .arg("-k")
            .env("WINEPREFIX", &self.prefix)
            .status();
    }
}

/// `lockstep-agent run` with the windows backend, killed on drop.
struct Agent {
    child: Child,
    url: String,
    thumbprint: Thumbprint,
    log: PathBuf,
}

impl Agent {
    fn start(dir: &Path, wine: &Wine, orchestrator: &Identity) -> Agent {
        let bin = agent_binary();
        let state = dir.join("state");
        let run = |args: &[&str]| {
            let out = Command::new(&bin).args(args).output().unwrap();
            assert!(out.status.success(), "{args:?}: {out:?}");
        };
        let d = state.to_str().unwrap();
        run(&["init", "--state-dir", d, "--name", "web1"]);
        run(&[
            "trust",
            &orchestrator.thumbprint().to_string(),
            "--state-dir",
            d,
        ]);
        let cfg = AgentConfig::new("127.0.0.1:0".parse().unwrap(), &state, BackendKind::Windows);
        let config = dir.join("agent.toml");
        std::fs::write(&config, toml::to_string(&cfg).unwrap()).unwrap();
        let log = dir.join("agent.log");
        let path = format!(
            "{}:{}",
            wine.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut child = Command::new(&bin)
            .args(["run", "--config", config.to_str().unwrap()])
            .env("PATH", path)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn lockstep-agent run");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let parts: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(parts.first(), Some(&"listening"), "agent said {line:?}");
        Agent {
            child,
            url: format!("https://{}", parts[1]),
            thumbprint: Thumbprint::parse(parts[2]).unwrap(),
            log,
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one action and returns its evidence; any other end fails the test with the agent's log.
struct Driver<'a> {
    client: AgentClient,
    agent: &'a Agent,
    n: std::cell::Cell<u32>,
}

impl Driver<'_> {
    async fn run(&self, action: Action) -> Evidence {
        let n = self.n.get() + 1;
        self.n.set(n);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let req = ActionRequest::new(
            ActionId::new(format!("wine-{n}")).unwrap(),
            action.clone(),
            now,
            600,
        );
        match self.client.drive(&req, Duration::from_secs(300)).await {
            Driven::Finished(r) => match r.state {
                ActionState::Succeeded { evidence } => evidence,
                other => panic!(
                    "{action:?} ended {other:?}\nagent log:\n{}",
                    std::fs::read_to_string(&self.agent.log).unwrap_or_default()
                ),
            },
            other => panic!("{action:?}: {other:?}"),
        }
    }

    async fn get(&self, key: &str, name: &str) -> RegistryValue {
        match self
            .run(Action::RegistryGet {
                key: key.into(),
                name: name.into(),
            })
            .await
        {
            Evidence::Registry { value } => value,
            other => panic!("registry_get gave {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_actions_round_trip_through_wines_reg_exe() {
    let dir = tempfile::tempdir().unwrap();
    let wine = Wine::new(dir.path());
    let orchestrator = Identity::generate("lockstep-orchestrator").unwrap();
    let agent = Agent::start(dir.path(), &wine, &orchestrator);
    let d = Driver {
        client: AgentClient::new(
            &agent.url,
            &orchestrator,
            agent.thumbprint,
            Duration::from_secs(120),
        )
        .unwrap(),
        agent: &agent,
        n: std::cell::Cell::new(0),
    };

    let key = r"HKLM\SOFTWARE\Wow6432Node\Connected\SSWS";
    let long: String = (0..2048)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let awkward = [
        ("With Spaces", "a value  with spaces "),
        ("Quotes", r#"say "hi", it's C:\Program Files\Connected"#),
        ("Percent", "100% of %PATH% and %%"),
        ("NonAscii", "Größe – Straße – été – 日本"),
        ("Empty", ""),
        ("Long", long.as_str()),
    ];
    for (name, value) in awkward {
        let set = d
            .run(Action::RegistrySet {
                key: key.into(),
                name: name.into(),
                value: value.into(),
            })
            .await;
        assert_eq!(
            set,
            Evidence::RegistryChanged {
                key: key.into(),
                name: name.into(),
                previous: None,
                now: value.into(),
            }
        );
        let got = d.get(key, name).await;
        assert!(got.key_exists);
        assert_eq!(got.value.as_deref(), Some(value), "{name}");
    }
    // Overwriting reports what was there.
    let again = d
        .run(Action::RegistrySet {
            key: key.into(),
            name: "Percent".into(),
            value: "50%".into(),
        })
        .await;
    let Evidence::RegistryChanged { previous, .. } = again else {
        panic!("{again:?}")
    };
    assert_eq!(previous.as_deref(), Some("100% of %PATH% and %%"));

    // Delete one value: it existed, its data is kept; then it reads null, never a failure.
    let deleted = d
        .run(Action::RegistryDelete {
            key: key.into(),
            name: Some("NonAscii".into()),
        })
        .await;
    assert_eq!(
        deleted,
        Evidence::RegistryDeleted {
            key: key.into(),
            name: Some("NonAscii".into()),
            previous: vec![("NonAscii".into(), "Größe – Straße – été – 日本".into())],
            existed: true,
        }
    );
    let gone = d.get(key, "NonAscii").await;
    assert!(gone.key_exists);
    assert_eq!(gone.value, None);
    let missing_value = d.get(key, "NeverWritten").await;
    assert_eq!(
        (missing_value.key_exists, missing_value.value),
        (true, None)
    );

    // Delete the whole key: every value is kept in the evidence; then the key is missing.
    let whole = d
        .run(Action::RegistryDelete {
            key: key.into(),
            name: None,
        })
        .await;
    let Evidence::RegistryDeleted {
        previous, existed, ..
    } = whole
    else {
        panic!("{whole:?}")
    };
    assert!(existed);
    assert_eq!(previous.len(), 5, "{previous:?}");
    assert!(previous.contains(&("Long".to_string(), long.clone())));
    let missing_key = d.get(key, "Long").await;
    assert_eq!((missing_key.key_exists, missing_key.value), (false, None));
    // A key whose parent is missing too (SOFTWARE\Connected does not exist here).
    let deeper = d.get(SUPPORT_CENTER[1], "RegistryConnect").await;
    assert_eq!((deeper.key_exists, deeper.value), (false, None));
    let nothing = d
        .run(Action::RegistryDelete {
            key: key.into(),
            name: Some("Long".into()),
        })
        .await;
    assert!(matches!(
        nothing,
        Evidence::RegistryDeleted { existed: false, .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redirect_changes_the_one_support_center_key_that_exists_and_its_undo_restores_it() {
    let dir = tempfile::tempdir().unwrap();
    let wine = Wine::new(dir.path());
    // Only the third spelling exists on this server.
    let seeded = wine.reg(&[
        "add",
        SUPPORT_CENTER[2],
        "/v",
        "RegistryConnect",
        "/t",
        "REG_SZ",
        "/d",
        CONNECT,
        "/f",
    ]);
    assert!(seeded.status.success(), "{seeded:?}");
    let orchestrator = Identity::generate("lockstep-orchestrator").unwrap();
    let agent = Agent::start(dir.path(), &wine, &orchestrator);
    let executor = AgentExecutor::new(orchestrator).with_request_timeout(Duration::from_secs(120));
    executor
        .add(
            "WEB1",
            AgentEndpoint {
                url: agent.url.clone(),
                thumbprint: agent.thumbprint,
            },
        )
        .unwrap();
    let redirect = |step: &str, to: &str| Dispatch {
        key: IdempotencyKey {
            run_id: "run1".into(),
            step_id: format!("{step}@WEB1"),
            attempt: 1,
        },
        host: Some("WEB1".into()),
        operation: Operation::Redirect {
            value: RedirectValue::RegistryConnect,
            to_server: to.into(),
        },
        timeout_secs: 600,
    };

    let evidence = match executor.execute(&redirect("redirect", "DC2")).await {
        Outcome::Succeeded { evidence } => evidence,
        other => panic!(
            "redirect: {other:?}\nagent log:\n{}",
            std::fs::read_to_string(&agent.log).unwrap_or_default()
        ),
    };
    assert_eq!(evidence["key"], SUPPORT_CENTER[2]);
    assert_eq!(evidence["previous"], CONNECT);
    assert_eq!(evidence["changed"], true);
    let probed = evidence["probed"].as_array().unwrap();
    let exists: Vec<bool> = probed
        .iter()
        .map(|p| p["key_exists"].as_bool().unwrap())
        .collect();
    assert_eq!(exists, [false, false, true], "{probed:?}");
    assert_eq!(
        query(&wine, SUPPORT_CENTER[2]),
        CONNECT.replace("SERVER=DC1", "SERVER=DC2")
    );

    // The undo (the runbook's: redirect back to the primary) restores the value exactly.
    match executor.execute(&redirect("redirect-undo", "DC1")).await {
        Outcome::Succeeded { evidence } => assert_eq!(evidence["key"], SUPPORT_CENTER[2]),
        other => panic!("undo: {other:?}"),
    }
    assert_eq!(query(&wine, SUPPORT_CENTER[2]), CONNECT);
    // The spellings that did not exist were only read, never created.
    for k in &SUPPORT_CENTER[..2] {
        assert!(!wine.reg(&["query", k]).status.success(), "{k} was created");
    }
}

/// RegistryConnect as reg.exe itself prints it (ASCII data: the console code page is no issue).
fn query(wine: &Wine, key: &str) -> String {
    let out = wine.reg(&["query", key, "/v", "RegistryConnect"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.split_once("REG_SZ").map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no RegistryConnect in {text:?}"))
}
