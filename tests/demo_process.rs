//! `lockstep demo` as a person starts it: a real process on a temporary data directory and a
//! free port, a login through HTTP with a printed password, Ctrl-C (SIGINT) stopping it cleanly,
//! and a second start that keeps the accounts and data of the first.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Demo {
    child: Child,
    url: String,
    out: Vec<String>,
}

/// Starts the demo and reads its standard output up to the URL line.
fn start(data_dir: &Path) -> Demo {
    start_with(data_dir, "standalone")
}

fn start_with(data_dir: &Path, topology: &str) -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args([
            "demo",
            "--topology",
            topology,
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("lockstep demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Owned by `Demo` from here on, so a failing test never leaves the process behind.
    let mut demo = Demo {
        child,
        url: String::new(),
        out: Vec::new(),
    };
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no URL line within 60 s; got {:#?}", demo.out));
        demo.out.push(line.clone());
        if let Some(url) = line.strip_prefix("Lockstep demo on ") {
            demo.url = url.trim_end_matches('/').to_string();
            return demo;
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn password_of(out: &[String], account: &str) -> Option<String> {
    out.iter().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next() == Some(account)).then(|| words.next().map(String::from))?
    })
}

async fn login(url: &str, name: &str, password: &str) -> reqwest::StatusCode {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    client
        .post(format!("{url}/login"))
        .form(&[("name", name), ("password", password)])
        .send()
        .await
        .expect("login request")
        .status()
}

fn interrupt(mut demo: Demo) {
    let status = Command::new("kill")
        .args(["-INT", &demo.child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let exit = demo.child.wait().expect("demo exits");
    assert!(
        exit.success(),
        "Ctrl-C should stop the demo cleanly, got {exit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_passwords_that_log_in_stops_on_ctrl_c_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let demo = start(&data);
    let pw = password_of(&demo.out, "operator")
        .unwrap_or_else(|| panic!("no operator password in {:#?}", demo.out));
    for account in ["approver", "approver2", "viewer", "admin"] {
        assert!(
            password_of(&demo.out, account).is_some(),
            "{account}: {:#?}",
            demo.out
        );
    }
    assert_eq!(login(&demo.url, "operator", &pw).await, 303);
    assert_eq!(login(&demo.url, "operator", "not-the-password").await, 401);
    interrupt(demo);
    assert!(data.join("lockstep.db").exists());

    let demo = start(&data);
    assert!(
        demo.out.iter().any(|l| l.contains("exist already")),
        "a second start says the accounts exist: {:#?}",
        demo.out
    );
    assert!(
        password_of(&demo.out, "operator").is_none(),
        "passwords are not printed again"
    );
    assert_eq!(
        login(&demo.url, "operator", &pw).await,
        303,
        "the first start's account survives"
    );
    interrupt(demo);
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Logs in through the form and creates an API token with the session (as the Account page does).
async fn token(url: &str, name: &str, password: &str) -> String {
    let c = client();
    let resp = c
        .post(format!("{url}/login"))
        .form(&[("name", name), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("__Host-lockstep="))
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_string();
    let page = c
        .get(format!("{url}/account"))
        .header("cookie", format!("__Host-lockstep={cookie}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = "\"X-CSRF-Token\": \"";
    let start = page.find(marker).expect("csrf token on the page") + marker.len();
    let csrf = &page[start..start + page[start..].find('"').unwrap()];
    let resp = c
        .post(format!("{url}/api/v1/tokens"))
        .header("cookie", format!("__Host-lockstep={cookie}"))
        .header("X-CSRF-Token", csrf)
        .json(&serde_json::json!({ "label": "e2e" }))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert!(status.is_success(), "token for {name}: {status} {body}");
    body["token"].as_str().expect("token").to_string()
}

async fn api(
    url: &str,
    token: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let c = client();
    let req = match body {
        Some(b) => c.post(format!("{url}/api/v1{path}")).json(&b),
        None => c.get(format!("{url}/api/v1{path}")),
    };
    let resp = req.bearer_auth(token).send().await.unwrap();
    let status = resp.status();
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

/// The Management API uninstall on the mirrored demo, through the JSON API by two people:
/// the operator requests the run and does the manual tasks, the approver approves — the demo's
/// orchestrator, agents and endpoints answering over real TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_and_approved_through_the_api_by_two_people_succeeds_on_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start_with(&dir.path().join("demo"), "mirrored");
    let url = demo.url.clone();
    let op = token(
        &url,
        "operator",
        &password_of(&demo.out, "operator").unwrap(),
    )
    .await;
    let boss = token(
        &url,
        "approver",
        &password_of(&demo.out, "approver").unwrap(),
    )
    .await;
    // The demo collects every agent's heartbeat and facts at start-up (no "checked never").
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let agents = api(&url, &op, "/agents", None).await;
        let agents = agents.as_array().cloned().unwrap_or_default();
        if agents.len() == 4
            && agents
                .iter()
                .all(|a| a["status"] == "online" && a["facts"]["components"].is_array())
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "agents without heartbeat or facts 30 s after start: {agents:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let run = api(
        &url,
        &op,
        "/runs",
        Some(serde_json::json!({
            "datacenter": "Contoso production",
            "runbook": "uninstall-management-api",
            "change_ticket": "CHG-E2E",
        })),
    )
    .await;
    let id = run["run"]["id"].as_str().expect("run id").to_string();
    // Creating a run through the API submits it for start approval.
    let refused = client()
        .post(format!("{url}/api/v1/runs/{id}/approve"))
        .bearer_auth(&op)
        .json(&serde_json::json!({ "comment": "my own" }))
        .send()
        .await
        .unwrap();
    assert!(
        !refused.status().is_success(),
        "the requester cannot approve"
    );
    api(
        &url,
        &boss,
        &format!("/runs/{id}/approve"),
        Some(serde_json::json!({ "comment": "go" })),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let detail = api(&url, &op, &format!("/runs/{id}"), None).await;
        let status = detail["run"]["status"].as_str().unwrap_or("").to_string();
        if status == "succeeded" {
            break;
        }
        assert!(
            !["failed", "aborted"].contains(&status.as_str()),
            "{detail:#}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "not done in 120 s: {detail:#}"
        );
        for s in detail["steps"].as_array().unwrap() {
            let sid = s["id"].as_str().unwrap();
            match s["status"].as_str().unwrap_or("") {
                "awaiting_approval" => {
                    let body = serde_json::json!({ "comment": "approved", "content_hash": s["content_hash"] });
                    api(
                        &url,
                        &boss,
                        &format!("/runs/{id}/steps/{sid}/approve"),
                        Some(body),
                    )
                    .await;
                }
                "awaiting_operator" => {
                    if s["state"]["claimed_by"].is_null() {
                        api(
                            &url,
                            &op,
                            &format!("/runs/{id}/steps/{sid}/claim"),
                            Some(serde_json::json!({})),
                        )
                        .await;
                    }
                    let body = serde_json::json!({ "note": "done in the simulated Data Center" });
                    api(
                        &url,
                        &op,
                        &format!("/runs/{id}/steps/{sid}/complete"),
                        Some(body),
                    )
                    .await;
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events = api(&url, &boss, "/audit", None).await.to_string();
    assert!(events.contains("approver") && events.contains("operator"));
    interrupt(demo);
}

#[test]
fn the_demo_refuses_a_non_loopback_address_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["demo", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    assert!(!data.exists(), "nothing is created");
}
