//! End to end through the real binaries, each its own process: `lockstep-sim` (the simulated
//! Data Center's SQL Servers over TDS and web endpoints over HTTPS), one `lockstep-agent` per
//! simulated server (mutual TLS, pinned both ways, enrolled with `lockstep agent add`), and
//! `lockstep serve` (HTTPS, self-signed) configured with the `[sql]`/`[probes]` settings the
//! simulator wrote. People are three accounts with API tokens: an operator who creates the run
//! and performs manual tasks, and two approvers (four-eyes: neither is the requester).
//!
//! Shared state: every simulated host is one JSON file. The agent process changes it through
//! the simulated backend; `lockstep-sim` reads it for every TDS login and web page; this test
//! reads it for the end state and, as the operator at the console, changes it when performing
//! a manual task (the Setup wizard). Updates hold a `flock`, so no process loses another's.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use lockstep::knowledge::plan::PlannedStep;
use lockstep_agent::backend::simulated::{read_state, SimState, SimulatedHost};
use serde_json::{json, Value};

/// The folder holding the workspace's binaries (`lockstep` and, after a workspace build,
/// `lockstep-agent` and `lockstep-sim`).
fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lockstep"))
        .parent()
        .expect("the lockstep binary is in a folder")
        .to_path_buf()
}

/// `lockstep-agent` and `lockstep-sim` belong to other workspace members, which
/// `cargo test --test e2e_…` does not build: build them once (cargo has released its lock by
/// the time tests run), into the same target folder.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let path = bin_dir().join(name);
    if name == "lockstep" {
        return path;
    }
    let built = BUILT.get_or_init(|| {
        let have = |n: &str| bin_dir().join(n).exists();
        if have("lockstep-agent") && have("lockstep-sim") {
            return Ok(());
        }
        let target = bin_dir()
            .parent()
            .map(Path::to_path_buf)
            .ok_or("no target folder")?;
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "-p",
                "lockstep-agent",
                "-p",
                "lockstep-simulator",
                "--bins",
            ])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .map_err(|e| format!("cargo build: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "cargo build of lockstep-agent and lockstep-sim failed: {status}"
            ))
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A child process killed when dropped, with the lines it printed.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    rx: Receiver<String>,
}

impl Proc {
    /// Starts `cmd`, collecting stdout and stderr lines.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for stream in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err),
        ] {
            let (tx, lines) = (tx.clone(), lines.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        Proc {
            name: name.into(),
            child,
            lines,
            rx,
        }
    }

    /// Waits for a line for which `pick` gives a value.
    pub fn wait_for<T>(&mut self, within: Duration, pick: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(line) => {
                    if let Some(v) = pick(&line) {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "{}: the expected line did not come within {within:?} (exit: {:?}); output:\n{}",
                    self.name,
                    self.child.try_wait().ok().flatten(),
                    self.output()
                ),
            }
        }
    }

    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a command to completion; panics with its output unless it succeeds. Returns stdout.
pub fn run(what: &str, cmd: &mut Command, stdin: Option<&str>) -> String {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// One `lockstep-agent run` process.
pub struct Agent {
    pub server: String,
    pub addr: String,
    pub thumbprint: String,
    pub proc: Proc,
}

fn spawn_agent(server: &str, config: &Path) -> Agent {
    let mut cmd = Command::new(binary("lockstep-agent"));
    cmd.arg("run").arg("--config").arg(config);
    let mut proc = Proc::spawn(&format!("lockstep-agent {server}"), cmd);
    let (addr, thumbprint) = proc.wait_for(Duration::from_secs(30), |l| {
        let mut w = l.strip_prefix("listening ")?.split_whitespace();
        Some((w.next()?.to_string(), w.next()?.to_string()))
    });
    Agent {
        server: server.to_string(),
        addr,
        thumbprint,
        proc,
    }
}

/// The people: an operator and two approvers, each with an API token.
pub struct People {
    pub operator: String,
    pub approver: String,
    pub approver2: String,
}

/// A simulated Data Center, its agents and the orchestrator, all running.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub inventory: PathBuf,
    pub inventory_name: String,
    pub endpoints: Value,
    pub url: String,
    pub http: reqwest::Client,
    pub tokens: People,
    pub serve: Proc,
    pub agents: Vec<Agent>,
    pub sim: Proc,
    pub config: PathBuf,
}

/// Starts everything for the example inventory `topology`; server i of the simulator listens
/// on 127.0.0.(first_ip + i), so tests running at once keep apart.
pub async fn start_site(topology: &str, first_ip: u8) -> Site {
    let inventory = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{topology}.toml"));
    start_site_with(&inventory, first_ip, &[], |_, _| {}).await
}

/// As [`start_site`], with `sim_faults` passed to `lockstep-sim --fault`, and
/// `prepare(server, state file)` called for every host after the simulator seeded it and
/// before any agent runs (to inject host faults or seed values).
pub async fn start_site_with(
    inventory: &Path,
    first_ip: u8,
    sim_faults: &[&str],
    prepare: impl Fn(&str, &Path),
) -> Site {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().to_path_buf();
    let endpoints_file = root.join("endpoints.json");
    let mut sim_cmd = Command::new(binary("lockstep-sim"));
    sim_cmd
        .arg("--inventory")
        .arg(inventory)
        .arg("--dir")
        .arg(root.join("sim"))
        .args(["--external-agents", "--first-ip", &first_ip.to_string()])
        .arg("--site-config-out")
        .arg(root.join("site"))
        .arg("--endpoints-out")
        .arg(&endpoints_file);
    for f in sim_faults {
        sim_cmd.args(["--fault", f]);
    }
    let mut sim = Proc::spawn("lockstep-sim", sim_cmd);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !endpoints_file.exists() {
        assert!(
            sim.is_running() && Instant::now() < deadline,
            "lockstep-sim did not write its endpoints:\n{}",
            sim.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let endpoints: Value =
        serde_json::from_str(&std::fs::read_to_string(&endpoints_file).unwrap()).unwrap();

    // The orchestrator's settings: HTTPS on a free port, the site as the simulator wrote it.
    let config = root.join("lockstep.toml");
    let site_fragment = std::fs::read_to_string(root.join("site/lockstep-site.toml")).unwrap();
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ntls_self_signed = true\n{site_fragment}",
            root.join("data").display()
        ),
    )
    .unwrap();
    let lockstep = |args: &[&str]| {
        let mut c = Command::new(binary("lockstep"));
        c.args(args).arg("--config").arg(&config);
        c
    };
    // The settings lockstep-sim wrote pass the same check an admin would run.
    let check = run(
        "lockstep config check",
        &mut lockstep(&["config", "check"]),
        None,
    );
    assert!(
        check.contains("simulated_site = true") && check.contains("sql.servers."),
        "{check}"
    );
    assert!(
        !check.contains("simulated-Passw0rd"),
        "no password in: {check}"
    );
    let orchestrator = run(
        "lockstep agent identity",
        &mut lockstep(&["agent", "identity"]),
        None,
    )
    .trim()
    .to_string();

    // One agent process per server: its own identity, the orchestrator pinned, then enrolled.
    let mut agents = Vec::new();
    let configs = endpoints["agent_configs"]
        .as_object()
        .expect("lockstep-sim --external-agents lists agent configurations")
        .clone();
    for (server, agent_config) in &configs {
        let agent_config = PathBuf::from(agent_config.as_str().unwrap());
        let state_dir = agent_config.parent().unwrap().to_path_buf();
        prepare(server, &state_dir.join("simulated.json"));
        let agent = |args: &[&str]| {
            let mut c = Command::new(binary("lockstep-agent"));
            c.args(args);
            c
        };
        let thumbprint = run(
            "lockstep-agent init",
            agent(&["init", "--name", server])
                .arg("--state-dir")
                .arg(&state_dir),
            None,
        )
        .trim()
        .to_string();
        run(
            "lockstep-agent trust",
            agent(&["trust", &orchestrator])
                .arg("--state-dir")
                .arg(&state_dir),
            None,
        );
        let a = spawn_agent(server, &agent_config);
        assert_eq!(
            a.thumbprint, thumbprint,
            "the agent serves the identity init made"
        );
        let addr = a.addr.clone();
        run(
            "lockstep agent add",
            &mut lockstep(&[
                "agent",
                "add",
                "--server",
                server,
                "--url",
                &format!("https://{addr}"),
                "--thumbprint",
                &thumbprint,
            ]),
            None,
        );
        agents.push(a);
    }

    // People and their API tokens.
    let token = |name: &str, role: &str| {
        run(
            "lockstep user add",
            &mut lockstep(&["user", "add", name, "--role", role, "--password-stdin"]),
            Some(&format!("{name}-correct-horse-battery\n")),
        );
        run(
            "lockstep user token",
            &mut lockstep(&["user", "token", name, "--label", "e2e"]),
            None,
        )
        .trim()
        .to_string()
    };
    let tokens = People {
        operator: token("operator", "operator"),
        approver: token("approver", "approver"),
        approver2: token("approver2", "approver"),
    };

    let mut serve = Proc::spawn("lockstep serve", lockstep(&["serve"]));
    let cert = serve.wait_for(Duration::from_secs(60), |l| {
        l.strip_prefix("using the self-signed certificate ")
            .map(PathBuf::from)
    });
    let url = serve.wait_for(Duration::from_secs(60), |l| {
        let rest = l.strip_prefix("Lockstep dashboard on ")?;
        Some(
            rest.split_whitespace()
                .next()?
                .trim_end_matches('/')
                .to_string(),
        )
    });
    assert!(url.starts_with("https://"), "{url}");
    let pem = std::fs::read(&cert).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let inventory_text = std::fs::read_to_string(inventory).unwrap();
    let mut site = Site {
        dir,
        inventory: inventory.to_path_buf(),
        inventory_name: String::new(),
        endpoints,
        url,
        http,
        tokens,
        serve,
        agents,
        sim,
        config,
    };
    let (status, body) = site
        .post(
            &site.tokens.operator.clone(),
            "/datacenters",
            json!({ "toml": inventory_text }),
        )
        .await;
    assert_eq!(status, 201, "inventory upload: {body}");
    site.inventory_name = body["name"].as_str().unwrap().to_string();
    site
}

impl Site {
    pub async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/api/v1{path}", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, token: &str, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}/api/v1{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Creates the run as the operator (the API submits it for approval) and has the first approver approve the start.
    pub async fn create_run(&self, runbook: &str, params: &[(&str, &str)]) -> String {
        let params: serde_json::Map<String, Value> = params
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let (status, body) = self
            .post(
                &self.tokens.operator,
                "/runs",
                json!({
                    "datacenter": self.inventory_name,
                    "runbook": runbook,
                    "params": params,
                    "change_ticket": "CHG-E2E-0001",
                }),
            )
            .await;
        assert_eq!(status, 201, "create run: {body}");
        let id = body["run"]["id"].as_str().unwrap().to_string();
        assert_eq!(body["run"]["status"], "awaiting_start_approval", "{body}");
        // The requester cannot approve their own run.
        let (status, _) = self
            .post(
                &self.tokens.operator,
                &format!("/runs/{id}/approve"),
                json!({}),
            )
            .await;
        assert_eq!(status, 403, "an operator cannot approve the start");
        // Preflight ran on submit with the agents' facts: an error it found (a site shaped on
        // purpose to differ from the defaults) is overridden by the second approver, as a change
        // board would, before the start is approved.
        let run = self
            .get(&self.tokens.approver2, &format!("/runs/{id}"))
            .await;
        let findings = run["run"]["state"]["preflight"]["findings"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for f in findings
            .iter()
            .filter(|f| f["severity"] == "error" && f["result"] == "fail")
        {
            let (status, body) = self
                .post(
                    &self.tokens.approver2,
                    &format!("/runs/{id}/override"),
                    json!({
                        "finding": f["key"],
                        "justification": "simulated site: accepted for this test",
                    }),
                )
                .await;
            assert_eq!(status, 200, "override {}: {body}", f["key"]);
        }
        let (status, body) = self
            .post(
                &self.tokens.approver,
                &format!("/runs/{id}/approve"),
                json!({ "comment": "window agreed in CAB" }),
            )
            .await;
        assert_eq!(status, 200, "approve start: {body}");
        id
    }

    /// Changes a simulated host's state as the site would (a fault cleared, a value set).
    pub fn update_host(&self, server: &str, f: impl FnOnce(&mut SimState)) {
        SimulatedHost::open(self.state_file(server))
            .unwrap()
            .update(f)
            .unwrap();
    }

    /// Restarts a server's agent process on the address it had, so its enrolment stays valid
    /// (the process may have died: a crash fault aborts it).
    pub fn restart_agent(&mut self, server: &str) {
        let i = self
            .agents
            .iter()
            .position(|a| a.server == server)
            .expect("an agent for the server");
        let old = self.agents.remove(i);
        let addr = old.addr.clone();
        drop(old);
        let config = PathBuf::from(self.endpoints["agent_configs"][server].as_str().unwrap());
        let mut cfg: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
        cfg.insert("listen".into(), toml::Value::String(addr.clone()));
        std::fs::write(&config, toml::to_string(&cfg).unwrap()).unwrap();
        self.agents.push(spawn_agent(server, &config));
        assert_eq!(self.agents.last().unwrap().addr, addr);
    }

    pub fn state_file(&self, server: &str) -> PathBuf {
        self.dir
            .path()
            .join("sim")
            .join(server)
            .join("simulated.json")
    }

    /// The simulated host's state as the agent left it.
    pub fn host(&self, server: &str) -> SimState {
        read_state(&self.state_file(server)).unwrap()
    }

    /// Approves every open gate (the first approver, then the second where two are needed)
    /// and performs every waiting manual task, once. True when it did something.
    pub async fn act_as_people(&self, id: &str, detail: &Value) -> bool {
        let steps = detail["steps"].as_array().unwrap();
        let mut acted = false;
        for s in steps {
            match s["status"].as_str().unwrap() {
                "awaiting_approval" if s["state"]["gate_lapsed"] != json!(true) => {
                    let given = s["state"]["approvals"].as_array().map_or(0, Vec::len);
                    let token = if given == 0 {
                        &self.tokens.approver
                    } else {
                        &self.tokens.approver2
                    };
                    let step = s["id"].as_str().unwrap();
                    let (status, body) = self
                        .post(
                            token,
                            &format!("/runs/{id}/steps/{step}/approve"),
                            json!({
                                "comment": "checked the evidence",
                                "content_hash": s["content_hash"],
                            }),
                        )
                        .await;
                    assert_eq!(status, 200, "approve {step}: {body}");
                    acted = true;
                }
                "awaiting_operator" => {
                    self.perform_manual_task(id, s).await;
                    acted = true;
                }
                _ => {}
            }
        }
        acted
    }

    /// One round of [`Site::act_as_people`] on the run as it is now.
    pub async fn approve_open_gates(&self, id: &str) {
        let detail = self
            .get(&self.tokens.operator, &format!("/runs/{id}"))
            .await;
        self.act_as_people(id, &detail).await;
    }

    /// Approves open gates (first approver, then the second where two are needed) and performs
    /// manual tasks as the operator, until the run ends or stops for a person. Returns the run.
    pub async fn drive(&self, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        let mut quiet = 0;
        loop {
            let detail = self
                .get(&self.tokens.operator, &format!("/runs/{id}"))
                .await;
            let run_status = detail["run"]["status"].as_str().unwrap().to_string();
            let steps = detail["steps"].as_array().unwrap();
            if ["succeeded", "failed", "aborted", "undone"].contains(&run_status.as_str()) {
                return detail;
            }
            let acted = self.act_as_people(id, &detail).await;
            let moving = steps.iter().any(|s| {
                matches!(
                    s["status"].as_str().unwrap(),
                    "ready" | "dispatched" | "running" | "verifying" | "pending"
                )
            });
            let stuck = steps
                .iter()
                .any(|s| matches!(s["status"].as_str().unwrap(), "failed" | "outcome_unknown"));
            if !acted && (stuck || !moving) {
                quiet += 1;
                // A failed step waits for a person: that is where the run stopped.
                if quiet >= 10 {
                    return detail;
                }
            } else {
                quiet = 0;
            }
            assert!(
                Instant::now() < deadline,
                "the run did not finish within {within:?}; last state:\n{}\nserve:\n{}",
                summary(&detail),
                self.serve.output()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The operator at the console: does the work on the simulated host (as the Setup wizard
    /// would), then claims and completes the task through the API.
    async fn perform_manual_task(&self, id: &str, s: &Value) {
        let spec: PlannedStep = serde_json::from_value(s["spec"].clone()).unwrap();
        let step = spec.id.clone();
        let note = match &spec.host {
            Some(h) => {
                let host = SimulatedHost::open(self.state_file(h)).unwrap();
                lockstep::rehearsal::manual::perform(&host, None, &spec).unwrap()
            }
            None => "done at the console".to_string(),
        };
        if s["state"]["claimed_by"].is_null() {
            let (status, body) = self
                .post(
                    &self.tokens.operator,
                    &format!("/runs/{id}/steps/{step}/claim"),
                    json!({}),
                )
                .await;
            assert_eq!(status, 200, "claim {step}: {body}");
        }
        let (status, body) = self
            .post(
                &self.tokens.operator,
                &format!("/runs/{id}/steps/{step}/complete"),
                json!({ "note": note }),
            )
            .await;
        assert_eq!(status, 200, "complete {step}: {body}");
    }

    /// Every approval on the run was given by an approver, none by the requester.
    pub fn assert_four_eyes(&self, detail: &Value) {
        assert_eq!(detail["run"]["requester"], json!("operator"));
        let mut approvals = 0;
        for s in detail["steps"].as_array().unwrap() {
            let given = s["state"]["approvals"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let actors: Vec<&str> = given.iter().map(|a| a["actor"].as_str().unwrap()).collect();
            for a in &actors {
                assert!(*a == "approver" || *a == "approver2", "{a}");
            }
            let mut distinct = actors.clone();
            distinct.dedup();
            assert_eq!(distinct.len(), actors.len(), "two approvals by one person");
            approvals += actors.len();
        }
        assert!(approvals > 0, "the run had gates and they were approved");
    }

    /// Runs one T-SQL batch on a server's simulated SQL Server over TDS (a site's own hand,
    /// e.g. what a half-run Setup did to the Registry database).
    pub async fn sql_batch(&self, server: &str, sql: &str) {
        use tokio_util::compat::TokioAsyncWriteCompatExt;
        let addr = self.endpoints["sql"][server]
            .as_str()
            .unwrap_or_else(|| panic!("{server} has no SQL Server"));
        let mut cfg = tiberius::Config::new();
        let (host, port) = addr.rsplit_once(':').unwrap();
        cfg.host(host);
        cfg.port(port.parse().unwrap());
        cfg.authentication(tiberius::AuthMethod::sql_server(
            self.endpoints["sql_user"].as_str().unwrap(),
            self.endpoints["sql_password"].as_str().unwrap(),
        ));
        cfg.encryption(tiberius::EncryptionLevel::NotSupported);
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut client = tiberius::Client::connect(cfg, tcp.compat_write())
            .await
            .unwrap();
        client
            .simple_query(sql)
            .await
            .unwrap()
            .into_results()
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The Registry database's OutflowServices rows, read over TDS with tiberius.
    pub async fn outflow_rows(&self, server: &str) -> Vec<(i32, String, bool)> {
        use tokio_util::compat::TokioAsyncWriteCompatExt;
        let addr = self.endpoints["sql"][server]
            .as_str()
            .unwrap_or_else(|| panic!("{server} has no SQL Server"));
        let mut cfg = tiberius::Config::new();
        let (host, port) = addr.rsplit_once(':').unwrap();
        cfg.host(host);
        cfg.port(port.parse().unwrap());
        cfg.authentication(tiberius::AuthMethod::sql_server(
            self.endpoints["sql_user"].as_str().unwrap(),
            self.endpoints["sql_password"].as_str().unwrap(),
        ));
        cfg.encryption(tiberius::EncryptionLevel::NotSupported);
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut client = tiberius::Client::connect(cfg, tcp.compat_write())
            .await
            .unwrap();
        let rows = client
            .simple_query(
                "SELECT ServerId, Url, secureFlag FROM Registry.dbo.OutflowServices ORDER BY ServerId",
            )
            .await
            .unwrap()
            .into_first_result()
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                (
                    r.get::<i32, _>(0).unwrap(),
                    r.get::<&str, _>(1).unwrap().to_string(),
                    r.get::<bool, _>(2).unwrap(),
                )
            })
            .collect()
    }

    /// A page of a simulated web server, fetched over HTTPS as a browser at the site would:
    /// the site's CA and self-signed certificates trusted, host names resolved to the simulator.
    pub async fn web_page(&self, url: &str) -> (u16, String) {
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(20));
        let site = self.dir.path().join("site");
        for entry in std::fs::read_dir(&site).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "pem") {
                let pem = std::fs::read(&p).unwrap();
                b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
            }
        }
        for (host, addr) in self.endpoints["resolve"].as_object().unwrap() {
            b = b.resolve(host, addr.as_str().unwrap().parse().unwrap());
        }
        let r = b.build().unwrap().get(url).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }
}

/// One line per step: id, status, last error.
pub fn summary(detail: &Value) -> String {
    let mut out = format!("run {}\n", detail["run"]["status"]);
    for s in detail["steps"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:<45} {:<18} {}\n",
            s["id"].as_str().unwrap_or(""),
            s["status"].as_str().unwrap_or(""),
            s["state"]["last_error"].as_str().unwrap_or("")
        ));
    }
    out
}

/// The step where the run stopped (the first failed or in-doubt step), with its error and
/// evidence as text.
pub fn stopped_at(detail: &Value) -> Option<(String, String)> {
    detail["steps"].as_array()?.iter().find_map(|s| {
        matches!(s["status"].as_str()?, "failed" | "outcome_unknown").then(|| {
            (
                s["id"].as_str().unwrap_or("").to_string(),
                format!(
                    "{} {}",
                    s["state"]["last_error"].as_str().unwrap_or(""),
                    s["state"]["evidence"]
                ),
            )
        })
    })
}

/// The step `id` of a run's detail.
pub fn step<'a>(detail: &'a Value, id: &str) -> &'a Value {
    detail["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("no step {id}"))
}
