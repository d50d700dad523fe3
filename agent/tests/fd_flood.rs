//! Out of file descriptors: a real `lockstep-agent` process with a low RLIMIT_NOFILE is flooded
//! with connections. Its accept loop pauses instead of spinning — the log stays a few lines, not
//! gigabytes — and once the flood ends a real mutual-TLS handshake succeeds.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use lockstep_agent::backend::simulated::SimState;
use lockstep_agent::tls::{Identity, Thumbprint};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_descriptor_flood_logs_a_bounded_number_of_lines_and_the_agent_serves_after() {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate("orchestrator").unwrap();
    let first = AgentProcess::start(
        dir.path(),
        Some(&SimState::data_center_server("dc1", "8.8.6")),
        &me,
    );
    let config = first.config_path.clone();
    drop(first);

    // The same agent again, with at most 64 descriptors; its log goes to a file we count.
    let log_path = dir.path().join("agent.log");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 64 && exec "$0" run --config "$1" 2>"$2""#)
        .arg(BIN)
        .arg(&config)
        .arg(&log_path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts.first(), Some(&"listening"), "{line:?}");
    let addr: std::net::SocketAddr = parts[1].parse().unwrap();
    let thumbprint = Thumbprint::parse(parts[2]).unwrap();

    // 200 connections held open for 3 s: far more than the agent may hold.
    let flood_began = Instant::now();
    let flood: Vec<std::net::TcpStream> = (0..200)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    assert!(flood.len() > 64, "only {} connections made", flood.len());
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(flood);

    let client = lockstep_agent::client::AgentClient::new(
        &format!("https://{addr}"),
        &me,
        thumbprint,
        Duration::from_secs(5),
    )
    .unwrap();
    let began = Instant::now();
    let health = loop {
        match client.health().await {
            Ok(h) => break h,
            Err(e) if began.elapsed() < Duration::from_secs(20) => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("no handshake after the flood: {e}"),
        }
    };
    assert!(!health.hostname.is_empty());
    let _ = child.kill();
    let _ = child.wait();
    let secs = flood_began.elapsed().as_secs();

    let log = std::fs::read_to_string(&log_path).unwrap();
    let accept_lines = log.lines().filter(|l| l.contains("accept failed")).count();
    println!(
        "{} log lines in {secs} s, {accept_lines} about accept failures",
        log.lines().count()
    );
    assert!(
        accept_lines >= 1,
        "the flood never ran the agent out of descriptors:\n{log}"
    );
    // One line per 5 s interval at most (plus the first): not one per failed accept.
    assert!(
        accept_lines as u64 <= secs / 5 + 2,
        "{accept_lines} accept-failure lines in {secs} s"
    );
    assert!(log.len() < 200_000, "{} bytes of log", log.len());
}
