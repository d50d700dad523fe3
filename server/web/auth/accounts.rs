//! Accounts, sessions and API tokens in SQLite. All SQL for those three tables lives here.
//!
//! Secrets (session ids, API tokens) are 256 random bits handed to the client once; the database
//! keeps only their SHA-256, so reading the database does not let anyone in.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{Row, SqlitePool};

use super::password;
use super::Role;

/// An account as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    /// The person the account belongs to (verified e-mail, or the single sign-on subject);
    /// separation of duties compares this, so two accounts of one person count as one.
    pub person: String,
}

/// A session found by its cookie value.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: String,
    pub user: User,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("an account named `{0}` already exists")]
    Exists(String),
    #[error("no account named `{0}`")]
    NotFound(String),
    #[error("person: {person} already has the account `{account}`; one person, one account")]
    PersonTaken { person: String, account: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
    /// Every password-checking slot is busy (see `password::verify_bounded`): 503.
    #[error(transparent)]
    Busy(#[from] password::Busy),
}

/// A fresh random secret, URL-safe base64 (43 characters for 32 bytes).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a secret, hex.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<User, AccountError> {
    let role: String = row.try_get("role")?;
    let name: String = row.try_get("name")?;
    // NULL only for a row written by an older binary after the migration: its own name.
    let person: Option<String> = row.try_get("person")?;
    Ok(User {
        id: row.try_get("id")?,
        person: person.unwrap_or_else(|| name.clone()),
        name,
        role: role.parse().map_err(AccountError::Invalid)?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
    })
}

/// Creates an account after checking the name and the password rules; it belongs to the person
/// of its own name (see [`add_user_for`]).
pub async fn add_user(
    pool: &SqlitePool,
    name: &str,
    role: Role,
    password: &str,
    now: i64,
) -> Result<User, AccountError> {
    add_user_for(pool, name, None, role, password, now).await
}

/// Checks a person's identifier (a verified e-mail): 3 to 254 characters, one `@`, no spaces or
/// control characters. Lower-cased, because e-mail addresses are compared that way in practice.
pub fn parse_person(person: &str) -> Result<String, AccountError> {
    let p = person.trim().to_lowercase();
    let ok = (3..=254).contains(&p.chars().count())
        && p.matches('@').count() == 1
        && !p.starts_with('@')
        && !p.ends_with('@')
        && !p.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(p)
    } else {
        Err(AccountError::Invalid(format!(
            "person: `{}` is not an e-mail address (3 to 254 characters, one @, no spaces)",
            person.trim().escape_debug()
        )))
    }
}

/// Creates an account for `person` (a verified e-mail; `None`: the account's own name). A second
/// account for a person who already has one is refused: separation of duties counts people.
pub async fn add_user_for(
    pool: &SqlitePool,
    name: &str,
    person: Option<&str>,
    role: Role,
    password: &str,
    now: i64,
) -> Result<User, AccountError> {
    super::check_user_name(name).map_err(AccountError::Invalid)?;
    let person = match person.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => parse_person(p)?,
        None => name.to_string(),
    };
    password::check_new(name, password).map_err(|e| AccountError::Invalid(e.to_string()))?;
    let phc = password::hash(password)?;
    let taken = |account: String| AccountError::PersonTaken {
        person: person.clone(),
        account,
    };
    let holder: Option<String> = sqlx::query_scalar("SELECT name FROM users WHERE person = ?")
        .bind(&person)
        .fetch_optional(pool)
        .await?;
    if let Some(account) = holder.filter(|a| a != name) {
        return Err(taken(account));
    }
    let res = sqlx::query(
        "INSERT INTO users (name, role, password_hash, disabled, created_at, person) VALUES (?, ?, ?, 0, ?, ?)",
    )
    .bind(name)
    .bind(role.as_str())
    .bind(phc)
    .bind(now)
    .bind(&person)
    .execute(pool)
    .await;
    match res {
        Ok(r) => Ok(User {
            id: r.last_insert_rowid(),
            name: name.to_string(),
            role,
            disabled: false,
            person,
        }),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            // The name, or (a concurrent creation) the person: say which.
            let holder: Option<String> =
                sqlx::query_scalar("SELECT name FROM users WHERE person = ?")
                    .bind(&person)
                    .fetch_optional(pool)
                    .await?;
            match holder.filter(|a| a != name) {
                Some(account) => Err(taken(account)),
                None => Err(AccountError::Exists(name.to_string())),
            }
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn list_users(pool: &SqlitePool) -> Result<Vec<User>, AccountError> {
    let rows = sqlx::query("SELECT id, name, role, disabled, person FROM users ORDER BY name")
        .fetch_all(pool)
        .await?;
    rows.iter().map(user_from_row).collect()
}

pub async fn find_user(pool: &SqlitePool, name: &str) -> Result<Option<User>, AccountError> {
    let row = sqlx::query("SELECT id, name, role, disabled, person FROM users WHERE name = ?")
        .bind(name)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(user_from_row).transpose()
}

/// Disables an account and ends every session it has, in one transaction. API tokens stop
/// working because authentication checks `disabled`.
pub async fn disable_user(pool: &SqlitePool, name: &str) -> Result<User, AccountError> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "UPDATE users SET disabled = 1 WHERE name = ? RETURNING id, name, role, disabled, person",
    )
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| AccountError::NotFound(name.to_string()))?;
    let user = user_from_row(&row)?;
    sqlx::query("DELETE FROM sessions WHERE user_id = ?")
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(user)
}

/// Checks a name and password. `None` for a wrong password, an unknown or a disabled account
/// (one answer for all three, so the form does not reveal which names exist).
pub async fn authenticate(
    pool: &SqlitePool,
    name: &str,
    password_text: &str,
) -> Result<Option<User>, AccountError> {
    let row = sqlx::query(
        "SELECT id, name, role, disabled, person, password_hash FROM users WHERE name = ?",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        let decoy = password::decoy_hash().to_string();
        password::verify_bounded(password_text.to_string(), decoy).await?;
        return Ok(None);
    };
    let user = user_from_row(&row)?;
    let phc: String = row.try_get("password_hash")?;
    let ok = password::verify_bounded(password_text.to_string(), phc).await?;
    Ok((ok && !user.disabled).then_some(user))
}

/// Starts a session; returns the cookie value (the only copy of the id).
pub async fn create_session(
    pool: &SqlitePool,
    user_id: i64,
    now: i64,
) -> Result<String, AccountError> {
    let id = new_secret();
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(digest(&id))
    .bind(user_id)
    .bind(new_secret())
    .bind(now)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(id)
}

/// Finds a live session by cookie value, ending it if it has timed out, and records activity.
pub async fn touch_session(
    pool: &SqlitePool,
    cookie: &str,
    now: i64,
    idle_secs: u64,
    absolute_secs: u64,
) -> Result<Option<Session>, AccountError> {
    let id_hash = digest(cookie);
    let row = sqlx::query(
        "SELECT s.id_hash, s.csrf_token, s.created_at, s.last_seen_at, u.id, u.name, u.role, u.disabled, u.person \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = ?",
    )
    .bind(&id_hash)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let session = Session {
        id_hash: row.try_get("id_hash")?,
        user: user_from_row(&row)?,
        csrf_token: row.try_get("csrf_token")?,
        created_at: row.try_get("created_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
    };
    let idle = now - session.last_seen_at > idle_secs as i64;
    let old = now - session.created_at > absolute_secs as i64;
    if idle || old || session.user.disabled {
        end_session(pool, cookie).await?;
        return Ok(None);
    }
    // Record activity at most every 15 s, so a page with a live stream does not write constantly.
    if now - session.last_seen_at >= 15 {
        sqlx::query("UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?")
            .bind(now)
            .bind(&id_hash)
            .execute(pool)
            .await?;
    }
    Ok(Some(session))
}

pub async fn end_session(pool: &SqlitePool, cookie: &str) -> Result<(), AccountError> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
        .bind(digest(cookie))
        .execute(pool)
        .await?;
    Ok(())
}

/// Days a new API token lives unless its creator says otherwise.
pub const TOKEN_DEFAULT_DAYS: u32 = 90;
/// The longest a token may live: a forgotten token stops working within a year.
pub const TOKEN_MAX_DAYS: u32 = 365;

/// Creates an API token for a user that expires after [`TOKEN_DEFAULT_DAYS`]; returns the
/// token text (shown once).
pub async fn create_token(
    pool: &SqlitePool,
    user_id: i64,
    label: &str,
    now: i64,
) -> Result<String, AccountError> {
    create_token_for_days(pool, user_id, label, TOKEN_DEFAULT_DAYS, now).await
}

/// Creates an API token that expires after `days` (1 to [`TOKEN_MAX_DAYS`]).
pub async fn create_token_for_days(
    pool: &SqlitePool,
    user_id: i64,
    label: &str,
    days: u32,
    now: i64,
) -> Result<String, AccountError> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 100 || label.chars().any(char::is_control) {
        return Err(AccountError::Invalid(
            "token label: give 1 to 100 characters (no control characters)".into(),
        ));
    }
    if !(1..=TOKEN_MAX_DAYS).contains(&days) {
        return Err(AccountError::Invalid(format!(
            "expires_in_days: give 1 to {TOKEN_MAX_DAYS} days (default {TOKEN_DEFAULT_DAYS})"
        )));
    }
    let token = format!("lst_{}", new_secret());
    sqlx::query(
        "INSERT INTO api_tokens (user_id, label, token_hash, created_at, revoked, expires_at) \
         VALUES (?, ?, ?, ?, 0, ?)",
    )
    .bind(user_id)
    .bind(label)
    .bind(digest(&token))
    .bind(now)
    .bind(now + i64::from(days) * 86_400)
    .execute(pool)
    .await?;
    Ok(token)
}

/// The enabled user a bearer token belongs to, while the token is neither revoked nor expired.
pub async fn user_for_token(
    pool: &SqlitePool,
    token: &str,
    now: i64,
) -> Result<Option<User>, AccountError> {
    let row = sqlx::query(
        "SELECT u.id, u.name, u.role, u.disabled, u.person FROM api_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = ? AND t.revoked = 0 AND t.expires_at > ? AND u.disabled = 0",
    )
    .bind(digest(token))
    .bind(now)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(user_from_row).transpose()
}

/// Revokes one of `user_id`'s tokens (at once: the next request with it gets 401). Revoking a
/// revoked token changes nothing.
pub async fn revoke_token(
    pool: &SqlitePool,
    user_id: i64,
    token_id: i64,
    now: i64,
) -> Result<(), AccountError> {
    let found = sqlx::query(
        "UPDATE api_tokens SET revoked = 1, revoked_at = COALESCE(revoked_at, ?) \
         WHERE id = ? AND user_id = ?",
    )
    .bind(now)
    .bind(token_id)
    .bind(user_id)
    .execute(pool)
    .await?
    .rows_affected();
    if found == 0 {
        return Err(AccountError::NotFound(format!("token {token_id}")));
    }
    Ok(())
}

/// Number of live sessions a user has (used by tests and the Users page).
pub async fn session_count(pool: &SqlitePool, user_id: i64) -> Result<i64, AccountError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE user_id = ?")
            .bind(user_id)
            .fetch_one(pool)
            .await?,
    )
}

/// A token as listed (never its text).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: i64,
    pub label: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked: bool,
    pub revoked_at: Option<i64>,
}

impl TokenInfo {
    /// `active`, `expired` or `revoked` at `now`.
    pub fn state(&self, now: i64) -> &'static str {
        if self.revoked {
            "revoked"
        } else if self.expires_at <= now {
            "expired"
        } else {
            "active"
        }
    }
}

pub async fn list_tokens(pool: &SqlitePool, user_id: i64) -> Result<Vec<TokenInfo>, AccountError> {
    let rows = sqlx::query(
        "SELECT id, label, created_at, expires_at, revoked, revoked_at FROM api_tokens \
         WHERE user_id = ? ORDER BY id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TokenInfo {
                id: r.try_get("id")?,
                label: r.try_get("label")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                revoked: r.try_get::<i64, _>("revoked")? != 0,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect()
}

/// `password_hash` of accounts that sign in through single sign-on: not a PHC string, so no
/// password ever verifies against it.
pub const SSO_PASSWORD_MARK: &str = "!sso";

/// Why a single sign-on account cannot be used; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum SsoAccountError {
    #[error("an account named `{0}` already exists (a local account, or someone else's), so single sign-on will not take it over; ask an admin")]
    LocalNameTaken(String),
    #[error("your Lockstep account `{0}` is disabled; ask an admin")]
    Disabled(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Account(#[from] AccountError),
}

/// The account for a provider's subject: created at the first sign-in (named `name`), its role
/// updated to `role` at every later one. One transaction; on any error nothing changed.
pub async fn upsert_sso_user(
    pool: &SqlitePool,
    issuer: &str,
    subject: &str,
    name: &str,
    role: Role,
    now: i64,
) -> Result<User, SsoAccountError> {
    let mut tx = pool.begin().await?;
    let existing = sqlx::query(
        "SELECT id, name, role, disabled, person FROM users WHERE sso_issuer = ? AND sso_subject = ?",
    )
    .bind(issuer)
    .bind(subject)
    .fetch_optional(&mut *tx)
    .await?;
    let user = match existing {
        Some(row) => {
            let user = user_from_row(&row)?;
            if user.disabled {
                return Err(SsoAccountError::Disabled(user.name));
            }
            let row = sqlx::query(
                "UPDATE users SET role = ? WHERE id = ? RETURNING id, name, role, disabled, person",
            )
            .bind(role.as_str())
            .bind(user.id)
            .fetch_one(&mut *tx)
            .await?;
            user_from_row(&row)?
        }
        None => {
            super::check_user_name(name).map_err(AccountError::Invalid)?;
            let res = sqlx::query(
                "INSERT INTO users (name, role, password_hash, disabled, created_at, sso_issuer, sso_subject, person) \
                 VALUES (?, ?, ?, 0, ?, ?, ?, ?)",
            )
            .bind(name)
            .bind(role.as_str())
            .bind(SSO_PASSWORD_MARK)
            .bind(now)
            .bind(issuer)
            .bind(subject)
            .bind(sso_person(issuer, subject))
            .execute(&mut *tx)
            .await;
            match res {
                Ok(r) => User {
                    id: r.last_insert_rowid(),
                    name: name.to_string(),
                    role,
                    disabled: false,
                    person: sso_person(issuer, subject),
                },
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Err(SsoAccountError::LocalNameTaken(name.to_string()))
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    tx.commit().await?;
    Ok(user)
}

/// The person of a single sign-on account: the provider's subject (as the migration backfills).
fn sso_person(issuer: &str, subject: &str) -> String {
    format!("sso:{issuer}#{subject}")
}

/// Whether an account signs in through single sign-on (`None`: no such account).
pub async fn is_sso_user(pool: &SqlitePool, name: &str) -> Result<Option<bool>, AccountError> {
    let v: Option<Option<String>> =
        sqlx::query_scalar("SELECT sso_subject FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(v.map(|s| s.is_some()))
}
