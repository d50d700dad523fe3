//! The seed's security guidance, checked by `testssl.sh` (Debian package `testssl.sh`, installed
//! by `scripts/test`) against a real port: no SSLv2/SSLv3/TLS 1.0/TLS 1.1, no NULL, anonymous,
//! export, low, 3DES/IDEA or "average" ciphers — only TLS 1.2 and 1.3 with strong suites.
//!
//! The dashboard and the agent must both pass the same rule, so it is written once here; a test
//! adds what only its port has (the dashboard's RC4 and HSTS checks) through [`Findings`].

use std::process::Command;

/// Debian installs the script as `testssl`; upstream calls it `testssl.sh`.
fn tool() -> &'static str {
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

/// What testssl.sh reported: its JSON findings, and its text output for failure messages.
pub struct Findings {
    findings: Vec<serde_json::Value>,
    /// testssl.sh's standard output, to show beside a failed assertion.
    pub text: String,
}

impl Findings {
    /// The finding reported for `id` (e.g. `TLS1_2`); panics when testssl.sh reported none.
    pub fn finding(&self, id: &str) -> String {
        self.findings
            .iter()
            .find(|f| f["id"] == id)
            .and_then(|f| f["finding"].as_str().map(String::from))
            .unwrap_or_else(|| panic!("testssl reported nothing for {id}; output:\n{}", self.text))
    }
}

/// Panics unless testssl.sh is installed; call it before starting a server, so a machine
/// without the tool fails at once with the command that installs it.
pub fn require_testssl() {
    tool();
}

/// Runs testssl.sh against `target` (`host:port` or a URL) with `--protocols --std` and the
/// `extra` checks, asserts the rule every Lockstep TLS port keeps, and returns the findings for
/// the caller's own assertions on the `extra` checks.
pub fn assert_modern_tls(target: &str, extra: &[&str]) -> Findings {
    let tool = tool();
    let dir = tempfile::tempdir().expect("a temporary folder for testssl's JSON");
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
        ])
        .args(extra)
        .arg("--jsonfile")
        .arg(&json)
        .arg(target)
        .output()
        .expect("run testssl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let findings: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&json).unwrap_or_default())
            .unwrap_or_else(|e| panic!("testssl wrote no JSON ({e}); output:\n{text}"));
    let report = Findings { findings, text };
    let text = &report.text;
    for refused in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert_eq!(report.finding(refused), "not offered", "{refused}\n{text}");
    }
    for weak in [
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
        "cipherlist_AVERAGE",
    ] {
        assert_eq!(report.finding(weak), "not offered", "{weak}\n{text}");
    }
    assert!(report.finding("TLS1_2").starts_with("offered"), "{text}");
    assert!(report.finding("TLS1_3").starts_with("offered"), "{text}");
    assert!(
        report.finding("cipherlist_STRONG").starts_with("offered"),
        "{text}"
    );
    report
}
