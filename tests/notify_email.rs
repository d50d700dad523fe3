//! Notifications by e-mail against a real SMTP server on loopback: Python's aiosmtpd (Debian
//! package python3-aiosmtpd) with its Maildir handler, started by the test. The engine drives a
//! real run; the messages the server stored are read back from the Maildir.

mod engine_common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use engine_common::Harness;
use lockstep::engine::machine::RunStatus;
use lockstep::engine::testkit::noop_plan;
use lockstep::notify::config::{Email, SmtpTls};
use lockstep::notify::{self, NotifyConfig, NotifyKind};

const PYTHON: &str = "/usr/bin/python3";

struct SmtpSink {
    child: Child,
    addr: String,
    maildir: tempfile::TempDir,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sink() -> SmtpSink {
    let probe = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "these tests need aiosmtpd for {PYTHON}: apt-get install python3-aiosmtpd ({probe:?})"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let maildir = tempfile::tempdir().unwrap();
    let box_path = maildir.path().join("Maildir");
    let child = Command::new(PYTHON)
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(&box_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    let addr = format!("127.0.0.1:{port}");
    lockstep_testsupport::smtp::wait_listening(&addr);
    SmtpSink {
        child,
        addr,
        maildir,
    }
}

fn stored_messages(sink: &SmtpSink) -> Vec<String> {
    // Unfolded (RFC 5322 2.2.3: a line break before white space is not part of the header): a
    // long Subject is folded onto two lines on the wire, and the assertions read it whole.
    lockstep_testsupport::smtp::maildir_messages(&sink.maildir.path().join("Maildir"))
        .into_iter()
        .map(|m| m.replace("\r\n ", " ").replace("\n ", " "))
        .collect()
}

fn config(server: &str) -> NotifyConfig {
    NotifyConfig {
        backoff_initial_ms: 20,
        backoff_max_ms: 80,
        // aiosmtpd's plain sink on loopback: the one place plain SMTP is allowed (and these
        // tests are about what is mailed; TLS and AUTH are `notify_smtp_tls.rs`).
        email: Some(Email {
            server: server.to_string(),
            tls: SmtpTls::None,
            auth: None,
            from: "lockstep@dc.example".into(),
            to: vec!["upgrades@dc.example".into(), "carl@dc.example".into()],
            events: vec![NotifyKind::RunFinished],
        }),
        ..NotifyConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_run_is_mailed_through_a_real_smtp_server() {
    let sink = start_sink();
    let mut h = Harness::new().await;
    let _task = notify::spawn(h.store.clone(), config(&sink.addr))
        .await
        .unwrap();
    h.start();
    let run = h.started_run(noop_plan(1, true, &["dc1"])).await;
    h.run_reaches(&run.id, RunStatus::Succeeded).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let messages = loop {
        let m = stored_messages(&sink);
        if !m.is_empty() {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "no message stored; attempts: {:?}",
            notify::deliveries(h.store.pool(), &run.id).await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    h.stop().await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    assert!(
        m.contains(&format!(
            "Subject: [Lockstep] Run {} finished: succeeded",
            run.id
        )),
        "{m}"
    );
    assert!(
        m.contains("upgrades@dc.example") && m.contains("carl@dc.example"),
        "{m}"
    );
    let rows = notify::deliveries(h.store.pool(), &run.id).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].outcome.as_str(), rows[0].target.as_str()),
        ("delivered", format!("smtp://{}", sink.addr).as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_there_is_retried_recorded_and_does_not_hold_up_the_run() {
    // A port nobody listens on: bind, note, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut h = Harness::new().await;
    let mut cfg = config(&format!("127.0.0.1:{port}"));
    cfg.max_attempts = 3;
    let _task = notify::spawn(h.store.clone(), cfg).await.unwrap();
    h.start();
    let run = h.started_run(noop_plan(1, true, &["dc1"])).await;
    h.run_reaches(&run.id, RunStatus::Succeeded).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = notify::deliveries(h.store.pool(), &run.id).await.unwrap();
        if rows.iter().any(|a| a.outcome == "gave_up") {
            break rows;
        }
        assert!(Instant::now() < deadline, "{rows:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    h.stop().await;
    let outcomes: Vec<&str> = rows.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["failed", "failed", "gave_up"]);
    assert!(
        rows[2]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("cannot connect"),
        "{rows:?}"
    );
}
