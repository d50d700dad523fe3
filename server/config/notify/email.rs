//! `[notify.email]`: the SMTP relay notifications are mailed through, how to reach it safely, and
//! who gets what.
//!
//! ```toml
//! [notify.email]
//! server = "smtp.corp.example:587"   # HOST:PORT of the relay
//! tls = "starttls"                   # starttls (default: upgrade, refuse a server without it)
//!                                    # | implicit (TLS from the first byte, usually port 465)
//!                                    # | none (plain; only where allowed, see below)
//! username = "lockstep@corp.example" # AUTH (PLAIN or LOGIN, over TLS only); default: no AUTH
//! password_file = "/run/secrets/smtp"  # LOCKSTEP_NOTIFY_EMAIL_PASSWORD_FILE: the password, one
//!                                    # line (see `config::secret`); required with username
//! # allow_plain = true               # tls = "none" is refused unless this is true AND the server
//! # plain_relays = ["relay1.corp.example"]  # is loopback or listed here (host names or addresses)
//! from = "lockstep@corp.example"
//! to = ["dc-upgrades@corp.example"]
//! events = ["gate_waiting", "run_finished"]  # default: all
//! ```
//!
//! The relay's certificate is verified against `[notify] ca_file` (the roots notify trusts for
//! https webhooks), for the host name written in `server`.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{kinds, valid_address, NotifyKind};
use crate::config::error::SettingsError;
use crate::config::file::SettingsFile;
use crate::config::secret;

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS; a server that does not offer it is refused.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Implicit,
    /// No TLS: only a relay the site allowed explicitly (loopback or `plain_relays`).
    None,
}

impl SmtpTls {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::StartTls => "starttls",
            SmtpTls::Implicit => "implicit",
            SmtpTls::None => "none",
        }
    }

    fn parse(s: &str) -> Option<SmtpTls> {
        [SmtpTls::StartTls, SmtpTls::Implicit, SmtpTls::None]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// The login for the relay's AUTH.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpAuth {
    pub username: String,
    pub password: String,
}

/// Never shows the password (settings are logged and printed with `{:?}`).
impl std::fmt::Debug for SmtpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpAuth")
            .field("username", &self.username)
            .field("password", &"…")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// `host:port` of the SMTP relay.
    pub server: String,
    pub tls: SmtpTls,
    pub auth: Option<SmtpAuth>,
    pub from: String,
    pub to: Vec<String>,
    pub events: Vec<NotifyKind>,
}

impl Email {
    /// The host part of `server` (without the brackets of an IPv6 address) and its port.
    pub fn host_port(&self) -> Option<(&str, u16)> {
        split_server(&self.server)
    }
}

fn split_server(server: &str) -> Option<(&str, u16)> {
    let (host, port) = server.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

/// Whether `host` is this machine: `localhost` or a loopback address.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The `[notify.email]` table as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileEmail {
    server: Spanned<String>,
    tls: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    password_file: Option<Spanned<PathBuf>>,
    allow_plain: Option<Spanned<bool>>,
    plain_relays: Option<Spanned<Vec<String>>>,
    from: Spanned<String>,
    to: Spanned<Vec<String>>,
    events: Option<Vec<String>>,
}

/// The `[notify.email]` table at `table_span` of `file`, then the environment through `env`.
pub(crate) fn resolve(
    file: &SettingsFile,
    e: &FileEmail,
    table_span: std::ops::Range<usize>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Email, SettingsError> {
    let at = |setting: &str, span: std::ops::Range<usize>, message: String| {
        file.error_at(format!("notify.email.{setting}"), &span, message)
    };
    let server = e.server.get_ref();
    let Some((host, _)) = split_server(server) else {
        return Err(at(
            "server",
            e.server.span(),
            format!("`{server}` is not HOST:PORT"),
        ));
    };
    if !valid_address(e.from.get_ref()) {
        let from = e.from.get_ref();
        return Err(at(
            "from",
            e.from.span(),
            format!("`{from}` is not an e-mail address"),
        ));
    }
    if e.to.get_ref().is_empty() {
        return Err(at("to", e.to.span(), "needs at least one recipient".into()));
    }
    if let Some(bad) = e.to.get_ref().iter().find(|a| !valid_address(a)) {
        return Err(at(
            "to",
            e.to.span(),
            format!("`{bad}` is not an e-mail address"),
        ));
    }
    let tls = match &e.tls {
        None => SmtpTls::StartTls,
        Some(t) => SmtpTls::parse(t.get_ref()).ok_or_else(|| {
            at(
                "tls",
                t.span(),
                format!("`{}` is not one of starttls, implicit, none", t.get_ref()),
            )
        })?,
    };
    if tls == SmtpTls::None {
        plain_allowed(file, e, host, table_span.clone())?;
    }
    let auth = auth(file, e, tls, table_span.clone(), env)?;
    let events =
        kinds("notify.email", e.events.clone()).map_err(|err| err.at(file.line(&table_span)))?;
    Ok(Email {
        server: server.clone(),
        tls,
        auth,
        from: e.from.get_ref().clone(),
        to: e.to.get_ref().clone(),
        events,
    })
}

/// Plain SMTP carries every notification (and could carry a password) readable on the wire, so
/// it takes two decisions written down: `allow_plain = true`, and a relay that is this machine or
/// one the site lists in `plain_relays`.
fn plain_allowed(
    file: &SettingsFile,
    e: &FileEmail,
    host: &str,
    table_span: std::ops::Range<usize>,
) -> Result<(), SettingsError> {
    let tls_span = e.tls.as_ref().map(Spanned::span).unwrap_or(table_span);
    if !e.allow_plain.as_ref().is_some_and(|a| *a.get_ref()) {
        return Err(file.error_at(
            "notify.email.tls",
            &tls_span,
            "`none` sends mail unencrypted and is refused unless `allow_plain = true` and the server is loopback or listed in `plain_relays`; use starttls or implicit",
        ));
    }
    let listed = e
        .plain_relays
        .as_ref()
        .is_some_and(|r| r.get_ref().iter().any(|r| r.eq_ignore_ascii_case(host)));
    if !is_loopback(host) && !listed {
        return Err(file.error_at(
            "notify.email.server",
            &e.server.span(),
            format!("plain SMTP (tls = \"none\") to `{host}` is refused: it is neither loopback nor listed in `plain_relays`"),
        ));
    }
    Ok(())
}

/// The AUTH login: a username and its password file together, and never over plain SMTP.
fn auth(
    file: &SettingsFile,
    e: &FileEmail,
    tls: SmtpTls,
    table_span: std::ops::Range<usize>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<SmtpAuth>, SettingsError> {
    let password_file = match (env("LOCKSTEP_NOTIFY_EMAIL_PASSWORD_FILE"), &e.password_file) {
        (Some(p), _) => Some((PathBuf::from(p), None)),
        (None, Some(p)) => Some((p.get_ref().clone(), Some(p.span()))),
        (None, None) => None,
    };
    let Some(username) = &e.username else {
        return match password_file {
            None => Ok(None),
            Some((_, span)) => Err(file.error_at(
                "notify.email.username",
                &span.unwrap_or(table_span),
                "a password_file is given but no username to log in with",
            )),
        };
    };
    let name_span = username.span();
    if tls == SmtpTls::None {
        return Err(file.error_at(
            "notify.email.username",
            &name_span,
            "AUTH over plain SMTP (tls = \"none\") would send the password unencrypted; use starttls or implicit",
        ));
    }
    if username.get_ref().is_empty() || username.get_ref().contains(char::is_control) {
        return Err(file.error_at(
            "notify.email.username",
            &name_span,
            "must be a non-empty name on one line",
        ));
    }
    let Some((path, span)) = password_file else {
        return Err(file.error_at(
            "notify.email.password_file",
            &name_span,
            "a username needs a password_file holding its password",
        ));
    };
    let password = match span {
        Some(span) => secret::read_file("notify.email.password_file", &path)
            .map_err(|err| err.at(file.line(&span)))?,
        None => secret::read_file("LOCKSTEP_NOTIFY_EMAIL_PASSWORD_FILE", &path)?,
    };
    Ok(Some(SmtpAuth {
        username: username.get_ref().clone(),
        password,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env_of;
    use crate::config::Document;

    /// `[notify.email]` with `extra` lines, read from a real file (with `secret` as the password
    /// file beside it when given).
    fn load(extra: &str, secret: Option<&str>) -> Result<Email, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let secret_path = dir.path().join("smtp-password");
        if let Some(s) = secret {
            std::fs::write(&secret_path, s).unwrap();
        }
        let text = format!(
            "[notify.email]\nfrom = \"lockstep@dc.example\"\nto = [\"ops@dc.example\"]\n{}\n",
            extra.replace("SECRET", &secret_path.display().to_string())
        );
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        let document = Document::read(Some(&path))?;
        let notify = super::super::resolve(
            &document.file,
            document.settings.notify.as_ref(),
            &env_of(&[]),
        )?;
        Ok(notify.email.unwrap())
    }

    #[test]
    fn starttls_is_the_default_and_a_login_reads_its_password_file() {
        let e = load(
            "server = \"smtp.dc.example:587\"\nusername = \"lockstep\"\npassword_file = \"SECRET\"",
            Some("s3cret\n"),
        )
        .unwrap();
        assert_eq!(e.tls, SmtpTls::StartTls);
        assert_eq!(
            e.auth,
            Some(SmtpAuth {
                username: "lockstep".into(),
                password: "s3cret".into()
            })
        );
        assert!(!format!("{e:?}").contains("s3cret"), "Debug hides it");
        let shown = crate::config::notify::NotifyConfig {
            email: Some(e.clone()),
            ..Default::default()
        }
        .describe();
        let line = shown.iter().find(|(k, _, _)| *k == "email").unwrap();
        assert_eq!(
            line.2,
            "smtp://smtp.dc.example:587 tls=starttls as lockstep from lockstep@dc.example to ops@dc.example"
        );
        assert_eq!(e.host_port(), Some(("smtp.dc.example", 587)));
    }

    #[test]
    fn plain_smtp_is_refused_unless_allowed_naming_the_setting_and_line() {
        let e = load("server = \"127.0.0.1:25\"\ntls = \"none\"", None).unwrap_err();
        assert_eq!(e.setting, "notify.email.tls");
        assert_eq!(e.at.as_ref().map(|a| a.line), Some(5));
        assert!(e.message.contains("allow_plain = true"), "{e}");
    }

    #[test]
    fn allowed_plain_smtp_still_needs_a_loopback_or_listed_relay() {
        let e = load(
            "server = \"relay.dc.example:25\"\ntls = \"none\"\nallow_plain = true",
            None,
        )
        .unwrap_err();
        assert_eq!(e.setting, "notify.email.server");
        assert_eq!(e.at.as_ref().map(|a| a.line), Some(4));
        assert!(e.message.contains("`relay.dc.example`"), "{e}");
        for (server, listed) in [
            ("relay.dc.example:25", "[\"RELAY.dc.example\"]"),
            ("127.0.0.1:25", "[]"),
            ("localhost:25", "[]"),
            ("[::1]:25", "[]"),
        ] {
            let e = load(
                &format!("server = \"{server}\"\ntls = \"none\"\nallow_plain = true\nplain_relays = {listed}"),
                None,
            )
            .unwrap();
            assert_eq!(e.tls, SmtpTls::None, "{server}");
        }
    }

    #[test]
    fn a_login_over_plain_smtp_is_refused() {
        let e = load(
            "server = \"127.0.0.1:25\"\ntls = \"none\"\nallow_plain = true\nusername = \"u\"\npassword_file = \"SECRET\"",
            Some("pw"),
        )
        .unwrap_err();
        assert_eq!(e.setting, "notify.email.username");
        assert!(e.message.contains("unencrypted"), "{e}");
    }

    #[test]
    fn a_username_and_a_password_file_come_together() {
        let e = load("server = \"smtp:587\"\nusername = \"u\"", None).unwrap_err();
        assert_eq!(e.setting, "notify.email.password_file");
        let e = load(
            "server = \"smtp:587\"\npassword_file = \"SECRET\"",
            Some("pw"),
        )
        .unwrap_err();
        assert_eq!(e.setting, "notify.email.username");
        let e = load(
            "server = \"smtp:587\"\nusername = \"u\"\npassword_file = \"SECRET\"",
            Some("one\ntwo\n"),
        )
        .unwrap_err();
        assert_eq!(e.setting, "notify.email.password_file");
        assert!(
            e.message.contains("more than one line") && e.at.is_some(),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_tls_mode_and_a_bad_server_are_named() {
        let e = load("server = \"smtp:587\"\ntls = \"ssl\"", None).unwrap_err();
        assert_eq!(e.setting, "notify.email.tls");
        assert!(e.message.contains("starttls, implicit, none"), "{e}");
        let e = load("server = \"smtp\"", None).unwrap_err();
        assert_eq!(e.setting, "notify.email.server");
    }
}
