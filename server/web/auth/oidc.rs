//! Single sign-on through the company's OpenID Connect provider: the authorization code flow
//! with PKCE (S256), state and nonce bound to the browser that started the sign-in, ID tokens
//! checked against the provider's published keys, and the provider's groups or other claims
//! mapped onto Lockstep roles by configuration (no matching rule: no access). An account is
//! created at a person's first sign-in and its role follows the provider at every later one;
//! local accounts stay for break-glass access.
//!
//! The protocol is the `openidconnect` crate's; what is Lockstep's stays here: the pending
//! sign-ins, the claims → roles rules, accounts and sessions, the key-rotation refetch.
//!
//! - the `[oidc]` settings: `crate::config::oidc`.
//! - [`http`]: the bounded reqwest/rustls client the crate talks through.
//! - [`provider`]: discovery, keys (fetched again on rotation), the token exchange.
//! - [`idtoken`]: the ID token's signature and claims (pure).
//! - [`pending`]: sign-ins started and not yet finished (memory, ten minutes).
//! - [`flow`]: the two routes, `/login/sso` and [`CALLBACK_PATH`].

pub mod flow;
pub mod http;
pub mod idtoken;
pub mod pending;
pub mod provider;

use serde_json::{Map, Value};

pub use crate::config::oidc::{OidcConfig, CALLBACK_PATH};

use super::Role;

/// Why a sign-in failed. Each message tells the person what happened and what to do; on any of
/// them no account, session or role was changed.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("the identity provider at {issuer} did not answer ({cause}); try again later, or use a local account")]
    ProviderDown { issuer: String, cause: String },
    #[error(
        "the identity provider cannot be used: {0}; ask an admin to check the [oidc] settings"
    )]
    ProviderUnusable(String),
    #[error("this sign-in was not started in this browser, was already used, or took longer than ten minutes; start again")]
    UnknownState,
    #[error("the identity provider refused the sign-in: {0}")]
    ProviderRefused(String),
    #[error("the identity provider refused the sign-in code ({0}); it may have been used already or expired; start again")]
    CodeRefused(String),
    #[error("the answer came from another identity provider (`{0}`) than the configured one; start again")]
    MixUp(String),
    #[error(transparent)]
    Token(#[from] idtoken::TokenError),
    #[error("your account has no Lockstep role; ask an admin")]
    NoRole,
    #[error("the identity provider gave no usable account name (claim `{0}`, then `email`, then `sub`): {1}")]
    NoName(String, String),
    #[error("too many sign-ins are in progress; try again in a minute")]
    Busy,
    #[error(transparent)]
    Account(#[from] super::accounts::SsoAccountError),
}

impl SsoError {
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            SsoError::ProviderDown { .. } | SsoError::ProviderUnusable(_) => {
                StatusCode::BAD_GATEWAY
            }
            SsoError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            SsoError::NoRole | SsoError::Account(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

/// Single sign-on as the web layer holds it.
pub struct Sso {
    pub provider: provider::Provider,
    pub pending: pending::Pending,
}

impl Sso {
    pub fn new(config: OidcConfig) -> anyhow::Result<Sso> {
        Ok(Sso {
            provider: provider::Provider::new(config)?,
            pending: pending::Pending::default(),
        })
    }

    pub fn config(&self) -> &OidcConfig {
        self.provider.config()
    }
}

/// The strings a claim holds: itself if a string, its string members if a list.
fn claim_values<'c>(claims: &'c Map<String, Value>, name: &str) -> Vec<&'c str> {
    match claims.get(name) {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The highest role any rule grants for these claims; `None` when no rule matches.
pub fn role_for(config: &OidcConfig, claims: &Map<String, Value>) -> Option<Role> {
    config
        .rules
        .iter()
        .filter(|r| claim_values(claims, &r.claim).contains(&r.value.as_str()))
        .map(|r| r.role)
        .max()
}

/// The account name for these claims: `username_claim`, else `email`, else `sub` — the first
/// that is present, checked against the account-name rules.
pub fn account_name(config: &OidcConfig, claims: &Map<String, Value>) -> Result<String, SsoError> {
    let pick = [config.username_claim.as_str(), "email", "sub"]
        .iter()
        .find_map(|c| {
            claims
                .get(*c)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        });
    let name = pick.unwrap_or_default().to_string();
    super::check_user_name(&name)
        .map_err(|e| SsoError::NoName(config.username_claim.clone(), e))?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(rules: &[(&str, &str, Role)]) -> OidcConfig {
        OidcConfig {
            issuer: "https://idp.example".into(),
            client_id: "lockstep".into(),
            client_secret: None,
            redirect_url: "https://l.example/login/sso/callback".parse().unwrap(),
            scopes: vec!["openid".into()],
            username_claim: "preferred_username".into(),
            groups_claim: "groups".into(),
            ca_file: "/nonexistent".into(),
            button_label: "SSO".into(),
            rules: rules
                .iter()
                .map(|(c, v, r)| crate::config::oidc::RoleRule {
                    claim: c.to_string(),
                    value: v.to_string(),
                    role: *r,
                })
                .collect(),
        }
    }

    fn claims(v: serde_json::Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_highest_matching_rule_wins_and_no_match_means_no_access() {
        let c = config(&[
            ("groups", "staff", Role::Viewer),
            ("groups", "dc-admins", Role::Admin),
            ("email", "carol@corp.example", Role::Approver),
        ]);
        let admin = claims(json!({"groups": ["staff", "dc-admins"]}));
        assert_eq!(role_for(&c, &admin), Some(Role::Admin));
        let carol = claims(json!({"groups": "marketing", "email": "carol@corp.example"}));
        assert_eq!(role_for(&c, &carol), Some(Role::Approver));
        let bob = claims(json!({"groups": ["marketing"], "email": "bob@corp.example"}));
        assert_eq!(role_for(&c, &bob), None);
        assert_eq!(role_for(&config(&[]), &admin), None);
    }

    #[test]
    fn the_account_name_falls_back_from_the_username_claim_to_email_to_subject() {
        let c = config(&[]);
        let both =
            claims(json!({"preferred_username": "alice", "email": "a@x.example", "sub": "1"}));
        assert_eq!(account_name(&c, &both).unwrap(), "alice");
        let email = claims(json!({"email": "a@x.example", "sub": "1"}));
        assert_eq!(account_name(&c, &email).unwrap(), "a@x.example");
        let bad = claims(json!({"preferred_username": "Alice Smith", "sub": "1"}));
        assert!(account_name(&c, &bad)
            .unwrap_err()
            .to_string()
            .contains("Alice Smith"));
    }
}
