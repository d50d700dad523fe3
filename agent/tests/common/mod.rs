//! Test helpers: a real `lockstep-agent` process with the simulated backend, and an orchestrator
//! identity to talk to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lockstep_agent::backend::simulated::{SimState, SimulatedHost};
use lockstep_agent::client::AgentClient;
use lockstep_agent::config::{AgentConfig, BackendKind};
use lockstep_agent::tls::{Identity, Thumbprint};
use lockstep_protocol::{Action, ActionId, ActionRequest};

pub const BIN: &str = env!("CARGO_BIN_EXE_lockstep-agent");

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn request(id: &str, action: Action) -> ActionRequest {
    ActionRequest::new(ActionId::new(id).unwrap(), action, now(), 300)
}

/// A `lockstep-agent run` child process, killed on drop.
pub struct AgentProcess {
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub addr: SocketAddr,
    pub thumbprint: Thumbprint,
    child: Child,
}

fn run_ok(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run lockstep-agent");
    assert!(
        out.status.success(),
        "lockstep-agent {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl AgentProcess {
    /// `init`, `trust` the orchestrator, write a simulated-backend config and `run` it.
    pub fn start(dir: &Path, seed: Option<&SimState>, orchestrator: &Identity) -> AgentProcess {
        let state = dir.join("state");
        let d = state.to_str().unwrap();
        let printed = run_ok(&["init", "--state-dir", d, "--name", "dc1"]);
        Thumbprint::parse(printed.trim()).expect("init prints a thumbprint");
        run_ok(&[
            "trust",
            &orchestrator.thumbprint().to_string(),
            "--state-dir",
            d,
        ]);
        let mut cfg = AgentConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            &state,
            BackendKind::Simulated,
        );
        cfg.simulated_state = Some(dir.join("sim.json"));
        if let Some(seed) = seed {
            SimulatedHost::create(dir.join("sim.json"), seed).unwrap();
        }
        let config_path = dir.join("agent.toml");
        std::fs::write(&config_path, toml::to_string(&cfg).unwrap()).unwrap();
        Self::run(dir, &config_path)
    }

    /// Runs the agent again on an existing configuration (a restart).
    pub fn run(dir: &Path, config_path: &Path) -> AgentProcess {
        let mut child = Command::new(BIN)
            .args(["run", "--config", config_path.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn lockstep-agent run");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let parts: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            parts.first(),
            Some(&"listening"),
            "unexpected first line {line:?}"
        );
        AgentProcess {
            dir: dir.to_path_buf(),
            config_path: config_path.to_path_buf(),
            addr: parts[1].parse().unwrap(),
            thumbprint: Thumbprint::parse(parts[2]).unwrap(),
            child,
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn client(&self, identity: &Identity) -> AgentClient {
        AgentClient::new(
            &self.url(),
            identity,
            self.thumbprint,
            Duration::from_secs(5),
        )
        .unwrap()
    }

    pub fn journal_path(&self) -> PathBuf {
        self.dir.join("state").join("journal.jsonl")
    }

    pub fn journal_bytes(&self) -> Vec<u8> {
        std::fs::read(self.journal_path()).unwrap_or_default()
    }

    pub fn sim(&self) -> SimState {
        lockstep_agent::backend::simulated::read_state(&self.dir.join("sim.json")).unwrap()
    }

    /// Waits for the process to exit on its own (e.g. an injected crash).
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..200 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("agent did not exit");
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
