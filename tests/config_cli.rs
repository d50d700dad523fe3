//! `lockstep config check` and `lockstep completions` through the real binary: exit codes,
//! where each setting came from, and errors that name the setting.

use std::process::{Command, Output};

fn lockstep(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockstep"));
    cmd.args(args);
    // Only what each test sets: a LOCKSTEP_* variable in the caller's environment must not leak in.
    for (k, _) in std::env::vars() {
        if k.starts_with("LOCKSTEP_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run lockstep")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_valid_file_and_environment_show_each_setting_with_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lockstep.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9000\"\n[notify]\nmax_attempts = 3\n[[notify.webhook]]\nurl = \"https://chat.example/hook/SECRETPATH\"\nformat = \"slack\"\n",
    )
    .unwrap();
    let out = lockstep(
        &["config", "check", "--config", file.to_str().unwrap()],
        &[("LOCKSTEP_SESSION_IDLE_SECS", "600")],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("listen = 127.0.0.1:9000  (file)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("session_idle_secs = 600  (env LOCKSTEP_SESSION_IDLE_SECS)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("login_max_failures = 5  (default)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("notify.max_attempts = 3  (file)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("notify.webhook = slack https://chat.example/…  (file)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("SECRETPATH"),
        "a webhook URL's secret path was printed: {stdout}"
    );
}

#[test]
fn a_bad_environment_value_exits_non_zero_naming_the_variable() {
    let out = lockstep(
        &["config", "check"],
        &[("LOCKSTEP_LOGIN_LOCKOUT_SECS", "soon")],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("LOCKSTEP_LOGIN_LOCKOUT_SECS") && stderr.contains("soon"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn an_unknown_key_in_the_file_exits_non_zero_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "lisen = \"127.0.0.1:1\"\n").unwrap();
    let out = lockstep(
        &["config", "check", "--config", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("lisen"), "{}", text(&out.stderr));
}

#[test]
fn a_bad_value_in_the_file_is_named_with_the_file_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[notify]\nmax_attempts = 3\n\n[[notify.webhook]]\nurl = \"https://a.example/h\"\nformat = \"slack\"\n\n[[notify.webhook]]\nurl = \"ftp://b.example/h\"\nformat = \"slack\"\n",
    )
    .unwrap();
    let out = lockstep(
        &["config", "check", "--config", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let at = format!("{}:8: notify.webhook[1].url: ", file.display());
    assert!(stderr.contains(&at), "{stderr}");
}

#[test]
fn a_two_line_secret_file_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("metrics-token");
    std::fs::write(&token, "a-long-enough-metrics-token\nsecond-line\n").unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        format!("[metrics]\ntoken_file = \"{}\"\n", token.display()),
    )
    .unwrap();
    let out = lockstep(
        &["config", "check", "--config", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("metrics.token_file") && stderr.contains("more than one line"),
        "{stderr}"
    );
    assert!(!stderr.contains("a-long-enough"), "{stderr}");
}

#[test]
fn a_json_webhook_without_a_secret_exits_non_zero_naming_the_setting() {
    let out = lockstep(
        &["config", "check"],
        &[("LOCKSTEP_NOTIFY_WEBHOOK_URL", "http://127.0.0.1:9/hook")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("LOCKSTEP_NOTIFY_WEBHOOK.secret"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_missing_file_exits_non_zero_naming_it() {
    let out = lockstep(
        &["config", "check", "--config", "/nonexistent/lockstep.toml"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/lockstep.toml"));
}

#[test]
fn completions_are_written_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F _lockstep"),
        ("zsh", "#compdef lockstep"),
        ("fish", "complete -c lockstep"),
    ] {
        let out = lockstep(&["completions", shell], &[]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell} script lacks {marker:?}");
        assert!(
            script.contains("preflight") && script.contains("config"),
            "{shell} script lacks subcommands"
        );
    }
}

#[test]
fn an_unknown_shell_is_refused_listing_the_choices() {
    let out = lockstep(&["completions", "cmd.exe"], &[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("bash"), "{}", text(&out.stderr));
}

#[test]
fn single_sign_on_settings_are_shown_without_the_secret_and_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lockstep.toml");
    std::fs::write(
        &file,
        "[oidc]\nissuer = \"https://login.corp.example/realms/it\"\nclient_id = \"lockstep\"\n\
         redirect_url = \"https://lockstep.corp.example/login/sso/callback\"\n\
         [[oidc.role]]\nvalue = \"dc-admins\"\nrole = \"admin\"\n",
    )
    .unwrap();
    let out = lockstep(
        &["config", "check", "--config", file.to_str().unwrap()],
        &[("LOCKSTEP_OIDC_CLIENT_SECRET", "TOPSECRET")],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("oidc.issuer = https://login.corp.example/realms/it  (file)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("oidc.role = groups contains \"dc-admins\" -> admin  (file)"),
        "{stdout}"
    );
    assert!(stdout.contains("(secret set)"), "{stdout}");
    assert!(
        !stdout.contains("TOPSECRET"),
        "the client secret was printed: {stdout}"
    );

    std::fs::write(
        &file,
        "[oidc]\nissuer = \"https://login.corp.example\"\nclient_id = \"lockstep\"\n\
         redirect_url = \"https://lockstep.corp.example/login/sso/callback\"\n\
         [[oidc.role]]\nvalue = \"dc-admins\"\nrole = \"superuser\"\n",
    )
    .unwrap();
    let out = lockstep(
        &["config", "check", "--config", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("oidc.role[0].role") && stderr.contains("superuser"),
        "{stderr}"
    );
}

#[test]
fn the_metrics_access_is_shown_and_a_weak_token_is_refused() {
    let out = lockstep(&["config", "check"], &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("metrics.token_file = no token: open to whoever reaches the loopback listener  (default)"),
        "{stdout}"
    );
    let out = lockstep(
        &["config", "check"],
        &[("LOCKSTEP_METRICS_TOKEN", "a-long-enough-metrics-token")],
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("metrics.token_file = bearer token (set)  (env LOCKSTEP_METRICS_TOKEN)"),
        "{stdout}"
    );
    assert!(!stdout.contains("a-long-enough"), "{stdout}");
    let out = lockstep(&["config", "check"], &[("LOCKSTEP_METRICS_TOKEN", "short")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("LOCKSTEP_METRICS_TOKEN"));
}

#[test]
fn an_unreadable_oidc_ca_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lockstep.toml");
    std::fs::write(
        &file,
        "[oidc]\nissuer = \"https://login.corp.example\"\nclient_id = \"lockstep\"\n\
         redirect_url = \"https://lockstep.corp.example/login/sso/callback\"\n\
         ca_file = \"/nonexistent/ca.pem\"\n",
    )
    .unwrap();
    let out = lockstep(
        &["config", "check", "--config", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("oidc.ca_file") && stderr.contains("/nonexistent/ca.pem"),
        "{stderr}"
    );
}
