//! Notification settings: the `[notify]` table of the settings file, then
//! `LOCKSTEP_NOTIFY_*` environment variables. `crate::notify` delivers by them; the words a
//! receiver can ask for ([`NotifyKind`]) and the bodies it can take ([`Format`]) are defined
//! here, with the settings that name them.
//!
//! ```toml
//! [notify]
//! max_attempts = 8             # LOCKSTEP_NOTIFY_MAX_ATTEMPTS (1..=100)
//! backoff_initial_ms = 2000    # LOCKSTEP_NOTIFY_BACKOFF_INITIAL_MS (doubles each retry)
//! backoff_max_ms = 300000      # LOCKSTEP_NOTIFY_BACKOFF_MAX_MS (cap)
//! timeout_secs = 10            # LOCKSTEP_NOTIFY_TIMEOUT_SECS (per attempt)
//! ca_file = "/etc/ssl/certs/ca-certificates.crt"  # LOCKSTEP_NOTIFY_CA_FILE (roots for https)
//! ticket_url = "https://itsm.corp.example/change/{ticket}"  # LOCKSTEP_NOTIFY_TICKET_URL: the
//!                              # change ticket's link in notifications; default: none
//!
//! [[notify.webhook]]           # LOCKSTEP_NOTIFY_WEBHOOK_URL/_FORMAT/_SECRET add one more
//! url = "https://hooks.example/lockstep"
//! format = "json"              # json (signed) | teams | slack
//! secret = "shared secret"     # required for json; signs every format when given
//! events = ["gate_waiting", "step_failed", "needs_operator", "run_finished"]  # default: all
//!                              # of these four; "run_status" (every run status change, with the
//!                              # change ticket, for change-management systems) only when listed
//!
//! [notify.email]               # SMTP: STARTTLS (default) or implicit TLS, AUTH; see `email`
//! server = "smtp.corp.example:587"
//! tls = "starttls"             # starttls | implicit | none (refused unless allowed, see `email`)
//! username = "lockstep@corp.example"   # AUTH; password_file holds the password
//! password_file = "/run/secrets/smtp"  # LOCKSTEP_NOTIFY_EMAIL_PASSWORD_FILE
//! from = "lockstep@corp.example"
//! to = ["dc-upgrades@corp.example"]
//! events = ["gate_waiting", "run_finished"]  # default: all
//! ```
//!
//! `ca_file` holds the roots for https webhooks and for the SMTP relay's TLS alike.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::error::SettingsError;
use super::file::{number, SettingsFile};

pub mod email;

pub use email::{Email, SmtpAuth, SmtpTls};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// What a receiver can be told about (its `events`).
pub enum NotifyKind {
    GateWaiting,
    StepFailed,
    NeedsOperator,
    RunFinished,
    /// Any change of a run's status (for change-management systems; never a default).
    RunStatus,
}

impl NotifyKind {
    pub const ALL: [NotifyKind; 4] = [
        NotifyKind::GateWaiting,
        NotifyKind::StepFailed,
        NotifyKind::NeedsOperator,
        NotifyKind::RunFinished,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::GateWaiting => "gate_waiting",
            NotifyKind::StepFailed => "step_failed",
            NotifyKind::NeedsOperator => "needs_operator",
            NotifyKind::RunFinished => "run_finished",
            NotifyKind::RunStatus => "run_status",
        }
    }

    /// `ALL` (the default for a receiver) and `run_status`, which must be asked for.
    pub fn parse(s: &str) -> Option<NotifyKind> {
        NotifyKind::ALL
            .into_iter()
            .chain([NotifyKind::RunStatus])
            .find(|k| k.as_str() == s)
    }
}

/// The body a webhook receiver takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Teams,
    Slack,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Teams => "teams",
            Format::Slack => "slack",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        [Format::Json, Format::Teams, Format::Slack]
            .into_iter()
            .find(|f| f.as_str() == s)
    }
}

pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
pub const DEFAULT_BACKOFF_INITIAL_MS: u64 = 2_000;
pub const DEFAULT_BACKOFF_MAX_MS: u64 = 300_000;
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    pub max_attempts: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub timeout_secs: u64,
    pub ca_file: PathBuf,
    pub webhooks: Vec<Webhook>,
    pub email: Option<Email>,
    /// Link template for a run's change ticket; `{ticket}` is replaced by the ticket number.
    pub ticket_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: reqwest::Url,
    pub format: Format,
    pub secret: Option<String>,
    pub events: Vec<NotifyKind>,
}

/// The `[notify]` table as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileNotify {
    max_attempts: Option<Spanned<u32>>,
    backoff_initial_ms: Option<Spanned<u64>>,
    backoff_max_ms: Option<Spanned<u64>>,
    timeout_secs: Option<Spanned<u64>>,
    ca_file: Option<PathBuf>,
    ticket_url: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    webhook: Vec<Spanned<FileWebhook>>,
    email: Option<Spanned<email::FileEmail>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileWebhook {
    url: String,
    format: Option<String>,
    secret: Option<String>,
    events: Option<Vec<String>>,
}

fn err(setting: impl Into<String>, message: impl Into<String>) -> SettingsError {
    SettingsError::new(setting, message)
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff_initial_ms: DEFAULT_BACKOFF_INITIAL_MS,
            backoff_max_ms: DEFAULT_BACKOFF_MAX_MS,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            ca_file: PathBuf::from(DEFAULT_CA_FILE),
            webhooks: Vec::new(),
            email: None,
            ticket_url: None,
        }
    }
}

/// The `[notify]` table as written in `file`, then the environment through `env`.
pub(crate) fn resolve(
    file: &SettingsFile,
    table: Option<&FileNotify>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<NotifyConfig, SettingsError> {
    let empty = FileNotify::default();
    let fc = table.unwrap_or(&empty);
    let max_attempts = number(
        env,
        "notify.max_attempts",
        "LOCKSTEP_NOTIFY_MAX_ATTEMPTS",
        fc.max_attempts.as_ref(),
        u64::from(DEFAULT_MAX_ATTEMPTS),
    )?;
    if !(1..=100).contains(&max_attempts.value) {
        return Err(file.refuse(
            "notify.max_attempts",
            &max_attempts.origin,
            "must be between 1 and 100",
        ));
    }
    let backoff_initial = number(
        env,
        "notify.backoff_initial_ms",
        "LOCKSTEP_NOTIFY_BACKOFF_INITIAL_MS",
        fc.backoff_initial_ms.as_ref(),
        DEFAULT_BACKOFF_INITIAL_MS,
    )?;
    let backoff_max = number(
        env,
        "notify.backoff_max_ms",
        "LOCKSTEP_NOTIFY_BACKOFF_MAX_MS",
        fc.backoff_max_ms.as_ref(),
        DEFAULT_BACKOFF_MAX_MS,
    )?;
    let (backoff_initial_ms, backoff_max_ms) = (backoff_initial.value, backoff_max.value);
    if backoff_initial_ms == 0 || backoff_max_ms < backoff_initial_ms {
        return Err(file.refuse(
            "notify.backoff_max_ms",
            &backoff_max.origin,
            "backoff_initial_ms must be at least 1 and backoff_max_ms at least backoff_initial_ms",
        ));
    }
    let timeout = number(
        env,
        "notify.timeout_secs",
        "LOCKSTEP_NOTIFY_TIMEOUT_SECS",
        fc.timeout_secs.as_ref(),
        DEFAULT_TIMEOUT_SECS,
    )?;
    if timeout.value == 0 {
        return Err(file.refuse("notify.timeout_secs", &timeout.origin, "must be at least 1"));
    }
    let timeout_secs = timeout.value;
    let ca_file = env("LOCKSTEP_NOTIFY_CA_FILE")
        .map(PathBuf::from)
        .or_else(|| fc.ca_file.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CA_FILE));
    let mut webhooks = Vec::new();
    for (i, w) in fc.webhook.iter().enumerate() {
        let hook = webhook(&format!("notify.webhook[{i}]"), w.get_ref().clone())
            .map_err(|e| e.at(file.line(&w.span())))?;
        webhooks.push(hook);
    }
    if let Some(url) = env("LOCKSTEP_NOTIFY_WEBHOOK_URL") {
        webhooks.push(webhook(
            "LOCKSTEP_NOTIFY_WEBHOOK",
            FileWebhook {
                url,
                format: env("LOCKSTEP_NOTIFY_WEBHOOK_FORMAT"),
                secret: env("LOCKSTEP_NOTIFY_WEBHOOK_SECRET"),
                events: None,
            },
        )?);
    }
    let email = match &fc.email {
        None => None,
        Some(spanned) => Some(email::resolve(
            file,
            spanned.get_ref(),
            spanned.span(),
            env,
        )?),
    };
    let ticket_url = match (env("LOCKSTEP_NOTIFY_TICKET_URL"), &fc.ticket_url) {
        (Some(t), _) => Some((t, None)),
        (None, Some(t)) => Some((t.get_ref().clone(), file.line(&t.span()))),
        (None, None) => None,
    };
    if let Some((t, at)) = &ticket_url {
        let sample = t.replace("{ticket}", "CHG0000001");
        let ok = t.contains("{ticket}")
            && reqwest::Url::parse(&sample)
                .is_ok_and(|u| u.scheme() == "https" || u.scheme() == "http");
        if !ok {
            return Err(err(
                "notify.ticket_url",
                format!("`{t}` must be an http(s) URL containing {{ticket}}"),
            )
            .at(at.clone()));
        }
    }
    let ticket_url = ticket_url.map(|(t, _)| t);
    Ok(NotifyConfig {
        ticket_url,
        email,
        max_attempts: max_attempts.value as u32,
        backoff_initial_ms,
        backoff_max_ms,
        timeout_secs,
        ca_file,
        webhooks,
    })
}

impl NotifyConfig {
    /// `(file key, environment variable, shown value)` for `lockstep config check`; secrets are
    /// never shown.
    pub fn describe(&self) -> Vec<(&'static str, &'static str, String)> {
        let hooks = if self.webhooks.is_empty() {
            "(none)".to_string()
        } else {
            self.webhooks
                .iter()
                .map(|w| {
                    format!(
                        "{} {}{}",
                        w.format.as_str(),
                        redacted(&w.url),
                        if w.secret.is_some() { " signed" } else { "" }
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        vec![
            (
                "max_attempts",
                "LOCKSTEP_NOTIFY_MAX_ATTEMPTS",
                self.max_attempts.to_string(),
            ),
            (
                "backoff_initial_ms",
                "LOCKSTEP_NOTIFY_BACKOFF_INITIAL_MS",
                self.backoff_initial_ms.to_string(),
            ),
            (
                "backoff_max_ms",
                "LOCKSTEP_NOTIFY_BACKOFF_MAX_MS",
                self.backoff_max_ms.to_string(),
            ),
            (
                "timeout_secs",
                "LOCKSTEP_NOTIFY_TIMEOUT_SECS",
                self.timeout_secs.to_string(),
            ),
            (
                "ca_file",
                "LOCKSTEP_NOTIFY_CA_FILE",
                self.ca_file.display().to_string(),
            ),
            ("webhook", "LOCKSTEP_NOTIFY_WEBHOOK_URL", hooks),
            (
                "ticket_url",
                "LOCKSTEP_NOTIFY_TICKET_URL",
                self.ticket_url.clone().unwrap_or_else(|| "(none)".into()),
            ),
            (
                "email",
                "LOCKSTEP_NOTIFY_EMAIL",
                match &self.email {
                    None => "(none)".to_string(),
                    Some(e) => format!(
                        "smtp://{} tls={}{} from {} to {}",
                        e.server,
                        e.tls.as_str(),
                        match &e.auth {
                            Some(a) => format!(" as {}", a.username),
                            None => String::new(),
                        },
                        e.from,
                        e.to.join(", ")
                    ),
                },
            ),
        ]
    }
}

fn webhook(setting: &str, w: FileWebhook) -> Result<Webhook, SettingsError> {
    let url: reqwest::Url = w.url.parse().map_err(|e| {
        err(
            format!("{setting}.url"),
            format!("`{}` is not a URL: {e}", w.url),
        )
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(err(format!("{setting}.url"), "must be http:// or https://"));
    }
    let format = match w.format.as_deref() {
        None => Format::Json,
        Some(f) => Format::parse(f).ok_or_else(|| {
            err(
                format!("{setting}.format"),
                format!("`{f}` is not one of json, teams, slack"),
            )
        })?,
    };
    let secret = w.secret.filter(|s| !s.is_empty());
    if format == Format::Json && secret.is_none() {
        return Err(err(
            format!("{setting}.secret"),
            "a json webhook needs a shared secret to sign with",
        ));
    }
    let events = kinds(setting, w.events)?;
    Ok(Webhook {
        url,
        format,
        secret,
        events,
    })
}

fn kinds(setting: &str, names: Option<Vec<String>>) -> Result<Vec<NotifyKind>, SettingsError> {
    match names {
        None => Ok(NotifyKind::ALL.to_vec()),
        Some(names) => names
            .iter()
            .map(|n| {
                NotifyKind::parse(n).ok_or_else(|| {
                    err(
                        format!("{setting}.events"),
                        format!("`{n}` is not one of gate_waiting, step_failed, needs_operator, run_finished, run_status"),
                    )
                })
            })
            .collect(),
    }
}

/// Whether `address` is an e-mail address safe to put in an SMTP command (no line breaks or angle
/// brackets) that the mail library accepts.
pub fn valid_address(address: &str) -> bool {
    let ok_chars = !address
        .chars()
        .any(|c| c.is_control() || c == '<' || c == '>' || c == ' ');
    ok_chars
        && address
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        && address.parse::<lettre::Address>().is_ok()
}

/// Scheme and host only: Teams and Slack webhook URLs carry their secret in the path.
pub fn redacted(url: &reqwest::Url) -> String {
    match url.port() {
        Some(p) => format!("{}://{}:{p}/…", url.scheme(), url.host_str().unwrap_or("")),
        None => format!("{}://{}/…", url.scheme(), url.host_str().unwrap_or("")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env_of;
    use crate::config::Document;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<NotifyConfig, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        let document = Document::read(Some(&path))?;
        resolve(
            &document.file,
            document.settings.notify.as_ref(),
            &env_of(env),
        )
    }
    #[test]
    fn no_notify_table_gives_the_defaults_and_no_webhooks() {
        assert_eq!(
            load("listen = \"127.0.0.1:1\"\n", &[]).unwrap(),
            NotifyConfig::default()
        );
    }

    #[test]
    fn a_json_webhook_without_a_secret_is_refused_naming_it() {
        let e = load("[[notify.webhook]]\nurl = \"http://127.0.0.1:9/h\"\n", &[]).unwrap_err();
        assert_eq!(e.setting, "notify.webhook[0].secret");
    }

    #[test]
    fn an_unknown_event_name_is_refused_naming_it() {
        let e = load(
            "[[notify.webhook]]\nurl = \"https://x/h\"\nformat = \"slack\"\nevents = [\"gate\"]\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.setting, "notify.webhook[0].events");
        assert!(e.message.contains("`gate`"));
    }

    #[test]
    fn the_environment_overrides_the_file_and_adds_a_webhook() {
        let c = load(
            "[notify]\nmax_attempts = 3\n",
            &[
                ("LOCKSTEP_NOTIFY_MAX_ATTEMPTS", "5"),
                (
                    "LOCKSTEP_NOTIFY_WEBHOOK_URL",
                    "https://outlook.example/webhook/abc",
                ),
                ("LOCKSTEP_NOTIFY_WEBHOOK_FORMAT", "teams"),
            ],
        )
        .unwrap();
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.webhooks.len(), 1);
        assert_eq!(c.webhooks[0].format, Format::Teams);
    }

    #[test]
    fn the_description_never_shows_the_secret_or_the_url_path() {
        let c = load(
            "[[notify.webhook]]\nurl = \"https://h.example/secret-path\"\nsecret = \"hush\"\n",
            &[],
        )
        .unwrap();
        let text = format!("{:?}", c.describe());
        assert!(
            !text.contains("hush") && !text.contains("secret-path"),
            "{text}"
        );
    }

    #[test]
    fn a_bad_webhook_names_its_index_and_its_line() {
        let e = load(
            "[[notify.webhook]]\nurl = \"https://a/h\"\nformat = \"slack\"\n\n[[notify.webhook]]\nurl = \"ftp://b/h\"\nformat = \"slack\"\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.setting, "notify.webhook[1].url");
        assert_eq!(e.at.as_ref().map(|a| a.line), Some(5));
    }
}
