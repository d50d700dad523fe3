//! Passwords: the NIST SP 800-63B rules a new password must meet, and argon2id hashing.
//!
//! Rules: at least 8 characters, long ones welcome (up to 1024, a cap that only keeps hashing
//! cheap), no composition rules, not one of the commonly chosen passwords, not the account name.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

pub const MIN_CHARS: usize = 8;
pub const MAX_CHARS: usize = 1024;

const COMMON: &str = include_str!("common-passwords.txt");

/// Why a proposed password is refused; the message tells the person what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRule {
    #[error("the password is too short: use at least {MIN_CHARS} characters (a passphrase of several words is best)")]
    TooShort,
    #[error("the password is too long: use at most {MAX_CHARS} characters")]
    TooLong,
    #[error("the password is one of the most commonly chosen passwords; choose another")]
    Common,
    #[error("the password must not be the account name")]
    SameAsName,
}

/// Checks a proposed password for account `name`.
pub fn check_new(name: &str, password: &str) -> Result<(), PasswordRule> {
    let n = password.chars().count();
    if n < MIN_CHARS {
        return Err(PasswordRule::TooShort);
    }
    if n > MAX_CHARS {
        return Err(PasswordRule::TooLong);
    }
    let lower = password.to_lowercase();
    if lower == name.to_lowercase() {
        return Err(PasswordRule::SameAsName);
    }
    let common = COMMON
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|l| l == lower);
    if common {
        return Err(PasswordRule::Common);
    }
    Ok(())
}

/// An argon2id PHC string (default parameters: 19 MiB, 2 passes, 1 lane — the OWASP baseline).
pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

/// Whether `password` matches the stored PHC string. A malformed stored hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Password checks that may run at once. Unbounded, a flood of logins (even for made-up names,
/// which check a decoy) took the server past a gigabyte. Measured on `serve` under 60 logins at
/// once: four at a time still peaked at 480 MiB (each check's 19 MiB of blocks plus what the
/// allocator keeps per thread), one at a time stays under 400 MiB. A check takes tens of
/// milliseconds, so one slot still serves a dozen logins a second; the rest wait
/// [`HASHING_WAIT`] and then get 503 with `Retry-After`.
pub const HASHING_SLOTS: usize = 1;
/// How long a login waits for a slot before it is answered 503 with `Retry-After`.
pub const HASHING_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHING_SLOTS);

/// Every slot stayed busy for [`HASHING_WAIT`]: the caller answers 503 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is busy checking other logins; try again in a few seconds")]
pub struct Busy;

type Job = (String, String, tokio::sync::oneshot::Sender<bool>);

/// [`HASHING_SLOTS`] threads of their own that run the checks. Not tokio's blocking pool: each
/// new thread there gets its own malloc arena, which keeps its 19 MiB after the check (60
/// logins reached 700 MiB of peak memory with only four checks at a time).
fn workers() -> &'static std::sync::Mutex<std::sync::mpsc::Sender<Job>> {
    static POOL: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for n in 0..HASHING_SLOTS {
            let rx = rx.clone();
            let _ = std::thread::Builder::new()
                .name(format!("password-{n}"))
                .spawn(move || loop {
                    let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok((password, phc, answer)) = job else {
                        return;
                    };
                    let _ = answer.send(verify(&password, &phc));
                });
        }
        std::sync::Mutex::new(tx)
    })
}

/// [`verify`] on the password threads, at most [`HASHING_SLOTS`] at a time; waits at most
/// [`HASHING_WAIT`] for a slot.
pub async fn verify_bounded(password: String, phc: String) -> Result<bool, Busy> {
    let permit = tokio::time::timeout(HASHING_WAIT, SLOTS.acquire())
        .await
        .map_err(|_| Busy)?
        .map_err(|_| Busy)?;
    let (answer, ok) = tokio::sync::oneshot::channel();
    let sent = workers()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((password, phc, answer));
    if sent.is_err() {
        return Err(Busy);
    }
    let ok = ok.await.unwrap_or(false);
    drop(permit);
    Ok(ok)
}

/// A hash to verify against when the account does not exist, so that a login for an unknown
/// name takes as long as one for a known name.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("decoy password that never matches").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_common_and_name_equal_passwords_are_refused_and_long_ones_accepted() {
        assert_eq!(check_new("ann", "short"), Err(PasswordRule::TooShort));
        assert_eq!(check_new("ann", "Password123"), Err(PasswordRule::Common));
        assert_eq!(
            check_new("annabelle", "AnnaBelle"),
            Err(PasswordRule::SameAsName)
        );
        assert_eq!(
            check_new("ann", &"x".repeat(2000)),
            Err(PasswordRule::TooLong)
        );
        assert_eq!(check_new("ann", "correct horse battery staple"), Ok(()));
        // No composition rules: all lower-case letters is fine.
        assert_eq!(check_new("ann", "bluewhalesing"), Ok(()));
    }

    #[test]
    fn a_hash_verifies_only_its_own_password() {
        let h = hash("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery staple", &h));
        assert!(!verify("correct horse battery stapler", &h));
        assert!(!verify("anything", "not a phc string"));
    }
}
