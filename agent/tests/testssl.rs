//! The seed's security guidance against the agent's real port: `testssl.sh` (Debian package
//! `testssl.sh`, installed by `scripts/test`) must find no SSLv2/SSLv3/TLS 1.0/TLS 1.1 and no
//! 64-bit-block (3DES), NULL, export or other weak ciphers — only TLS 1.2/1.3 with AEAD suites.

mod common;

use std::process::Command;

use common::AgentProcess;
use lockstep_agent::backend::simulated::SimState;
use lockstep_agent::tls::Identity;

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

#[test]
fn testssl_finds_only_tls_1_2_and_1_3_with_strong_ciphers_on_the_agent_port() {
    let tool = testssl();
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = Identity::generate("orchestrator").unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        Some(&SimState::data_center_server("dc1", "8.8.6")),
        &orchestrator,
    );
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
            "--jsonfile",
        ])
        .arg(&json)
        .arg(agent.addr.to_string())
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
    assert!(finding("TLS1_2").starts_with("offered"), "{text}");
    assert!(finding("TLS1_3").starts_with("offered"), "{text}");
    assert!(
        finding("cipherlist_STRONG").starts_with("offered"),
        "{text}"
    );
}
