//! The notification settings as `crate::notify` uses them: the section itself is parsed with
//! the rest of the settings file (`crate::config::notify`); what is here turns a configured
//! change-ticket template into the link a notification carries.

pub use crate::config::notify::{redacted, Email, NotifyConfig, SmtpAuth, SmtpTls, Webhook};

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
