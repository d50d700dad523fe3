//! `lockstep config check` (show the effective settings and where each came from) and
//! `lockstep completions` (shell completion scripts).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{Config, Document, Overrides, Settings};

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCmd {
    /// Load the configuration file and `LOCKSTEP_*` environment variables as `lockstep serve`
    /// would, print every effective setting with where it came from (default, file or env), and
    /// exit non-zero naming the setting if anything is wrong.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// TOML configuration file (see README "Configuration").
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// One setting: its file key, its environment variable, and how to show the effective value.
struct Setting {
    key: &'static str,
    var: &'static str,
    show: fn(&Config) -> String,
}

const SETTINGS: &[Setting] = &[
    Setting {
        key: "listen",
        var: "LOCKSTEP_LISTEN",
        show: |c| c.listen.to_string(),
    },
    Setting {
        key: "data_dir",
        var: "LOCKSTEP_DATA_DIR",
        show: |c| c.data_dir.display().to_string(),
    },
    Setting {
        key: "db",
        var: "LOCKSTEP_DB",
        show: |c| c.db.display().to_string(),
    },
    Setting {
        key: "session_idle_secs",
        var: "LOCKSTEP_SESSION_IDLE_SECS",
        show: |c| c.session_idle_secs.to_string(),
    },
    Setting {
        key: "session_absolute_secs",
        var: "LOCKSTEP_SESSION_ABSOLUTE_SECS",
        show: |c| c.session_absolute_secs.to_string(),
    },
    Setting {
        key: "login_max_failures",
        var: "LOCKSTEP_LOGIN_MAX_FAILURES",
        show: |c| c.login_max_failures.to_string(),
    },
    Setting {
        key: "login_lockout_secs",
        var: "LOCKSTEP_LOGIN_LOCKOUT_SECS",
        show: |c| c.login_lockout_secs.to_string(),
    },
    Setting {
        key: "login_max_failures_per_address",
        var: "LOCKSTEP_LOGIN_MAX_FAILURES_PER_ADDRESS",
        show: |c| c.login_max_failures_per_address.to_string(),
    },
    Setting {
        key: "tls_cert",
        var: "LOCKSTEP_TLS_CERT",
        show: |c| {
            c.tls
                .as_ref()
                .map(|t| t.cert.display().to_string())
                .unwrap_or_else(|| "(none)".into())
        },
    },
    Setting {
        key: "tls_key",
        var: "LOCKSTEP_TLS_KEY",
        show: |c| {
            c.tls
                .as_ref()
                .map(|t| t.key.display().to_string())
                .unwrap_or_else(|| "(none)".into())
        },
    },
    Setting {
        key: "tls_self_signed",
        var: "LOCKSTEP_TLS_SELF_SIGNED",
        show: |c| c.tls_self_signed.to_string(),
    },
    Setting {
        key: "agents.facts_interval_secs",
        var: "LOCKSTEP_FACTS_INTERVAL_SECS",
        show: |c| c.facts_interval_secs.to_string(),
    },
    Setting {
        key: "agents.facts_stale_secs",
        var: "LOCKSTEP_FACTS_STALE_SECS",
        show: |c| c.facts_stale_secs.to_string(),
    },
];

pub fn run_config(cmd: ConfigCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCmd::Check(args) => Ok(check(args.config.as_deref(), &|k| std::env::var(k).ok())),
    }
}

/// Prints the report on stdout (or the error on stderr) and returns the exit code: 0 when the
/// configuration loads, 1 when it does not.
pub fn check(file: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> ExitCode {
    match report(file, env) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: configuration is not valid: {message}");
            ExitCode::from(1)
        }
    }
}

/// The effective settings, one per line: `key = value  (source)`. The file is parsed once: the
/// same parse gives the settings and says which keys it sets.
pub fn report(file: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let parsed = Document::read(file).map_err(|e| e.to_string())?;
    let settings =
        Settings::resolve(&parsed, env, &Overrides::default()).map_err(|e| e.to_string())?;
    let config = &settings.server;
    let mut out = String::new();
    match file {
        Some(p) => out.push_str(&format!("# configuration file: {}\n", p.display())),
        None => out.push_str("# no configuration file (defaults and environment only)\n"),
    }
    for s in SETTINGS {
        let source = source_of(s.key, s.var, &parsed, env);
        out.push_str(&format!("{} = {}  ({source})\n", s.key, (s.show)(config)));
    }
    let source = source_of(
        "agents.facts_stale_secs",
        "LOCKSTEP_FACTS_STALE_SECS",
        &parsed,
        env,
    );
    out.push_str(&format!(
        "agents.facts_stale_secs = {}  ({source})\n",
        config.facts_stale_secs
    ));
    for (key, var, value) in settings.notify.describe() {
        let source = source_of(&format!("notify.{key}"), var, &parsed, env);
        out.push_str(&format!("notify.{key} = {value}  ({source})\n"));
    }
    for (key, value) in settings.site.describe() {
        out.push_str(&format!("{key} = {value}\n"));
    }
    match &settings.oidc {
        Some(oidc) => {
            // Builds the provider client as serve does (reads oidc.ca_file); no network.
            crate::web::auth::oidc::Sso::new(oidc.clone()).map_err(|e| e.to_string())?;
            for (key, var, value) in oidc.describe() {
                let source = source_of(&format!("oidc.{key}"), var, &parsed, env);
                out.push_str(&format!("oidc.{key} = {value}  ({source})\n"));
            }
        }
        None => out.push_str("oidc = (single sign-on off)  (default)\n"),
    }
    let metrics_source = if env("LOCKSTEP_METRICS_TOKEN").is_some() {
        "env LOCKSTEP_METRICS_TOKEN".to_string()
    } else if env("LOCKSTEP_METRICS_TOKEN_FILE").is_some() {
        "env LOCKSTEP_METRICS_TOKEN_FILE".to_string()
    } else if parsed.sets("metrics.token_file") {
        "file".to_string()
    } else {
        "default".to_string()
    };
    let metrics_access = match (&settings.metrics.token, config.listen.ip().is_loopback()) {
        (Some(_), _) => "bearer token (set)",
        (None, true) => "no token: open to whoever reaches the loopback listener",
        (None, false) => "no token on a network listener: /metrics answers 403",
    };
    out.push_str(&format!(
        "metrics.token_file = {metrics_access}  ({metrics_source})\n"
    ));
    Ok(out)
}

fn source_of(
    key: &str,
    var: &str,
    file: &Document,
    env: &dyn Fn(&str) -> Option<String>,
) -> String {
    if env(var).is_some() {
        format!("env {var}")
    } else if file.sets(key) {
        "file".to_string()
    } else {
        "default".to_string()
    }
}

/// Writes the completion script for `shell` on stdout.
pub fn run_completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    use clap::CommandFactory;
    let mut cmd = super::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "lockstep", &mut script);
    // A closed pipe (`| head`) is the reader's choice, not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
    Ok(ExitCode::SUCCESS)
}
