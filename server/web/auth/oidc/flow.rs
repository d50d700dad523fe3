//! The two routes of a single sign-on: `GET /login/sso` sends the browser to the provider with
//! a fresh state, nonce and PKCE challenge (and sets the pre-login cookie that binds them to this
//! browser); `GET /login/sso/callback` checks what comes back, trades the code for an ID token,
//! checks the token, maps the claims onto a role, creates or updates the account and starts a
//! session. Every failure shows the login page with the reason and changes nothing.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::idtoken::{self, Expected, TokenError};
use super::{Sso, SsoError};
use crate::web::auth::accounts;
use crate::web::auth::extract::{cookie, session_cookie, session_set_cookie};
use crate::web::{AppError, AppState, Auth};

/// The pre-login cookie. `SameSite=Lax`, not `Strict`: the provider's redirect back to the
/// callback is a cross-site navigation, and the cookie must come along on it.
pub const PRELOGIN_COOKIE: &str = "__Host-lockstep-sso";

fn prelogin_set_cookie(value: &str) -> String {
    format!(
        "{PRELOGIN_COOKIE}={value}; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age={}",
        super::pending::LIFETIME_SECS
    )
}

fn prelogin_clear_cookie() -> String {
    format!("{PRELOGIN_COOKIE}=; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age=0")
}

fn prelogin_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, PRELOGIN_COOKIE)
}

fn sso_of(state: &Auth) -> Result<std::sync::Arc<Sso>, AppError> {
    state
        .sso
        .clone()
        .ok_or_else(|| AppError::NotFound("single sign-on is not configured here".into()))
}

/// The login page showing why single sign-on failed. The pre-login cookie is removed once its
/// sign-in is used up; an answer with an unknown state leaves it, so a forged answer cannot spoil
/// the genuine one still on its way.
fn refused(state: &Auth, e: SsoError) -> Result<Response, AppError> {
    tracing::info!(reason = %e, "single sign-on refused");
    let page = crate::web::pages::login::LoginPage {
        name: String::new(),
        error: Some(e.to_string()),
        sso: state.sso.as_ref().map(|s| s.config().button_label.clone()),
    };
    let keep_cookie = matches!(e, SsoError::UnknownState);
    let mut response = (e.status(), Html(askama::Template::render(&page)?)).into_response();
    if keep_cookie {
        return Ok(response);
    }
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&prelogin_clear_cookie())
            .map_err(|e| AppError::Internal(e.into()))?,
    );
    Ok(response)
}

/// `GET /login/sso`: off to the provider.
pub async fn start(State(state): State<Auth>) -> Result<Response, AppError> {
    let sso = sso_of(&state)?;
    match redirect_to_provider(&state, &sso).await {
        Ok(r) => Ok(r),
        Err(e) => refused(&state, e),
    }
}

async fn redirect_to_provider(state: &Auth, sso: &Sso) -> Result<Response, SsoError> {
    let now = state.clock.now_secs();
    let metadata = sso.provider.current(now).await?;
    let sign_in = sso.pending.start(now)?;
    let url = sso.provider.authorization_url(&metadata, &sign_in);
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    let bad = |e: axum::http::header::InvalidHeaderValue| {
        SsoError::ProviderUnusable(format!("its authorization URL cannot be sent: {e}"))
    };
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(url.as_str()).map_err(bad)?,
    );
    h.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&prelogin_set_cookie(&sign_in.browser_cookie)).map_err(bad)?,
    );
    Ok(response)
}

/// `GET /login/sso/callback`: the provider's answer.
pub async fn callback(
    State(state): State<Auth>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let sso = sso_of(&state)?;
    match finish(&state, &sso, &headers, &params).await {
        Ok(r) => Ok(r),
        // The database failing is ours to log, not the person's to read.
        Err(SsoError::Account(accounts::SsoAccountError::Db(e))) => Err(e.into()),
        Err(SsoError::Account(accounts::SsoAccountError::Account(
            e @ (accounts::AccountError::Db(_) | accounts::AccountError::Other(_)),
        ))) => Err(e.into()),
        Err(e) => refused(&state, e),
    }
}

async fn finish(
    state: &Auth,
    sso: &Sso,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<Response, SsoError> {
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let c = sso.config();
    let now = state.clock.now_secs();
    let started = sso.pending.finish(
        param("state").unwrap_or_default(),
        prelogin_cookie(headers).as_deref(),
        now,
    )?;
    // RFC 9207: a provider that names itself in the answer must be ours (mix-up defence).
    if let Some(iss) = param("iss") {
        if iss != c.issuer {
            return Err(SsoError::MixUp(iss.to_string()));
        }
    }
    if let Some(error) = param("error") {
        let text = match param("error_description") {
            Some(d) => format!("{error}: {d}"),
            None => error.to_string(),
        };
        return Err(SsoError::ProviderRefused(text));
    }
    let code = param("code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| SsoError::ProviderRefused("the answer carries no code".into()))?;
    let metadata = sso.provider.current(now).await?;
    let token = sso
        .provider
        .exchange(&metadata, code, &started.verifier)
        .await?;
    let want = Expected {
        issuer: &c.issuer,
        client_id: &c.client_id,
        nonce: &started.nonce,
        now,
    };
    let claims = match idtoken::verify(&token, metadata.jwks(), &want) {
        // The provider has rotated its keys since Lockstep last fetched them (or the token
        // names a key nobody published: then the fresh set does not have it either).
        Err(TokenError::UnknownKey(_)) => {
            let fresh = sso.provider.refresh_keys(now).await?;
            idtoken::verify(&token, &fresh, &want)?
        }
        other => other?,
    };
    let role = super::role_for(c, &claims).ok_or(SsoError::NoRole)?;
    let name = super::account_name(c, &claims)?;
    let subject = claims
        .get("sub")
        .and_then(|s| s.as_str())
        .unwrap_or_default();
    let user = accounts::upsert_sso_user(&state.pool, &c.issuer, subject, &name, role, now).await?;
    // Never keep a session id the browser brought along: end it, issue a new one.
    let db = |e: accounts::AccountError| SsoError::Account(accounts::SsoAccountError::Account(e));
    if let Some(old) = session_cookie(headers) {
        accounts::end_session(&state.pool, &old).await.map_err(db)?;
    }
    let id = accounts::create_session(&state.pool, user.id, now)
        .await
        .map_err(db)?;
    tracing::info!(account = %crate::logtext::escaped(&user.name), role = %user.role, "signed in through single sign-on");
    // A page that moves on by itself rather than a redirect: the session cookie is SameSite=Strict
    // and a redirect chain that began at the provider would not carry it to `/`.
    let mut response = Html(SIGNED_IN_PAGE).into_response();
    let h = response.headers_mut();
    for cookie in [session_set_cookie(&id), prelogin_clear_cookie()] {
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie)
                .map_err(|e| SsoError::ProviderUnusable(format!("cookie: {e}")))?,
        );
    }
    Ok(response)
}

const SIGNED_IN_PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"0;url=/\"><title>Signed in · Lockstep</title>\
<link rel=\"stylesheet\" href=\"/static/app.css\"></head>\
<body><main class=\"narrow\"><p id=\"signed-in\">Signed in. <a href=\"/\">Continue to Lockstep</a></p></main></body></html>\n";

/// The single sign-on routes (answering 404 when `[oidc]` is not configured).
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/login/sso", axum::routing::get(start))
        .route(super::CALLBACK_PATH, axum::routing::get(callback))
}
