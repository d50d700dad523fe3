//! The seed's security guidance against the dashboard's real HTTPS port: `testssl.sh` (Debian
//! package `testssl.sh`, installed by `scripts/test`) runs against `lockstep serve` started with a
//! TLS certificate, and must find no SSLv2/SSLv3/TLS 1.0/TLS 1.1, no NULL, anonymous, export,
//! low, 3DES/IDEA or RC4 ciphers — only TLS 1.2/1.3 with strong suites — and an HSTS header.
//! (The agent's port gets the same check in `agent/tests/testssl.rs`; the rule both keep is
//! `lockstep_testsupport::testssl::assert_modern_tls`.)

mod serve_process;

use lockstep_testsupport::testssl::{assert_modern_tls, require_testssl};
use serve_process::Serve;

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
    require_testssl();
    let serve = serve_https();
    // The sign-in page: an ordinary 200 answer with the headers every page carries.
    let report = assert_modern_tls(&format!("{}/login", serve.base), &["--rc4", "--headers"]);
    let text = &report.text;
    assert_eq!(report.finding("RC4"), "not vulnerable", "RC4\n{text}");
    let hsts = report.finding("HSTS_time");
    assert!(
        hsts.contains("31536000"),
        "HSTS: {hsts} (expected max-age=31536000)\n{text}"
    );
}
