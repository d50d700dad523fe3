//! Users (admin): list, add, disable (which ends the user's sessions at once); and each user's
//! own API tokens.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use crate::web::auth::{accounts, CurrentUser, Role};
use crate::web::views::{fmt_time, html, see_other, Chrome};
use crate::web::{AppError, Core};

pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub sessions: i64,
    /// Signs in through single sign-on (no password).
    pub sso: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
pub struct UsersPage {
    pub chrome: Chrome,
    pub users: Vec<UserRow>,
    pub error: Option<String>,
    pub notice: Option<String>,
}

async fn users_page(
    state: &Core,
    me: &CurrentUser,
    error: Option<String>,
    notice: Option<String>,
) -> Result<UsersPage, AppError> {
    let mut users = Vec::new();
    for u in accounts::list_users(&state.pool).await? {
        users.push(UserRow {
            sessions: accounts::session_count(&state.pool, u.id).await?,
            sso: accounts::is_sso_user(&state.pool, &u.name)
                .await?
                .unwrap_or(false),
            id: u.id,
            name: u.name,
            role: u.role,
            disabled: u.disabled,
        });
    }
    Ok(UsersPage {
        chrome: Chrome::new(me, "users"),
        users,
        error,
        notice,
    })
}

pub async fn list(State(state): State<Core>, me: CurrentUser) -> Result<Response, AppError> {
    me.require(Role::Admin)?;
    html(&users_page(&state, &me, None, None).await?)
}

#[derive(Deserialize)]
pub struct NewUser {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
    /// The person's verified e-mail; blank: the account's own name.
    #[serde(default)]
    person: String,
}

pub async fn add(
    State(state): State<Core>,
    me: CurrentUser,
    Form(f): Form<NewUser>,
) -> Result<Response, AppError> {
    me.require(Role::Admin)?;
    let result = match f.role.parse::<Role>() {
        Ok(role) => accounts::add_user_for(
            &state.pool,
            f.name.trim(),
            Some(f.person.as_str()),
            role,
            &f.password,
            state.clock.now_secs(),
        )
        .await
        .map_err(AppError::from),
        Err(e) => Err(AppError::BadRequest(format!("role: {e}"))),
    };
    match result {
        Ok(u) => {
            tracing::info!(admin = %me.name(), account = %u.name, role = %u.role, "user added");
            Ok(see_other("/users"))
        }
        Err(e @ (AppError::BadRequest(_) | AppError::Conflict(_))) => {
            let status = e.status();
            let page = users_page(&state, &me, Some(e.to_string()), None).await?;
            Ok((status, axum::response::Html(page.render()?)).into_response())
        }
        Err(e) => Err(e),
    }
}

pub async fn disable(
    State(state): State<Core>,
    me: CurrentUser,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    me.require(Role::Admin)?;
    let u = accounts::disable_user(&state.pool, &name).await?;
    tracing::info!(admin = %me.name(), account = %u.name, "user disabled; sessions ended");
    Ok(see_other("/users"))
}

pub struct TokenRow {
    pub id: i64,
    pub label: String,
    pub created: String,
    pub expires: String,
    /// active, expired or revoked
    pub state: &'static str,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    pub chrome: Chrome,
    pub tokens: Vec<TokenRow>,
    pub new_token: Option<String>,
    pub error: Option<String>,
    pub default_days: u32,
    pub max_days: u32,
}

async fn account_page(
    state: &Core,
    me: &CurrentUser,
    new_token: Option<String>,
    error: Option<String>,
) -> Result<AccountPage, AppError> {
    let now = state.clock.now_secs();
    let tokens = accounts::list_tokens(&state.pool, me.user.id)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            state: t.state(now),
            label: t.label,
            created: fmt_time(t.created_at),
            expires: fmt_time(t.expires_at),
        })
        .collect();
    Ok(AccountPage {
        chrome: Chrome::new(me, "account"),
        tokens,
        new_token,
        error,
        default_days: accounts::TOKEN_DEFAULT_DAYS,
        max_days: accounts::TOKEN_MAX_DAYS,
    })
}

pub async fn account(State(state): State<Core>, me: CurrentUser) -> Result<Response, AppError> {
    html(&account_page(&state, &me, None, None).await?)
}

#[derive(Deserialize)]
pub struct NewToken {
    #[serde(default)]
    label: String,
    /// Days until it expires; blank: the default.
    #[serde(default)]
    expires_in_days: String,
}

pub async fn create_token(
    State(state): State<Core>,
    me: CurrentUser,
    Form(f): Form<NewToken>,
) -> Result<Response, AppError> {
    me.require_session_to_mint_tokens()?;
    let days = match f.expires_in_days.trim() {
        "" => Ok(accounts::TOKEN_DEFAULT_DAYS),
        d => d.parse::<u32>().map_err(|_| {
            accounts::AccountError::Invalid(format!(
                "expires_in_days: `{}` is not a number of days",
                crate::logtext::escaped(d)
            ))
        }),
    };
    let made = match days {
        Ok(days) => {
            accounts::create_token_for_days(
                &state.pool,
                me.user.id,
                &f.label,
                days,
                state.clock.now_secs(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    match made {
        Ok(token) => html(&account_page(&state, &me, Some(token), None).await?),
        Err(accounts::AccountError::Invalid(m)) => {
            let page = account_page(&state, &me, None, Some(m)).await?;
            Ok((
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                axum::response::Html(page.render()?),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn revoke_token(
    State(state): State<Core>,
    me: CurrentUser,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    accounts::revoke_token(&state.pool, me.user.id, id, state.clock.now_secs()).await?;
    Ok(see_other("/account"))
}
