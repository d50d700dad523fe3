//! Sign-ins started and not yet finished. Each is found by its `state` and belongs to the browser
//! holding the matching pre-login cookie; it is used at most once and lives ten minutes. Kept in
//! memory: a restart in the middle of someone's sign-in only makes them start again.

use std::collections::HashMap;
use std::sync::Mutex;

use openidconnect::PkceCodeChallenge;

use super::SsoError;
use crate::web::auth::accounts::{digest, new_secret};

/// How long a started sign-in may take, in seconds.
pub const LIFETIME_SECS: i64 = 600;
/// Most sign-ins in progress at once (a bound on memory, whoever calls `/login/sso`).
pub const MAX_IN_PROGRESS: usize = 10_000;

/// What the callback needs to finish one sign-in.
#[derive(Debug, Clone)]
pub struct Started {
    pub nonce: String,
    /// The PKCE code verifier (its S256 hash went to the provider).
    pub verifier: String,
    browser: String,
    created_at: i64,
}

/// A new sign-in's secrets, for the redirect to the provider.
#[derive(Debug, Clone)]
pub struct NewSignIn {
    pub state: String,
    pub nonce: String,
    /// The PKCE challenge (S256) for the authorization request; its verifier stays here.
    pub code_challenge: PkceCodeChallenge,
    /// Value for the pre-login cookie.
    pub browser_cookie: String,
}

#[derive(Default)]
pub struct Pending {
    by_state: Mutex<HashMap<String, Started>>,
}

impl Pending {
    /// Starts a sign-in at `now` (Unix seconds).
    pub fn start(&self, now: i64) -> Result<NewSignIn, SsoError> {
        let (code_challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let verifier = verifier.into_secret();
        let sign_in = NewSignIn {
            state: new_secret(),
            nonce: new_secret(),
            code_challenge,
            browser_cookie: new_secret(),
        };
        let mut map = self.by_state.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_IN_PROGRESS {
            map.retain(|_, s| now - s.created_at <= LIFETIME_SECS);
            if map.len() >= MAX_IN_PROGRESS {
                return Err(SsoError::Busy);
            }
        }
        map.insert(
            sign_in.state.clone(),
            Started {
                nonce: sign_in.nonce.clone(),
                verifier,
                browser: digest(&sign_in.browser_cookie),
                created_at: now,
            },
        );
        Ok(sign_in)
    }

    /// Takes the sign-in for `state` if `browser_cookie` is the one it was started with and it
    /// is not too old. A state presented by another browser stays for its own browser.
    pub fn finish(
        &self,
        state: &str,
        browser_cookie: Option<&str>,
        now: i64,
    ) -> Result<Started, SsoError> {
        let browser = browser_cookie.map(digest).ok_or(SsoError::UnknownState)?;
        let mut map = self.by_state.lock().unwrap_or_else(|p| p.into_inner());
        let fits = map
            .get(state)
            .is_some_and(|s| crate::web::auth::extract::same_secret(&s.browser, &browser));
        if !fits {
            return Err(SsoError::UnknownState);
        }
        let started = map.remove(state).ok_or(SsoError::UnknownState)?;
        if now - started.created_at > LIFETIME_SECS {
            return Err(SsoError::UnknownState);
        }
        Ok(started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_finishes_once_and_only_in_the_browser_that_started_it() {
        let p = Pending::default();
        let s = p.start(1000).unwrap();
        assert!(matches!(
            p.finish(&s.state, Some("another browser"), 1001),
            Err(SsoError::UnknownState)
        ));
        assert!(matches!(
            p.finish(&s.state, None, 1001),
            Err(SsoError::UnknownState)
        ));
        let done = p.finish(&s.state, Some(&s.browser_cookie), 1001).unwrap();
        assert_eq!(done.nonce, s.nonce);
        assert!(matches!(
            p.finish(&s.state, Some(&s.browser_cookie), 1002),
            Err(SsoError::UnknownState)
        ));
    }

    #[test]
    fn a_sign_in_older_than_ten_minutes_is_refused() {
        let p = Pending::default();
        let s = p.start(1000).unwrap();
        assert!(matches!(
            p.finish(&s.state, Some(&s.browser_cookie), 1000 + LIFETIME_SECS + 1),
            Err(SsoError::UnknownState)
        ));
    }

    #[test]
    fn the_code_challenge_is_the_s256_hash_of_the_verifier() {
        use base64::Engine as _;
        use sha2::Digest as _;
        let p = Pending::default();
        let s = p.start(1).unwrap();
        let v = p
            .finish(&s.state, Some(&s.browser_cookie), 2)
            .unwrap()
            .verifier;
        let expect = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(v.as_bytes()));
        assert_eq!(s.code_challenge.as_str(), expect);
        assert_eq!(s.code_challenge.method().as_str(), "S256");
    }
}
