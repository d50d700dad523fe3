//! Who is asking and what they may do: roles, local accounts, sessions, API tokens, login
//! throttling, and the extractor that turns a request into a [`CurrentUser`].

pub mod accounts;
pub mod extract;
pub mod oidc;
pub mod password;
pub mod throttle;

pub use extract::CurrentUser;

/// The person's role lives in the knowledge layer, shared with the engine and the plans.
pub use crate::knowledge::role::Role;

/// A name for a new account: 1 to 64 characters of letters, digits, `.`, `_`, `-`, `@`.
pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
        return Err(format!(
            "`{name}` is not a valid account name (1 to 64 letters, digits, '.', '_', '-', '@')"
        ));
    }
    Ok(())
}
