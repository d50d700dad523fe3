//! Single sign-on settings: the `[oidc]` table of the settings file, then `LOCKSTEP_OIDC_*`
//! environment variables; `crate::web::auth::oidc` signs people in by them. No `[oidc]` table
//! and no `LOCKSTEP_OIDC_ISSUER`: SSO is off and the login page shows only the local-account
//! form. The client secret file follows the one secret rule (`super::secret`).
//!
//! ```toml
//! [oidc]
//! issuer = "https://login.corp.example/realms/it"   # LOCKSTEP_OIDC_ISSUER
//! client_id = "lockstep"                            # LOCKSTEP_OIDC_CLIENT_ID
//! client_secret_file = "/etc/lockstep/oidc-secret"  # LOCKSTEP_OIDC_CLIENT_SECRET_FILE
//! # or the secret itself in LOCKSTEP_OIDC_CLIENT_SECRET (never in this file); neither: a public
//! # client (PKCE only)
//! redirect_url = "https://lockstep.corp.example/login/sso/callback"  # LOCKSTEP_OIDC_REDIRECT_URL
//! scopes = ["openid", "profile", "email"]           # default; "openid" is always sent
//! username_claim = "preferred_username"             # default; falls back to "email", then "sub"
//! groups_claim = "groups"                           # default claim the rules read
//! ca_file = "/etc/ssl/certs/ca-certificates.crt"    # LOCKSTEP_OIDC_CA_FILE (roots for https)
//! button_label = "Sign in with the company account" # default
//!
//! [[oidc.role]]       # the highest role whose rule matches wins; no match: no access
//! value = "dc-admins" # the claim (a string or a list of strings) contains this value
//! role = "admin"
//! [[oidc.role]]
//! claim = "email"     # default: groups_claim
//! value = "carol@corp.example"
//! role = "approver"
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::error::SettingsError;
use super::file::SettingsFile;
// The role vocabulary is the web layer's until it moves down to the knowledge layer (#18 item 5).
use crate::knowledge::role::Role;

/// Where the identity provider sends the browser back: the redirect URL must end in it (the
/// route itself is `crate::web::auth::oidc::flow`'s).
pub const CALLBACK_PATH: &str = "/login/sso/callback";

pub const DEFAULT_SCOPES: [&str; 3] = ["openid", "profile", "email"];
pub const DEFAULT_USERNAME_CLAIM: &str = "preferred_username";
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";
pub const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";
pub const DEFAULT_BUTTON_LABEL: &str = "Sign in with the company account";

/// The resolved single sign-on settings.
#[derive(Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The issuer exactly as the provider names itself (no trailing-slash games: compared as is).
    pub issuer: String,
    pub client_id: String,
    /// `None`: a public client that proves itself by PKCE alone.
    pub client_secret: Option<String>,
    pub redirect_url: reqwest::Url,
    pub scopes: Vec<String>,
    pub username_claim: String,
    pub groups_claim: String,
    pub ca_file: PathBuf,
    pub button_label: String,
    pub rules: Vec<RoleRule>,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<set>"),
            )
            .field("redirect_url", &self.redirect_url.as_str())
            .field("scopes", &self.scopes)
            .field("rules", &self.rules)
            .finish()
    }
}

/// "Whoever's `claim` contains `value` gets `role`."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRule {
    pub claim: String,
    pub value: String,
    pub role: Role,
}

/// The `[oidc]` table as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileOidc {
    issuer: Option<Spanned<String>>,
    client_id: Option<String>,
    /// Accepted only to be refused with advice: a secret never belongs in the file.
    client_secret: Option<Spanned<toml::Value>>,
    client_secret_file: Option<PathBuf>,
    redirect_url: Option<Spanned<String>>,
    scopes: Option<Vec<String>>,
    username_claim: Option<String>,
    groups_claim: Option<String>,
    ca_file: Option<PathBuf>,
    button_label: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    role: Vec<Spanned<FileRule>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    claim: Option<String>,
    value: String,
    role: String,
}

fn err(setting: impl Into<String>, message: impl Into<String>) -> SettingsError {
    SettingsError::new(setting, message)
}

/// The `[oidc]` table as written in `file`, then the environment through `env`. `Ok(None)`: single sign-on
/// is not configured.
pub(crate) fn resolve(
    file: &SettingsFile,
    table: Option<&FileOidc>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<OidcConfig>, SettingsError> {
    let empty = FileOidc::default();
    let fc = table.unwrap_or(&empty);
    if let Some(written) = &fc.client_secret {
        return Err(err(
            "oidc.client_secret",
            "keep the secret out of the configuration file: set \
                 LOCKSTEP_OIDC_CLIENT_SECRET or oidc.client_secret_file",
        )
        .at(file.line(&written.span())));
    }
    let line_of = |s: &Option<Spanned<String>>| s.as_ref().and_then(|s| file.line(&s.span()));
    let (issuer, issuer_at) = match (env("LOCKSTEP_OIDC_ISSUER"), &fc.issuer) {
        (Some(i), _) => (i, None),
        (None, Some(i)) => (i.get_ref().clone(), line_of(&fc.issuer)),
        (None, None) => {
            if fc.client_id.is_some() || !fc.role.is_empty() || fc.redirect_url.is_some() {
                return Err(err("oidc.issuer", "missing (the [oidc] table needs it)"));
            }
            return Ok(None);
        }
    };
    check_issuer(&issuer).map_err(|e| e.at(issuer_at))?;
    let client_id = env("LOCKSTEP_OIDC_CLIENT_ID")
        .or_else(|| fc.client_id.clone())
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| err("oidc.client_id", "missing"))?;
    let secret_file = match env("LOCKSTEP_OIDC_CLIENT_SECRET_FILE") {
        Some(p) => Some(("LOCKSTEP_OIDC_CLIENT_SECRET_FILE", PathBuf::from(p))),
        None => fc
            .client_secret_file
            .clone()
            .map(|p| ("oidc.client_secret_file", p)),
    };
    let client_secret = match (env("LOCKSTEP_OIDC_CLIENT_SECRET"), secret_file) {
        (Some(s), _) if !s.trim().is_empty() => Some(s.trim().to_string()),
        (_, Some((setting, path))) => Some(super::secret::read_file(setting, &path)?),
        _ => None,
    };
    let (redirect_text, redirect_at) = match (env("LOCKSTEP_OIDC_REDIRECT_URL"), &fc.redirect_url) {
        (Some(r), _) => (r, None),
        (None, Some(r)) => (r.get_ref().clone(), line_of(&fc.redirect_url)),
        (None, None) => {
            return Err(err(
                "oidc.redirect_url",
                "missing (e.g. https://lockstep.corp.example/login/sso/callback)",
            ))
        }
    };
    let redirect_err = |message: String| err("oidc.redirect_url", message).at(redirect_at.clone());
    let redirect_url = reqwest::Url::parse(&redirect_text)
        .map_err(|e| redirect_err(format!("`{redirect_text}`: {e}")))?;
    if redirect_url.path() != CALLBACK_PATH {
        return Err(redirect_err(format!(
            "`{redirect_text}` must end in {CALLBACK_PATH} (where Lockstep receives the answer)"
        )));
    }
    if !secure_or_loopback(&redirect_url) {
        return Err(redirect_err(format!(
            "`{redirect_text}` must use https (plain http only on loopback)"
        )));
    }
    let mut scopes = fc
        .scopes
        .clone()
        .unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect());
    for s in &scopes {
        if s.is_empty()
            || !s
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
        {
            return Err(err("oidc.scopes", format!("`{s}` is not a scope name")));
        }
    }
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    let groups_claim = fc
        .groups_claim
        .clone()
        .unwrap_or_else(|| DEFAULT_GROUPS_CLAIM.into());
    let mut rules = Vec::new();
    for (i, spanned) in fc.role.iter().enumerate() {
        let r = spanned.get_ref();
        let at = file.line(&spanned.span());
        let role: Role = r
            .role
            .parse()
            .map_err(|e: String| err(format!("oidc.role[{i}].role"), e).at(at.clone()))?;
        if r.value.is_empty() {
            return Err(err(format!("oidc.role[{i}].value"), "must not be empty").at(at));
        }
        rules.push(RoleRule {
            claim: r.claim.clone().unwrap_or_else(|| groups_claim.clone()),
            value: r.value.clone(),
            role,
        });
    }
    Ok(Some(OidcConfig {
        issuer,
        client_id,
        client_secret,
        redirect_url,
        scopes,
        username_claim: fc
            .username_claim
            .clone()
            .unwrap_or_else(|| DEFAULT_USERNAME_CLAIM.into()),
        groups_claim,
        ca_file: env("LOCKSTEP_OIDC_CA_FILE")
            .map(PathBuf::from)
            .or_else(|| fc.ca_file.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CA_FILE)),
        button_label: fc
            .button_label
            .clone()
            .unwrap_or_else(|| DEFAULT_BUTTON_LABEL.into()),
        rules,
    }))
}

impl OidcConfig {
    /// Each setting for `lockstep config check`: key, environment variable, effective value
    /// (the secret only as set or not).
    pub fn describe(&self) -> Vec<(&'static str, &'static str, String)> {
        let rules = if self.rules.is_empty() {
            "(none: nobody gets in)".to_string()
        } else {
            self.rules
                .iter()
                .map(|r| format!("{} contains {:?} -> {}", r.claim, r.value, r.role))
                .collect::<Vec<_>>()
                .join("; ")
        };
        vec![
            ("issuer", "LOCKSTEP_OIDC_ISSUER", self.issuer.clone()),
            (
                "client_id",
                "LOCKSTEP_OIDC_CLIENT_ID",
                self.client_id.clone(),
            ),
            (
                "client_secret_file",
                "LOCKSTEP_OIDC_CLIENT_SECRET",
                match self.client_secret {
                    Some(_) => "(secret set)".into(),
                    None => "(none: public client, PKCE only)".into(),
                },
            ),
            (
                "redirect_url",
                "LOCKSTEP_OIDC_REDIRECT_URL",
                self.redirect_url.to_string(),
            ),
            ("scopes", "-", self.scopes.join(" ")),
            ("username_claim", "-", self.username_claim.clone()),
            ("groups_claim", "-", self.groups_claim.clone()),
            (
                "ca_file",
                "LOCKSTEP_OIDC_CA_FILE",
                self.ca_file.display().to_string(),
            ),
            ("button_label", "-", self.button_label.clone()),
            ("role", "-", rules),
        ]
    }
}

fn check_issuer(issuer: &str) -> Result<(), SettingsError> {
    let url = reqwest::Url::parse(issuer)
        .map_err(|e| err("oidc.issuer", format!("`{issuer}` is not a URL: {e}")))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err(
            "oidc.issuer",
            format!("`{issuer}` must not have a query or fragment"),
        ));
    }
    if !secure_or_loopback(&url) {
        return Err(err(
            "oidc.issuer",
            format!("`{issuer}` must use https (plain http only on loopback)"),
        ));
    }
    Ok(())
}

/// https anywhere, http only to this machine (tests, a provider on the same host).
pub(crate) fn secure_or_loopback(url: &reqwest::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host_str() {
            Some("localhost") => true,
            Some(h) => h
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()),
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env_of;
    use crate::config::Document;

    fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Option<OidcConfig>, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lockstep.toml");
        std::fs::write(&path, text).unwrap();
        let document = Document::read(Some(&path))?;
        resolve(
            &document.file,
            document.settings.oidc.as_ref(),
            &env_of(env),
        )
    }

    const GOOD: &str = r#"
[oidc]
issuer = "https://login.corp.example/realms/it"
client_id = "lockstep"
redirect_url = "https://lockstep.corp.example/login/sso/callback"
[[oidc.role]]
value = "dc-admins"
role = "admin"
"#;

    #[test]
    fn no_oidc_table_means_single_sign_on_is_off() {
        assert_eq!(load_text("listen = \"127.0.0.1:1\"\n", &[]), Ok(None));
    }

    #[test]
    fn a_full_table_gives_defaults_for_what_it_leaves_out() {
        let c = load_text(GOOD, &[("LOCKSTEP_OIDC_CLIENT_SECRET", "s3")])
            .unwrap()
            .unwrap();
        assert_eq!(c.scopes, vec!["openid", "profile", "email"]);
        assert_eq!(c.client_secret.as_deref(), Some("s3"));
        assert_eq!(c.rules[0].claim, "groups");
        assert_eq!(c.rules[0].role, Role::Admin);
        assert!(
            !format!("{c:?}").contains("s3"),
            "the secret never reaches logs"
        );
    }

    #[test]
    fn a_secret_written_into_the_file_is_refused() {
        let text = GOOD.replace("client_id", "client_secret = \"x\"\nclient_id");
        let e = load_text(&text, &[]).unwrap_err();
        assert_eq!(e.setting, "oidc.client_secret");
        assert_eq!(e.at.map(|a| a.line), Some(4), "the line it is written on");
    }

    #[test]
    fn the_client_secret_file_follows_the_one_secret_rule() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("oidc-secret");
        std::fs::write(&secret, "s3\n").unwrap();
        let env = [("LOCKSTEP_OIDC_CLIENT_SECRET_FILE", secret.to_str().unwrap())];
        let c = load_text(GOOD, &env).unwrap().unwrap();
        assert_eq!(c.client_secret.as_deref(), Some("s3"));
        std::fs::write(&secret, "s3\nleftover\n").unwrap();
        let e = load_text(GOOD, &env).unwrap_err();
        assert_eq!(e.setting, "LOCKSTEP_OIDC_CLIENT_SECRET_FILE");
        assert!(e.message.contains("more than one line"), "{e}");
    }

    #[test]
    fn plain_http_is_refused_except_on_loopback() {
        let remote = GOOD.replace("https://login.corp", "http://login.corp");
        assert_eq!(load_text(&remote, &[]).unwrap_err().setting, "oidc.issuer");
        let local = GOOD.replace("https://login.corp.example", "http://127.0.0.1:9000");
        assert!(load_text(&local, &[]).unwrap().is_some());
    }

    #[test]
    fn an_unknown_role_names_the_rule() {
        let text = GOOD.replace("role = \"admin\"", "role = \"root\"");
        let e = load_text(&text, &[]).unwrap_err();
        assert_eq!(e.setting, "oidc.role[0].role");
        assert!(e.message.contains("root"));
    }

    #[test]
    fn a_redirect_url_elsewhere_than_the_callback_is_refused() {
        let text = GOOD.replace("/login/sso/callback", "/callback");
        assert_eq!(
            load_text(&text, &[]).unwrap_err().setting,
            "oidc.redirect_url"
        );
    }
}
