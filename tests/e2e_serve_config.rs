//! `lockstep serve` and `lockstep config check` with the site settings, as processes: a bad
//! `[sql]` or `[probes]` setting stops `serve` before it listens or creates anything, with a
//! message naming the setting; `config check` shows the site without its secrets.

use std::process::Command;

fn lockstep(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("LOCKSTEP_SQL_PASSWORD")
        .env_remove("LOCKSTEP_SIMULATED_SITE")
        .output()
        .expect("lockstep runs")
}

#[test]
fn serve_refuses_a_sql_server_whose_password_variable_is_not_set_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("lockstep.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[sql.servers.DC1]\naddress = \"dc1.example.com\"\n",
            data.display()
        ),
    )
    .unwrap();
    for args in [&["serve"][..], &["config", "check"][..]] {
        let out = lockstep(&config, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains("sql.servers.DC1") && stderr.contains("LOCKSTEP_SQL_PASSWORD"),
            "{args:?}: {stderr}"
        );
    }
    assert!(!data.exists(), "nothing was created");
}

#[test]
fn config_check_shows_the_site_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("sql-password");
    std::fs::write(&secret, "Tr0ub4dor&3\n").unwrap();
    let config = dir.path().join("lockstep.toml");
    std::fs::write(
        &config,
        format!(
            "[sql]\npassword_file = \"{}\"\n[sql.servers.DC1]\naddress = \"dc1.example.com:1433\"\n[probes.resolve]\n\"backup.example.com\" = \"10.0.0.5:443\"\n",
            secret.display()
        ),
    )
    .unwrap();
    let out = lockstep(&config, &["config", "check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("sql.servers.DC1 = dc1.example.com:1433 as lockstep (encryption required"),
        "{stdout}"
    );
    assert!(
        stdout.contains("probes.resolve.\"backup.example.com\" = 10.0.0.5:443"),
        "{stdout}"
    );
    assert!(stdout.contains("simulated_site = false"), "{stdout}");
    assert!(!stdout.contains("Tr0ub4dor"), "{stdout}");
}
