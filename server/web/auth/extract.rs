//! Resolves who sent a request, once, in a middleware ([`identify`]) that also enforces CSRF
//! protection; handlers then take a [`CurrentUser`] (or `Option<CurrentUser>`) argument.
//!
//! Two ways in: the `__Host-lockstep` session cookie (browsers), or `Authorization: Bearer`
//! with an API token (automation). A request with a bearer token ignores cookies entirely, so
//! it carries no ambient credential and needs no CSRF token. Every other state-changing request
//! (anything but GET, HEAD, OPTIONS) made with a session must carry the session's CSRF token in
//! the `X-CSRF-Token` header (htmx sends it from `hx-headers` on `<body>`) or a `csrf` form field
//! (plain forms, without JavaScript). Cross-origin state changes are refused outright by checking
//! `Origin` against `Host`.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::accounts::{self, User};
use super::Role;
use crate::web::error::AppError;
use crate::web::Auth;

/// Name of the session cookie. `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
pub const SESSION_COOKIE: &str = "__Host-lockstep";
/// Header htmx sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The person behind a request.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    /// The session's CSRF token, for rendering into pages; `None` for API tokens.
    pub csrf: Option<String>,
}

impl CurrentUser {
    pub fn name(&self) -> &str {
        &self.user.name
    }
    pub fn role(&self) -> Role {
        self.user.role
    }
    /// 403 unless the user's role includes `needed`.
    pub fn require(&self, needed: Role) -> Result<(), AppError> {
        if self.user.role.allows(needed) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this needs the {needed} role; you are {}",
                self.user.role
            )))
        }
    }
    pub fn csrf_token(&self) -> &str {
        self.csrf.as_deref().unwrap_or("")
    }
    /// Authenticated by an API token (no session).
    pub fn by_token(&self) -> bool {
        self.csrf.is_none()
    }
    /// 403 for a request authenticated by an API token: a token cannot mint tokens, so a leaked
    /// one cannot outlive its own expiry or revocation. Tokens come from a browser session (the
    /// API tokens page, or the API with the session) or from `lockstep user token`.
    pub fn require_session_to_mint_tokens(&self) -> Result<(), AppError> {
        if self.by_token() {
            return Err(AppError::Forbidden(
                "an API token cannot create tokens; create one on the API tokens page or with `lockstep user token`".into(),
            ));
        }
        Ok(())
    }
}

/// Who the identify middleware found (absent: nobody).
#[derive(Debug, Clone)]
struct Identity(Option<CurrentUser>);

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Identity>() {
            Some(Identity(Some(u))) => Ok(u.clone()),
            _ => {
                // Nested routers see the path without its prefix; the original tells API from page.
                let path = parts
                    .extensions
                    .get::<axum::extract::OriginalUri>()
                    .map(|u| u.0.path().to_string())
                    .unwrap_or_else(|| parts.uri.path().to_string());
                Err(AppError::Unauthenticated {
                    api: path.starts_with("/api/"),
                })
            }
        }
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for CurrentUser {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Identity>().and_then(|i| i.0.clone()))
    }
}

/// The value of the session cookie, if the request has one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

/// The value of the cookie called `name`, from any of the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn bearer(headers: &HeaderMap) -> Option<Option<String>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let text = value.to_str().ok();
    Some(
        text.and_then(|t| t.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string()),
    )
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether a state-changing request comes from another site. Browsers say so in
/// `Sec-Fetch-Site`; older ones only send `Origin`, which must then name this host. (With
/// `Referrer-Policy: no-referrer`, Chromium sends `Origin: null` on same-origin form posts, so
/// `null` alone proves nothing and the CSRF token decides.)
fn cross_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "cross-site" | "same-site");
    }
    let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST))
    else {
        return false;
    };
    let (Ok(origin), Ok(host)) = (origin.to_str(), host.to_str()) else {
        return true;
    };
    if origin == "null" {
        return false;
    }
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    authority != host
}

/// Constant-time comparison, so a wrong token does not leak how much of it was right.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Middleware: resolves the identity, enforces CSRF on state changes, stores the identity in the
/// request's extensions.
pub async fn identify(State(state): State<Auth>, request: Request, next: Next) -> Response {
    match identify_inner(&state, request).await {
        Ok(request) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

async fn identify_inner(state: &Auth, mut request: Request) -> Result<Request, AppError> {
    let now = state.clock.now_secs();
    let headers = request.headers().clone();
    let state_change = changes_state(request.method());
    if state_change && cross_origin(&headers) {
        return Err(AppError::Forbidden("cross-origin request refused".into()));
    }
    let identity = if let Some(token) = bearer(&headers) {
        let token = token.ok_or(AppError::Unauthenticated { api: true })?;
        let user = accounts::user_for_token(&state.pool, &token, now)
            .await?
            .ok_or(AppError::Unauthenticated { api: true })?;
        Some(CurrentUser { user, csrf: None })
    } else if let Some(cookie) = session_cookie(&headers) {
        let s = &state.settings;
        match accounts::touch_session(
            &state.pool,
            &cookie,
            now,
            s.session_idle_secs,
            s.session_absolute_secs,
        )
        .await?
        {
            Some(session) => {
                // Logging in again replaces the session, so the login form needs no token
                // (the Origin check above still applies).
                if state_change && request.uri().path() != "/login" {
                    request = check_csrf(request, &session.csrf_token).await?;
                }
                Some(CurrentUser {
                    user: session.user,
                    csrf: Some(session.csrf_token),
                })
            }
            None => None,
        }
    } else {
        None
    };
    request.extensions_mut().insert(Identity(identity));
    Ok(request)
}

/// Finds the CSRF token in the header or, for form posts, in the `csrf` field (the body is read
/// and put back unchanged).
async fn check_csrf(request: Request, expected: &str) -> Result<Request, AppError> {
    let refused = || {
        AppError::Forbidden(
            "the form's security token is missing or stale; reload the page and try again".into(),
        )
    };
    if let Some(v) = request.headers().get(CSRF_HEADER) {
        return match v.to_str() {
            Ok(t) if same_secret(t, expected) => Ok(request),
            _ => Err(refused()),
        };
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(refused());
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, crate::web::MAX_FORM_BYTES)
        .await
        .map_err(|_| AppError::BadRequest("the form is too large".into()))?;
    let fields = form_pairs(&bytes).await;
    let ok = fields
        .iter()
        .any(|(k, v)| k == "csrf" && same_secret(v, expected));
    if !ok {
        return Err(refused());
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

/// Parses a urlencoded body the way axum's `Form` does.
async fn form_pairs(bytes: &axum::body::Bytes) -> Vec<(String, String)> {
    use axum::extract::FromRequest;
    let probe = axum::http::Request::builder()
        .method(Method::POST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(bytes.clone()));
    match probe {
        Ok(req) => axum::Form::<Vec<(String, String)>>::from_request(req, &())
            .await
            .map(|f| f.0)
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// `Set-Cookie` value starting a session.
pub fn session_set_cookie(id: &str) -> String {
    format!("{SESSION_COOKIE}={id}; HttpOnly; Secure; SameSite=Strict; Path=/")
}

/// `Set-Cookie` value removing the session cookie.
pub fn session_clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0")
}

impl CurrentUser {
    /// The engine's view of this person: every role up to and including theirs (roles are
    /// ordered, so an approver may also do what an operator does). The engine checks roles and
    /// four-eyes itself; the web layer's own checks only decide what to show and fail early.
    pub fn actor(&self) -> crate::engine::Actor {
        crate::engine::Actor::holding(self.user.name.clone(), self.user.role)
            .of_person(self.user.person.clone())
    }
}
