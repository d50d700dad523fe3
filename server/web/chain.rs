//! A broken audit chain on the dashboard: a banner on every page while it is broken, and the
//! admin's acknowledgement (page form and `POST /api/v1/audit/acknowledge`) that records the
//! break in a new signed event and lets changes through again. The engine refuses every state
//! change meanwhile (`engine/store/chain.rs`); this only makes that visible and answerable.
//!
//! The banner is added by a middleware to every full page (the HTML that holds
//! `<main id="main">`) rather than through each page's template, so no page can forget it.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;

use super::auth::{CurrentUser, Role};
use super::views::see_other;
use super::{AppError, Core};
use crate::engine::Store;

const MAIN: &str = "<main id=\"main\">";
/// Pages larger than this are passed through without a banner (none is near it).
const MAX_PAGE: usize = 16 * 1024 * 1024;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Middleware: puts the broken-chain banner at the top of every full page while the chain is
/// broken (with the acknowledgement form for admins).
pub async fn banner(State(store): State<Store>, request: Request, next: Next) -> Response {
    let Some(problem) = store.chain_break() else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    let me = CurrentUser::from_request_parts(&mut parts, &()).await.ok();
    let response = next.run(Request::from_parts(parts, body)).await;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !is_html {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_PAGE).await else {
        return AppError::Internal(anyhow::anyhow!("page too large for the banner"))
            .into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    let Some(at) = text.find(MAIN) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    let form = match &me {
        Some(u) if u.role() == Role::Admin => format!(
            "<form method=\"post\" action=\"/audit/acknowledge\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><label>Reason <input name=\"reason\" required maxlength=\"2000\"></label> <button type=\"submit\">Acknowledge the break and start a new signed segment</button></form>",
            escape(u.csrf_token())
        ),
        _ => "<p>An admin must acknowledge the break before anything can change.</p>".into(),
    };
    let banner = format!(
        "<div class=\"chain-broken\" role=\"alert\" id=\"chain-broken\"><strong>The audit record is BROKEN — nothing can change.</strong> <span>{}</span>{form}</div>",
        escape(&problem)
    );
    let split = at + MAIN.len();
    let page = format!("{}{banner}{}", &text[..split], &text[split..]);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(page))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AckBody {
    pub reason: String,
}

async fn acknowledge(state: &Core, me: &CurrentUser, reason: &str) -> Result<i64, AppError> {
    me.require(Role::Admin)?;
    if reason.len() > 2000 {
        return Err(AppError::BadRequest(
            "the reason is longer than 2000 characters".into(),
        ));
    }
    let event = state
        .store
        .acknowledge_break(me.name(), reason, state.clock.now())
        .await?;
    tracing::warn!(admin = %me.name(), event = event.id, "audit chain break acknowledged");
    state.wake();
    Ok(event.id)
}

/// The answer to an acknowledgement: the audit event that records it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AckAnswer {
    pub acknowledged_in_event: i64,
}

/// `POST /api/v1/audit/acknowledge` `{"reason": "..."}` (admin).
#[utoipa::path(
    post,
    path = "/audit/acknowledge",
    operation_id = "acknowledgeBreak",
    summary = "Acknowledge a break in the audit chain (admin): a signed event starts a new segment",
    request_body = AckBody,
    responses(
        (status = 200, description = "acknowledged", body = AckAnswer),
        (status = 401, description = "not authenticated", body = crate::web::error::ErrorBody),
        (status = 403, description = "the role does not allow it", body = crate::web::error::ErrorBody),
        (status = 409, description = "nothing to acknowledge", body = crate::web::error::ErrorBody),
        (status = 422, description = "invalid input, nothing changed", body = crate::web::error::ErrorBody),
    )
)]
pub async fn acknowledge_api(
    State(state): State<Core>,
    me: CurrentUser,
    crate::web::api::ApiJson(body): crate::web::api::ApiJson<AckBody>,
) -> Result<Json<AckAnswer>, crate::web::api::ApiError> {
    let id = acknowledge(&state, &me, &body.reason).await?;
    Ok(Json(AckAnswer {
        acknowledged_in_event: id,
    }))
}

/// `POST /audit/acknowledge` (the banner's form, admin).
pub async fn acknowledge_page(
    State(state): State<Core>,
    me: CurrentUser,
    Form(body): Form<AckBody>,
) -> Result<Response, AppError> {
    acknowledge(&state, &me, &body.reason).await?;
    Ok(see_other("/audit"))
}
