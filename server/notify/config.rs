//! Notification settings: the `[notify]` table of the configuration file, then
//! `LOCKSTEP_NOTIFY_*` environment variables.
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
//! [notify.email]               # plain SMTP to a relay (no TLS, no authentication)
//! server = "smtp.corp.example:25"
//! from = "lockstep@corp.example"
//! to = ["dc-upgrades@corp.example"]
//! events = ["gate_waiting", "run_finished"]  # default: all
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::payload::{Format, NotifyKind};

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
pub struct Email {
    /// `host:port` of the SMTP relay.
    pub server: String,
    pub from: String,
    pub to: Vec<String>,
    pub events: Vec<NotifyKind>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: reqwest::Url,
    pub format: Format,
    pub secret: Option<String>,
    pub events: Vec<NotifyKind>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNotify {
    max_attempts: Option<u32>,
    backoff_initial_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
    timeout_secs: Option<u64>,
    ca_file: Option<PathBuf>,
    ticket_url: Option<String>,
    #[serde(default)]
    webhook: Vec<FileWebhook>,
    email: Option<FileEmail>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEmail {
    server: String,
    from: String,
    to: Vec<String>,
    events: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWebhook {
    url: String,
    format: Option<String>,
    secret: Option<String>,
    events: Option<Vec<String>>,
}

/// What is wrong, naming the setting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{setting}: {message}")]
pub struct NotifyConfigError {
    pub setting: String,
    pub message: String,
}

fn err(setting: impl Into<String>, message: impl Into<String>) -> NotifyConfigError {
    NotifyConfigError {
        setting: setting.into(),
        message: message.into(),
    }
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

impl NotifyConfig {
    /// Reads the `[notify]` table of `file` (if any), then the environment through `env`.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<NotifyConfig, NotifyConfigError> {
        let fc: FileNotify = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| err(path.display().to_string(), e.to_string()))?;
                let table: toml::Table = text
                    .parse()
                    .map_err(|e: toml::de::Error| err(path.display().to_string(), e.to_string()))?;
                match table.get("notify") {
                    Some(v) => v
                        .clone()
                        .try_into()
                        .map_err(|e: toml::de::Error| err("notify", e.to_string()))?,
                    None => FileNotify::default(),
                }
            }
            None => FileNotify::default(),
        };
        let num = |name: &str, var: &str, file: Option<u64>, default: u64| match env(var) {
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map_err(|_| err(var, format!("`{v}` is not a whole number ({name})"))),
            None => Ok(file.unwrap_or(default)),
        };
        let max_attempts = num(
            "notify.max_attempts",
            "LOCKSTEP_NOTIFY_MAX_ATTEMPTS",
            fc.max_attempts.map(u64::from),
            u64::from(DEFAULT_MAX_ATTEMPTS),
        )?;
        if !(1..=100).contains(&max_attempts) {
            return Err(err("notify.max_attempts", "must be between 1 and 100"));
        }
        let backoff_initial_ms = num(
            "notify.backoff_initial_ms",
            "LOCKSTEP_NOTIFY_BACKOFF_INITIAL_MS",
            fc.backoff_initial_ms,
            DEFAULT_BACKOFF_INITIAL_MS,
        )?;
        let backoff_max_ms = num(
            "notify.backoff_max_ms",
            "LOCKSTEP_NOTIFY_BACKOFF_MAX_MS",
            fc.backoff_max_ms,
            DEFAULT_BACKOFF_MAX_MS,
        )?;
        if backoff_initial_ms == 0 || backoff_max_ms < backoff_initial_ms {
            return Err(err(
                "notify.backoff_max_ms",
                "backoff_initial_ms must be at least 1 and backoff_max_ms at least backoff_initial_ms",
            ));
        }
        let timeout_secs = num(
            "notify.timeout_secs",
            "LOCKSTEP_NOTIFY_TIMEOUT_SECS",
            fc.timeout_secs,
            DEFAULT_TIMEOUT_SECS,
        )?;
        if timeout_secs == 0 {
            return Err(err("notify.timeout_secs", "must be at least 1"));
        }
        let ca_file = env("LOCKSTEP_NOTIFY_CA_FILE")
            .map(PathBuf::from)
            .or(fc.ca_file)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CA_FILE));
        let mut webhooks = Vec::new();
        for (i, w) in fc.webhook.into_iter().enumerate() {
            webhooks.push(webhook(&format!("notify.webhook[{i}]"), w)?);
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
        let email = match fc.email {
            None => None,
            Some(e) => {
                if e.server
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .is_none()
                {
                    return Err(err(
                        "notify.email.server",
                        format!("`{}` is not HOST:PORT", e.server),
                    ));
                }
                if !super::smtp::valid_address(&e.from) {
                    return Err(err(
                        "notify.email.from",
                        format!("`{}` is not an e-mail address", e.from),
                    ));
                }
                if e.to.is_empty() {
                    return Err(err("notify.email.to", "needs at least one recipient"));
                }
                if let Some(bad) = e.to.iter().find(|a| !super::smtp::valid_address(a)) {
                    return Err(err(
                        "notify.email.to",
                        format!("`{bad}` is not an e-mail address"),
                    ));
                }
                Some(Email {
                    server: e.server,
                    from: e.from,
                    to: e.to,
                    events: kinds("notify.email", e.events)?,
                })
            }
        };
        let ticket_url = env("LOCKSTEP_NOTIFY_TICKET_URL").or(fc.ticket_url);
        if let Some(t) = &ticket_url {
            let sample = t.replace("{ticket}", "CHG0000001");
            let ok = t.contains("{ticket}")
                && reqwest::Url::parse(&sample)
                    .is_ok_and(|u| u.scheme() == "https" || u.scheme() == "http");
            if !ok {
                return Err(err(
                    "notify.ticket_url",
                    format!("`{t}` must be an http(s) URL containing {{ticket}}"),
                ));
            }
        }
        Ok(NotifyConfig {
            ticket_url,
            email,
            max_attempts: max_attempts as u32,
            backoff_initial_ms,
            backoff_max_ms,
            timeout_secs,
            ca_file,
            webhooks,
        })
    }

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
                    Some(e) => {
                        format!("smtp://{} from {} to {}", e.server, e.from, e.to.join(", "))
                    }
                },
            ),
        ]
    }
}

fn webhook(setting: &str, w: FileWebhook) -> Result<Webhook, NotifyConfigError> {
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

fn kinds(setting: &str, names: Option<Vec<String>>) -> Result<Vec<NotifyKind>, NotifyConfigError> {
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

impl NotifyConfig {
    /// The link for change ticket `number` (percent-encoded into the template), if configured.
    pub fn ticket_link(&self, number: &str) -> Option<String> {
        self.ticket_url.as_deref().map(|t| ticket_link(t, number))
    }
}

/// `template` with `{ticket}` replaced by `number`, percent-encoded.
pub fn ticket_link(template: &str, number: &str) -> String {
    let mut encoded = String::new();
    for b in number.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    template.replace("{ticket}", &encoded)
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

    fn load(text: &str, env: &[(&str, &str)]) -> Result<NotifyConfig, NotifyConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NotifyConfig::load(Some(&path), &|k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
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
}
