//! The seed's security guidance against the dashboard's real HTTPS port: `testssl.sh` (Debian
//! package `testssl.sh`, installed by `scripts/test`) runs against `lockstep serve` started with a
//! TLS certificate, and must find no SSLv2/SSLv3/TLS 1.0/TLS 1.1, no NULL, anonymous, export,
//! low, 3DES/IDEA or RC4 ciphers — only TLS 1.2/1.3 with strong suites — and an HSTS header.
//! (The agent's port gets the same check in `agent/tests/testssl.rs`.)

mod serve_process;

use std::process::Command;

use serve_process::Serve;

/// Debian installs the script as `testssl`; upstream calls it `testssl.sh`.
fn testssl() -> &'static str {
    for name in ["testssl", "testssl.sh"] {
        if Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return name;
        }
    }
    panic!("testssl.sh is not installed: `apt-get install testssl.sh` (scripts/test installs it)");
}

fn serve_https() -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let mut cmd = serve_process::command(&dir.path().join("data"));
    cmd.arg("--db")
        .arg(dir.path().join("data").join("lockstep.db"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("RUST_LOG", "warn");
    let serve = serve_process::start(cmd, dir);
    assert!(serve.base.starts_with("https://"), "{}", serve.base);
    serve
}

#[test]
fn testssl_finds_only_tls_1_2_and_1_3_with_strong_ciphers_and_hsts_on_the_dashboard_port() {
    let tool = testssl();
    let dir = tempfile::tempdir().unwrap();
    let serve = serve_https();
    let json = dir.path().join("testssl.json");
    let out = Command::new(tool)
        .args([
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "off",
            "--protocols",
            "--std",
            "--rc4",
            "--headers",
            "--jsonfile",
        ])
        .arg(&json)
        // The sign-in page: an ordinary 200 answer with the headers every page carries.
        .arg(format!("{}/login", serve.base))
        .output()
        .expect("run testssl");
    let text = String::from_utf8_lossy(&out.stdout);
    let findings: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&json).unwrap_or_default())
            .unwrap_or_else(|e| panic!("testssl wrote no JSON ({e}); output:\n{text}"));
    let finding = |id: &str| -> String {
        findings
            .iter()
            .find(|f| f["id"] == id)
            .and_then(|f| f["finding"].as_str().map(String::from))
            .unwrap_or_else(|| panic!("testssl reported nothing for {id}; output:\n{text}"))
    };
    for refused in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert_eq!(finding(refused), "not offered", "{refused}\n{text}");
    }
    for weak in [
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
        "cipherlist_AVERAGE",
    ] {
        assert_eq!(finding(weak), "not offered", "{weak}\n{text}");
    }
    assert_eq!(finding("RC4"), "not vulnerable", "RC4\n{text}");
    assert!(finding("TLS1_2").starts_with("offered"), "{text}");
    assert!(finding("TLS1_3").starts_with("offered"), "{text}");
    assert!(
        finding("cipherlist_STRONG").starts_with("offered"),
        "{text}"
    );
    let hsts = finding("HSTS_time");
    assert!(
        hsts.contains("31536000"),
        "HSTS: {hsts} (expected max-age=31536000)\n{text}"
    );
}
