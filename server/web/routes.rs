//! The whole application: which path goes to which handler, and the layers every response
//! passes through (identity, CSRF, the broken-chain banner, security headers, body limit,
//! request ids, metrics).

use axum::extract::{FromRef, State};
use axum::routing::{get, post};
use axum::Router;
use sqlx::SqlitePool;

use super::{
    api, assets, auth, chain, metrics, pages, request_id, security, AppError, AppState, Auth,
};

/// Largest form or JSON body accepted (inventories are the big ones).
pub const MAX_FORM_BYTES: usize = 2 * 1024 * 1024;

/// The whole application: pages, API, static files, health, with identity, CSRF and security
/// headers on every response (including 404s and the event streams).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(pages::routes())
        .merge(super::campaigns::pages::routes())
        .merge(auth::oidc::flow::routes())
        .nest("/api/v1", api::routes())
        .route("/healthz", get(healthz))
        .route("/favicon.ico", get(assets::favicon))
        .route("/readyz", get(readyz))
        .route("/static/{*path}", get(assets::asset))
        .route("/audit/acknowledge", post(chain::acknowledge_page))
        .fallback(not_found)
        // Inside `identify`: the banner's form needs the signed-in admin's CSRF token.
        .layer(axum::middleware::from_fn_with_state(
            state.store.clone(),
            chain::banner,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Auth::from_ref(&state),
            auth::extract::identify,
        ))
        // Outside the session/API-token check: `/metrics` has its own token (see metrics.rs).
        .route("/metrics", get(metrics::scrape))
        .layer(axum::middleware::from_fn(security::htmx_errors))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_FORM_BYTES,
        ))
        // Outside the body limit, so its 413 is JSON under /api/ too.
        .layer(axum::middleware::from_fn(api::json_refusals))
        .layer(axum::middleware::from_fn_with_state(
            state.settings.clone(),
            security::add_headers,
        ))
        // One span per request carrying its request id (and run id), one INFO line per answer.
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(request_id::span)
                .on_response(
                    tower_http::trace::DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Millis),
                ),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn(request_id::assign))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> AppError {
    AppError::NotFound(format!("nothing at {}", uri.path()))
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the database answers.
async fn readyz(State(pool): State<SqlitePool>) -> Result<&'static str, AppError> {
    sqlx::query_scalar::<_, i64>("SELECT 1")
        .fetch_one(&pool)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("database not ready: {e}")))?;
    Ok("ready\n")
}
