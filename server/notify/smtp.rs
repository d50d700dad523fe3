//! E-mail through the site's SMTP relay, on `lettre`: STARTTLS or implicit TLS verified against
//! the site's roots (`[notify] ca_file`) for the host named in `server`, AUTH (PLAIN or LOGIN)
//! when a login is configured, plain SMTP only where the settings allowed it
//! (`config::notify::email`). The transport is built once, at start; each message is one
//! connection, all of it within the notify timeout.

use std::path::Path;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::config::{Email, SmtpTls};

/// One message to send.
pub struct Mail<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub subject: &'a str,
    pub body: &'a str,
}

pub use crate::config::notify::valid_address;

/// The relay of `[notify.email]`, ready to send.
pub struct Relay {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// `host:port`, for messages.
    server: String,
    /// The AUTH user, to say whose login a server refused.
    username: Option<String>,
    timeout: Duration,
}

impl Relay {
    /// The relay `email` describes, trusting the roots in `ca_file` for its TLS. Fails when the
    /// CA file cannot be read or holds no certificate.
    pub fn new(email: &Email, ca_file: &Path, timeout: Duration) -> Result<Relay, String> {
        let Some((host, port)) = email.host_port() else {
            return Err(format!(
                "notify.email.server `{}` is not HOST:PORT",
                email.server
            ));
        };
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(timeout));
        let mut builder = match email.tls {
            SmtpTls::StartTls => builder.tls(Tls::Required(tls_parameters(host, ca_file)?)),
            SmtpTls::Implicit => builder.tls(Tls::Wrapper(tls_parameters(host, ca_file)?)),
            SmtpTls::None => builder.tls(Tls::None),
        };
        if let Some(auth) = &email.auth {
            builder = builder.credentials(Credentials::new(
                auth.username.clone(),
                auth.password.clone(),
            ));
        }
        Ok(Relay {
            transport: builder.build(),
            server: email.server.clone(),
            username: email.auth.as_ref().map(|a| a.username.clone()),
            timeout,
        })
    }

    /// Sends `mail`, all within the timeout; the error says what the server or the TLS refused.
    pub async fn send(&self, mail: &Mail<'_>) -> Result<(), String> {
        let message = message(mail)?;
        let server = &self.server;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Err(_) => Err(format!(
                "SMTP server {server} did not finish within {:?}",
                self.timeout
            )),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.describe(&e)),
        }
    }

    fn describe(&self, e: &lettre::transport::smtp::Error) -> String {
        let server = &self.server;
        let why = chain(e);
        // 535: "authentication credentials invalid" (RFC 4954); 530/534/538: AUTH needed,
        // mechanism too weak, encryption required.
        match (e.status().map(|c| c.to_string()), &self.username) {
            (Some(code), Some(user)) if code == "535" => {
                format!("SMTP server {server} refused the login of `{user}`: {why}")
            }
            // lettre reports a refused handshake as a connection error; rustls' words tell it.
            _ if e.is_tls() || TLS_WORDS.iter().any(|w| why.contains(w)) => format!(
                "TLS with SMTP server {server} failed: {}",
                why.trim_start_matches("Connection error: ")
            ),
            // lettre has no `is_connection()`; its Display names the kind first.
            _ if why.starts_with("Connection error") => format!(
                "cannot connect to SMTP server {server}: {}",
                why.trim_start_matches("Connection error: ")
            ),
            _ => format!("SMTP server {server}: {why}"),
        }
    }
}

/// How rustls' errors begin when the peer's certificate or TLS is refused.
const TLS_WORDS: [&str; 3] = [
    "invalid peer certificate",
    "received fatal alert",
    "peer is incompatible",
];

/// Roots from `ca_file` only (no bundled or system store): the site decides whom to trust.
fn tls_parameters(host: &str, ca_file: &Path) -> Result<TlsParameters, String> {
    let named = |e: &dyn std::fmt::Display| format!("notify.ca_file {}: {e}", ca_file.display());
    let pem = std::fs::read(ca_file).map_err(|e| named(&e))?;
    let roots = Certificate::from_pem(&pem).map_err(|e| named(&e))?;
    TlsParameters::builder(host.to_string())
        .certificate_store(CertificateStore::None)
        .add_root_certificate(roots)
        .build_rustls()
        .map_err(|e| format!("TLS settings for SMTP server {host}: {}", chain(&e)))
}

/// A plain-text UTF-8 message; the subject loses control characters so it stays one header.
fn message(mail: &Mail<'_>) -> Result<Message, String> {
    let mailbox = |a: &str| {
        a.parse::<Mailbox>()
            .map_err(|e| format!("`{a}` is not a valid e-mail address: {e}"))
    };
    let subject: String = mail.subject.chars().filter(|c| !c.is_control()).collect();
    let mut builder = Message::builder()
        .from(mailbox(mail.from)?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for to in mail.to {
        builder = builder.to(mailbox(to)?);
    }
    builder
        .body(mail.body.to_string())
        .map_err(|e| format!("the message cannot be built: {e}"))
}

/// `e` and its sources, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_with_line_breaks_or_brackets_are_not_valid() {
        assert!(valid_address("ops@example.com"));
        assert!(!valid_address("ops@example.com>\r\nRCPT TO:<x@y"));
        assert!(!valid_address("nobody"));
    }

    #[test]
    fn a_message_keeps_its_subject_on_one_line() {
        let to = vec!["carl@dc.example".to_string()];
        let m = message(&Mail {
            from: "lockstep@dc.example",
            to: &to,
            subject: "gate\r\nBcc: eve@evil.example",
            body: "text",
        })
        .unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(!text.contains("\r\nBcc:"), "{text}");
        assert!(
            text.contains("Subject: gateBcc: eve@evil.example"),
            "{text}"
        );
    }
}
