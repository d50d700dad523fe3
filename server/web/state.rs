//! What the handlers share: [`AppState`] holds each shared part once, and handlers and
//! middleware extract only the sub-state they use (axum's `FromRef`).
//!
//! Every field of [`AppState`] is a sub-state of its own (`State<Store>`, `State<Arc<Live>>`,
//! `State<Arc<Metrics>>`, ...). Two more are views assembled from those parts, because most
//! handlers need the same few together: [`Core`] (the engine seen from the web: store, the
//! dashboard's pool, the clock and the driver's wake-up) and [`Auth`] (what signs people in).
//! A view costs a few reference-count increments per request.

use std::sync::Arc;

use axum::extract::FromRef;
use sqlx::SqlitePool;

use crate::engine::clock::Clock;
use crate::engine::Store;
use crate::executors::agent::collector::Collector;
use crate::knowledge::preflight::LiveFacts;

use super::auth::oidc::Sso;
use super::auth::throttle::LoginThrottle;
use super::{live, metrics, AppError};

/// The engine's clock as the web holds it (milliseconds; seconds through
/// [`Clock::now_secs`]). The system clock in production, a hand-moved one in tests.
pub type SharedClock = Arc<dyn Clock>;

/// Settings the request handlers need.
#[derive(Debug, Clone)]
pub struct WebSettings {
    pub session_idle_secs: u64,
    pub session_absolute_secs: u64,
    /// Whether the dashboard is served over TLS (turns on HSTS).
    pub tls: bool,
}

/// Tells the engine's driver that people changed something, so the run moves on at once instead
/// of at the next tick. Always present: a no-op when no driver runs in this process (tests of the
/// pages alone), so handlers never ask whether there is one.
#[derive(Clone)]
pub struct Wake(Arc<dyn Fn() + Send + Sync>);

impl Wake {
    /// Wakes nobody.
    pub fn none() -> Wake {
        Wake(Arc::new(|| {}))
    }

    /// Wakes `engine`'s driver.
    pub fn driver(engine: crate::engine::driver::Engine) -> Wake {
        Wake(Arc::new(move || engine.wake()))
    }

    pub fn wake(&self) {
        (self.0)()
    }
}

impl Default for Wake {
    fn default() -> Wake {
        Wake::none()
    }
}

/// Options of the site behind this dashboard.
#[derive(Clone)]
pub struct Site {
    /// The Data Centers are simulated (`lockstep demo`): new plans get
    /// [`crate::knowledge::plan::Plan::for_simulated_site`], so nobody waits minutes for backup
    /// sessions that a simulator never has. Never set for a real site.
    pub simulated: bool,
    /// Link template for change tickets (`notify.ticket_url`, `{ticket}` replaced), so the
    /// change record links to the ticket.
    pub ticket_url: Option<Arc<str>>,
    /// The agents' heartbeat and facts collector, when one runs in this process (`serve`, the
    /// demo): "Refresh facts" and `POST /api/v1/agents/refresh` ask it to collect now.
    pub collector: Option<Arc<Collector>>,
    /// Facts older than this (seconds) are shown as stale and not trusted by preflight.
    pub facts_stale_secs: i64,
}

impl Site {
    /// The link for change ticket `number`, when a template is configured.
    pub fn ticket_link(&self, number: &str) -> Option<String> {
        self.ticket_url
            .as_deref()
            .map(|t| crate::notify::config::ticket_link(t, number))
    }

    /// The agents' latest facts with their age now, for
    /// [`crate::knowledge::preflight::preflight_live`].
    pub async fn live_facts(&self, core: &Core) -> Result<LiveFacts, AppError> {
        Ok(crate::executors::agent::registry::live_facts(
            &core.pool,
            core.clock.now_secs(),
            self.facts_stale_secs,
        )
        .await?)
    }
}

/// Everything handlers share, each part once. Cheap to clone.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// The engine's store: runs, steps, the audit chain and its live events.
    pub store: Store,
    /// A writable pool on the same database for the dashboard's own tables (users, sessions,
    /// tokens, inventories); the store's own pool is read-only.
    pub pool: SqlitePool,
    pub clock: SharedClock,
    /// The driver's wake-up (see [`Wake`]).
    pub wake: Wake,
    pub live: Arc<live::Live>,
    /// Counters for `/metrics` (and who may read them).
    pub metrics: Arc<metrics::Metrics>,
    pub settings: Arc<WebSettings>,
    pub throttle: Arc<LoginThrottle>,
    /// Single sign-on through the company's OpenID provider, when `[oidc]` is configured.
    pub sso: Option<Arc<Sso>>,
    pub site: Site,
}

/// The engine seen from the web: what nearly every handler needs.
#[derive(Clone)]
pub struct Core {
    pub store: Store,
    pub pool: SqlitePool,
    pub clock: SharedClock,
    pub wake: Wake,
}

impl Core {
    /// Tells the driver that people changed something (see [`Wake`]).
    pub fn wake(&self) {
        self.wake.wake()
    }
}

impl FromRef<AppState> for Core {
    fn from_ref(s: &AppState) -> Core {
        Core {
            store: s.store.clone(),
            pool: s.pool.clone(),
            clock: s.clock.clone(),
            wake: s.wake.clone(),
        }
    }
}

/// What signs people in and keeps them signed in: accounts and sessions (in the pool), the
/// session limits, the login throttle and single sign-on.
#[derive(Clone)]
pub struct Auth {
    pub pool: SqlitePool,
    pub clock: SharedClock,
    pub settings: Arc<WebSettings>,
    pub throttle: Arc<LoginThrottle>,
    pub sso: Option<Arc<Sso>>,
}

impl FromRef<AppState> for Auth {
    fn from_ref(s: &AppState) -> Auth {
        Auth {
            pool: s.pool.clone(),
            clock: s.clock.clone(),
            settings: s.settings.clone(),
            throttle: s.throttle.clone(),
            sso: s.sso.clone(),
        }
    }
}

impl AppState {
    /// Builds the state and starts the live-view hub (call inside a Tokio runtime).
    pub fn new(
        store: Store,
        settings: WebSettings,
        clock: SharedClock,
        throttle: LoginThrottle,
    ) -> AppState {
        AppState {
            live: live::Live::start(store.clone(), clock.clone()),
            metrics: metrics::Metrics::start(&store),
            pool: store.writer().clone(),
            store,
            clock,
            wake: Wake::none(),
            settings: Arc::new(settings),
            throttle: Arc::new(throttle),
            sso: None,
            site: Site {
                simulated: false,
                ticket_url: None,
                collector: None,
                facts_stale_secs: crate::knowledge::preflight::DEFAULT_FACTS_STALE_SECS as i64,
            },
        }
    }

    /// Sets how old agent facts may be before preflight stops trusting them.
    pub fn with_facts_stale_secs(mut self, secs: u64) -> AppState {
        self.site.facts_stale_secs = i64::try_from(secs).unwrap_or(i64::MAX);
        // The preflight that gates a start (in the engine) trusts facts exactly as long.
        self.store.set_facts_stale_secs(secs);
        self
    }

    /// Attaches the facts collector (see [`Site::collector`]) and the staleness limit.
    pub fn with_collector(mut self, collector: Arc<Collector>, stale_secs: u64) -> AppState {
        self.site.collector = Some(collector);
        self.with_facts_stale_secs(stale_secs)
    }

    /// Marks the site as simulated (see [`Site::simulated`]).
    pub fn with_simulated_site(mut self) -> AppState {
        self.site.simulated = true;
        self
    }

    /// Lets people's actions wake the engine's driver (see [`Wake`]).
    pub fn with_engine(mut self, engine: crate::engine::driver::Engine) -> AppState {
        self.wake = Wake::driver(engine);
        self
    }

    /// Turns on single sign-on (see [`super::auth::oidc`]).
    pub fn with_sso(mut self, sso: Sso) -> AppState {
        self.sso = Some(Arc::new(sso));
        self
    }

    /// Sets the change-ticket link template (see [`Site::ticket_url`]).
    pub fn with_ticket_url(mut self, template: Option<String>) -> AppState {
        self.site.ticket_url = template.map(Arc::from);
        self
    }

    /// Tells the driver that people changed something (see [`Wake`]).
    pub fn wake(&self) {
        self.wake.wake()
    }
}
