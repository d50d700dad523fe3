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
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args([
            "demo",
            "--topology",
            "standalone",
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
    let mut out = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no URL line within 60 s; got {out:#?}"));
        out.push(line.clone());
        if let Some(url) = line.strip_prefix("Lockstep demo on ") {
            return Demo {
                child,
                url: url.trim_end_matches('/').to_string(),
                out,
            };
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
