//! Logging in and out. Login always starts a brand-new session (a session id planted before
//! login is never promoted), and is throttled per account name and per client address after
//! repeated failures (see `auth::throttle`).

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use crate::web::auth::accounts;
use crate::web::auth::extract::{session_clear_cookie, session_cookie, session_set_cookie};
use crate::web::auth::throttle::Refused;
use crate::web::auth::CurrentUser;
use crate::web::views::{html, see_other};
use crate::web::{AppError, Auth};

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub name: String,
    pub error: Option<String>,
    /// The single sign-on button's label, when single sign-on is configured.
    pub sso: Option<String>,
}

fn sso_label(state: &Auth) -> Option<String> {
    state.sso.as_ref().map(|s| s.config().button_label.clone())
}

pub async fn form(
    State(state): State<Auth>,
    user: Option<CurrentUser>,
) -> Result<Response, AppError> {
    if user.is_some() {
        return Ok(see_other("/"));
    }
    html(&LoginPage {
        name: String::new(),
        error: None,
        sso: sso_label(&state),
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

/// The client's address, when the server knows it (`web::serve` records every connection's peer).
pub fn client_addr(
    info: Option<&axum::extract::ConnectInfo<std::net::SocketAddr>>,
) -> Option<std::net::IpAddr> {
    info.map(|axum::extract::ConnectInfo(a)| a.ip())
}

pub async fn submit(
    State(state): State<Auth>,
    headers: HeaderMap,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    Form(f): Form<LoginForm>,
) -> Result<Response, AppError> {
    let now = state.clock.now_secs();
    let addr = client_addr(peer.as_ref().map(|p| &p.0));
    let name = f.name.trim().to_string();
    let refuse = |status: axum::http::StatusCode,
                  message: String,
                  name: String|
     -> Result<Response, AppError> {
        let page = LoginPage {
            name,
            error: Some(message),
            sso: sso_label(&state),
        };
        Ok((status, axum::response::Html(page.render()?)).into_response())
    };
    // Checked and counted at once, so guesses sent together cannot all pass (see throttle.rs).
    if let Err(refused) = state.throttle.try_attempt(&name, addr, now) {
        let whose = match refused {
            Refused::Account(_) => "for this account",
            Refused::Address(_) => "from your address",
        };
        return refuse(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many failed logins {whose}; try again in {} minutes",
                (refused.wait_secs() + 59) / 60
            ),
            name,
        );
    }
    let Some(user) = accounts::authenticate(&state.pool, &name, &f.password).await? else {
        tracing::info!(account = %crate::logtext::escaped(&name), "failed login");
        return refuse(
            axum::http::StatusCode::UNAUTHORIZED,
            "wrong account name or password (or the account is disabled)".into(),
            name,
        );
    };
    state.throttle.record_success(&name, addr);
    // Never keep a session id the browser brought along: end it, issue a new one.
    if let Some(old) = session_cookie(&headers) {
        accounts::end_session(&state.pool, &old).await?;
    }
    let id = accounts::create_session(&state.pool, user.id, now).await?;
    tracing::info!(account = %user.name, "logged in");
    let mut response = see_other("/");
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_set_cookie(&id)
            .parse()
            .map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?,
    );
    Ok(response)
}

pub async fn logout(
    State(state): State<Auth>,
    headers: HeaderMap,
    _user: CurrentUser,
) -> Result<Response, AppError> {
    if let Some(cookie) = session_cookie(&headers) {
        accounts::end_session(&state.pool, &cookie).await?;
    }
    let mut response = see_other("/login");
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_clear_cookie()
            .parse()
            .map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?,
    );
    response.headers_mut().insert(
        "hx-redirect",
        axum::http::HeaderValue::from_static("/login"),
    );
    Ok(response)
}
