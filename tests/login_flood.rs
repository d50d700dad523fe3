//! Bounds at the login door of a real `lockstep serve` process on loopback (issue #14): a flood
//! of logins with made-up names keeps the server's peak memory low and `/healthz` answering
//! (password checks run a few at a time; the rest wait briefly or get 503 with Retry-After),
//! and many wrong guesses sent at once cannot get past the failed-login limits, per account and
//! per client address.

mod serve_process;

use std::process::{Command, Stdio};

fn add_admin(db: &std::path::Path) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args([
            "user",
            "add",
            "ada",
            "--role",
            "admin",
            "--password-stdin",
            "--db",
        ])
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long enough passphrase 42\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
}

fn serve() -> serve_process::Serve {
    serve_with(&[])
}

fn serve_with(env: &[(&str, &str)]) -> serve_process::Serve {
    let dir = tempfile::tempdir().unwrap();
    add_admin(&dir.path().join("lockstep.db"));
    let path = dir.path().to_path_buf();
    let mut cmd = serve_process::command(&path);
    cmd.envs(env.iter().copied());
    serve_process::start(cmd, dir)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn login(base: &str, name: &str, password: &str) -> reqwest::Response {
    client()
        .post(format!("{base}/login"))
        .form(&[("name", name), ("password", password)])
        .send()
        .await
        .unwrap()
}

/// Peak resident memory of a process in KiB (`VmHWM`).
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_logins_with_made_up_names_keep_memory_flat_and_healthz_answering() {
    // As if from sixty addresses: the per-address limit would turn most of them away before
    // their password is checked, and this is about the checks that do run.
    let s = serve_with(&[("LOCKSTEP_LOGIN_MAX_FAILURES_PER_ADDRESS", "1000")]);
    let base = s.base.clone();
    let idle_mib = peak_kib(s.pid()) / 1024;
    let flood: Vec<_> = (0..60)
        .map(|i| {
            let base = base.clone();
            tokio::spawn(
                async move { login(&base, &format!("nobody{i}"), "wrong guess 123").await },
            )
        })
        .collect();
    let health = client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "healthz answers during the flood");
    let mut statuses = Vec::new();
    for f in flood {
        let r = f.await.unwrap();
        if r.status() == 503 {
            assert!(
                r.headers().get("retry-after").is_some(),
                "503 says when to retry"
            );
        }
        statuses.push(r.status().as_u16());
    }
    assert!(
        statuses.iter().all(|s| [401, 503].contains(s)),
        "every login refused, none failed: {statuses:?}"
    );
    let peak_mib = peak_kib(s.pid()) / 1024;
    eprintln!("serve peak memory after 60 logins: {peak_mib} MiB (idle {idle_mib} MiB)");
    assert!(
        peak_mib < 400,
        "peak memory {peak_mib} MiB (idle {idle_mib} MiB)"
    );
    let health = client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_wrong_guesses_at_once_then_the_right_password_do_not_log_in() {
    let s = serve();
    let base = s.base.clone();
    let guesses: Vec<_> = (0..30)
        .map(|i| {
            let base = base.clone();
            tokio::spawn(async move { login(&base, "ada", &format!("guess number {i}")).await })
        })
        .collect();
    let mut checked = 0;
    for g in guesses {
        let status = g.await.unwrap().status().as_u16();
        assert!([401, 429, 503].contains(&status), "{status}");
        if status == 401 {
            checked += 1;
        }
    }
    assert!(
        checked <= 5,
        "{checked} guesses were checked; the limit is 5"
    );
    let right = login(&base, "ada", "a long enough passphrase 42").await;
    assert_eq!(
        right.status(),
        429,
        "throttled: the right password does not log in now"
    );
    assert!(right.headers().get("set-cookie").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_guesses_at_once_from_one_address_with_different_names_are_capped() {
    let s = serve_with(&[("LOCKSTEP_LOGIN_MAX_FAILURES_PER_ADDRESS", "10")]);
    let base = s.base.clone();
    let guesses: Vec<_> = (0..30)
        .map(|i| {
            let base = base.clone();
            tokio::spawn(async move {
                login(&base, &format!("name{i}"), &format!("guess number {i}")).await
            })
        })
        .collect();
    let (mut checked, mut refused) = (0, 0);
    for g in guesses {
        let r = g.await.unwrap();
        let status = r.status().as_u16();
        assert!([401, 429, 503].contains(&status), "{status}");
        if status == 401 {
            checked += 1;
        }
        if status == 429 {
            refused += 1;
            let page = r.text().await.unwrap();
            assert!(
                page.contains("too many failed logins from your address"),
                "the refusal names the address limit: {page}"
            );
        }
    }
    assert!(
        checked <= 10,
        "{checked} guesses were checked; the limit per address is 10"
    );
    assert!(refused >= 20, "{refused} refused");
    let right = login(&base, "ada", "a long enough passphrase 42").await;
    assert_eq!(
        right.status(),
        429,
        "the address is throttled: even the right password does not log in from it now"
    );
    assert!(right.headers().get("set-cookie").is_none());
}
