//! The dashboard and JSON API (axum + askama + htmx + server-sent events).
//!
//! [`router`] builds the whole application from an [`AppState`]; [`serve`] runs it on a bound
//! listener (plain HTTP on loopback, or TLS) until the shutdown future completes. Tests start the
//! real application the same way on port 0.

pub mod api;
pub mod assets;
pub mod audit_words;
pub mod auth;
pub mod chain;
pub mod clock;
pub mod datacenters;
pub mod error;
pub mod estate;
pub mod live;
pub mod metrics;
pub mod pages;
pub mod record;
pub mod request_id;
pub mod runview;
pub mod security;
pub mod tls;
pub mod topology;
pub mod views;
pub mod words;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use sqlx::SqlitePool;

use crate::engine::{EngineError, Refusal, Store};

pub use clock::Clock;
pub use error::AppError;

use auth::throttle::LoginThrottle;

/// Largest form or JSON body accepted (inventories are the big ones).
pub const MAX_FORM_BYTES: usize = 2 * 1024 * 1024;

/// Settings the request handlers need.
#[derive(Debug, Clone)]
pub struct WebSettings {
    pub session_idle_secs: u64,
    pub session_absolute_secs: u64,
    /// Whether the dashboard is served over TLS (turns on HSTS).
    pub tls: bool,
}

/// Everything handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The engine's store: runs, steps, the audit chain and its live events.
    pub store: Store,
    /// The store's writer, for the dashboard's own tables (users, sessions, tokens,
    /// inventories); the store's own pool is read-only.
    pub pool: SqlitePool,
    pub live: Arc<live::Live>,
    pub settings: Arc<WebSettings>,
    pub clock: Clock,
    pub throttle: Arc<LoginThrottle>,
    /// The engine's driver handle, when one runs in this process: woken after people act so the
    /// run moves on at once instead of at the next tick.
    pub engine: Option<crate::engine::driver::Engine>,
    /// The Data Centers behind this dashboard are simulated (`lockstep demo`): new plans get
    /// [`crate::knowledge::plan::Plan::for_simulated_site`], so nobody waits minutes for backup
    /// sessions that a simulator never has. Never set for a real site.
    pub simulated_site: bool,
    /// Single sign-on through the company's OpenID provider, when `[oidc]` is configured.
    pub sso: Option<Arc<auth::oidc::Sso>>,
    /// Counters for `/metrics` (and who may read them).
    pub metrics: Arc<metrics::Metrics>,
    /// Link template for change tickets (`notify.ticket_url`, `{ticket}` replaced), so the
    /// change record links to the ticket.
    pub ticket_url: Option<Arc<str>>,
    /// The agents' heartbeat and facts collector, when one runs in this process (`serve`, the
    /// demo): "Refresh facts" and `POST /api/v1/agents/refresh` ask it to collect now.
    pub collector: Option<Arc<crate::executors::agent::collector::Collector>>,
    /// Facts older than this (seconds) are shown as stale and not trusted by preflight.
    pub facts_stale_secs: i64,
}

impl AppState {
    /// Builds the state and starts the live-view hub (call inside a Tokio runtime).
    pub fn new(
        store: Store,
        settings: WebSettings,
        clock: Clock,
        throttle: LoginThrottle,
    ) -> AppState {
        AppState {
            live: live::Live::start(store.clone(), clock.clone()),
            metrics: metrics::Metrics::start(&store),
            pool: store.writer().clone(),
            store,
            settings: Arc::new(settings),
            clock,
            throttle: Arc::new(throttle),
            engine: None,
            simulated_site: false,
            sso: None,
            ticket_url: None,
            collector: None,
            facts_stale_secs: crate::config::DEFAULT_FACTS_STALE_SECS as i64,
        }
    }

    /// Sets how old agent facts may be before preflight stops trusting them.
    pub fn with_facts_stale_secs(mut self, secs: u64) -> AppState {
        self.facts_stale_secs = i64::try_from(secs).unwrap_or(i64::MAX);
        // The preflight that gates a start (in the engine) trusts facts exactly as long.
        self.store.set_facts_stale_secs(secs);
        self
    }

    /// The agents' latest facts with their age now, for [`crate::knowledge::preflight::preflight_live`].
    pub async fn live_facts(&self) -> Result<crate::knowledge::preflight::LiveFacts, AppError> {
        Ok(crate::executors::agent::registry::live_facts(
            &self.pool,
            self.clock.now(),
            self.facts_stale_secs,
        )
        .await?)
    }

    /// Attaches the facts collector (see [`AppState::collector`]) and the staleness limit.
    pub fn with_collector(
        mut self,
        collector: Arc<crate::executors::agent::collector::Collector>,
        stale_secs: u64,
    ) -> AppState {
        self.collector = Some(collector);
        self.facts_stale_secs = i64::try_from(stale_secs).unwrap_or(i64::MAX);
        self.store.set_facts_stale_secs(stale_secs);
        self
    }

    /// Marks the site as simulated (see [`AppState::simulated_site`]).
    pub fn with_simulated_site(mut self) -> AppState {
        self.simulated_site = true;
        self
    }

    /// Attaches the driver handle (see [`AppState::wake`]).
    pub fn with_engine(mut self, engine: crate::engine::driver::Engine) -> AppState {
        self.engine = Some(engine);
        self
    }

    /// Turns on single sign-on (see [`auth::oidc`]).
    pub fn with_sso(mut self, sso: auth::oidc::Sso) -> AppState {
        self.sso = Some(Arc::new(sso));
        self
    }

    /// Sets the change-ticket link template (see [`AppState::ticket_url`]).
    pub fn with_ticket_url(mut self, template: Option<String>) -> AppState {
        self.ticket_url = template.map(Arc::from);
        self
    }

    /// The link for change ticket `number`, when a template is configured.
    pub fn ticket_link(&self, number: &str) -> Option<String> {
        self.ticket_url
            .as_deref()
            .map(|t| crate::notify::config::ticket_link(t, number))
    }

    /// Tells the driver that people changed something.
    pub fn wake(&self) {
        if let Some(e) = &self.engine {
            e.wake();
        }
    }
}

/// The whole application: pages, API, static files, health, with identity, CSRF and security
/// headers on every response (including 404s and the event streams).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(pages::routes())
        .merge(auth::oidc::flow::routes())
        .nest("/api/v1", api::routes())
        .route("/healthz", get(healthz))
        .route("/favicon.ico", get(assets::favicon))
        .route("/readyz", get(readyz))
        .route("/static/{*path}", get(assets::asset))
        .route(
            "/audit/acknowledge",
            axum::routing::post(chain::acknowledge_page),
        )
        .fallback(not_found)
        // Inside `identify`: the banner's form needs the signed-in admin's CSRF token.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            chain::banner,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
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
            state.clone(),
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
            state.clone(),
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
async fn readyz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<&'static str, AppError> {
    sqlx::query_scalar::<_, i64>("SELECT 1")
        .fetch_one(&state.pool)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("database not ready: {e}")))?;
    Ok("ready\n")
}

pub use tls::serve;

/// Maps an engine error onto the web's: refusals keep their words, with the status that fits.
pub fn engine_error(e: EngineError) -> AppError {
    match e {
        EngineError::Refused(r) => match r {
            Refusal::MissingRole { .. }
            | Refusal::FourEyes { .. }
            | Refusal::PolicyViolation(_)
            | Refusal::AlreadyApproved { .. } => AppError::Forbidden(r.to_string()),
            Refusal::CommentRequired
            | Refusal::NoteRequired
            | Refusal::JustificationRequired
            | Refusal::EvidenceRequired
            | Refusal::ReasonRequired => AppError::BadRequest(r.to_string()),
            other => AppError::Conflict(other.to_string()),
        },
        EngineError::Conflict(_) | EngineError::ChainBroken(_) => AppError::Conflict(e.to_string()),
        EngineError::NotFound(what) => AppError::NotFound(format!("{what} not found")),
        EngineError::Invalid(m) => AppError::BadRequest(m),
        other => AppError::Internal(other.into()),
    }
}
