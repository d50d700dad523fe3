//! One start-up for `lockstep serve`, `lockstep demo` and the tests: [`Application::build`] opens
//! the store (the one database owner), builds the executors, the engine and the web state, and
//! binds the listener; [`Application::run_until_stopped`] starts the long-running parts (driver,
//! chain watch, notifications, facts collector), serves until the injected shutdown completes,
//! and waits for every task it started.
//!
//! What differs between the three callers is in [`Options`]: which executors steps run on (the
//! site's, a simulated Data Center's, a test's), the web clock, and which background parts run.
//! Everything else comes from the one [`Settings`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;

use lockstep_protocol::tls::Identity;

use crate::config::{Settings, SiteConfig};
use crate::engine::{Engine, Router, Store};
use crate::web::{AppState, SharedClock, WebSettings};

/// Builds a router once the store is open (the demo's simulated site needs the store).
pub type BuildExecutors =
    Box<dyn FnOnce(Store) -> Pin<Box<dyn Future<Output = anyhow::Result<Router>> + Send>> + Send>;

/// The executors steps run on.
pub enum Executors {
    /// The site's: the enrolled agents (read at start), `[sql]` and `[probes]` (`serve`).
    Site,
    /// A router made by the caller (tests).
    Given(Router),
    /// A router made from the open store (`demo`, whose simulated site backs up through it).
    Build(BuildExecutors),
}

/// What differs between `serve`, `demo` and the tests.
pub struct Options {
    pub executors: Executors,
    /// The web layer's clock (tests use a manual one).
    pub clock: SharedClock,
    /// Whether the engine's driver runs and people's actions wake it (off for page tests,
    /// where runs move only when the test moves them).
    pub driver: bool,
    /// Whether the agents' heartbeats and facts are collected (`serve`, `demo`).
    pub collect_facts: bool,
    /// Whether the whole audit chain is verified at start, writes are refused while it is broken,
    /// and signed checkpoints are sent (`serve`).
    pub guard_chain: bool,
    /// The Data Centers are simulated (see [`AppState::simulated_site`]); also set by the
    /// settings' `simulated_site`.
    pub simulated_site: bool,
    /// A listener bound beforehand, served instead of binding the settings' `listen` (a test
    /// whose settings must name the port, e.g. single sign-on's redirect address).
    pub listener: Option<tokio::net::TcpListener>,
}

impl Options {
    /// `lockstep serve`: the site's executors and every background part.
    pub fn serve() -> Options {
        Options {
            executors: Executors::Site,
            clock: std::sync::Arc::new(crate::engine::clock::TokioClock::new()),
            driver: true,
            collect_facts: true,
            guard_chain: true,
            simulated_site: false,
            listener: None,
        }
    }

    /// A test: the given executors, no background part but the driver (when asked for).
    pub fn test(router: Router, clock: SharedClock, driver: bool) -> Options {
        Options {
            executors: Executors::Given(router),
            clock,
            driver,
            collect_facts: false,
            guard_chain: false,
            simulated_site: false,
            listener: None,
        }
    }
}

/// The built application, bound to its port and not yet serving.
pub struct Application {
    state: AppState,
    engine: Engine,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    tls: Option<rustls::ServerConfig>,
    /// The notifications watcher, started at build so a bad `[notify]` stops the start.
    notifier: tokio::task::JoinHandle<()>,
    /// Where signed checkpoints go and how often the chain is re-verified (when guarded).
    checkpoints: Option<(Option<PathBuf>, Duration)>,
    /// The identity the facts collector shows the agents, its interval and staleness limit
    /// (seconds), when facts are collected.
    facts: Option<(Identity, u64, u64)>,
    driver: bool,
}

impl Application {
    /// Opens the store, builds the executors, the engine and the web state, and binds the
    /// listener (port 0 picks a free one: see [`Application::port`]).
    pub async fn build(settings: Settings, options: Options) -> anyhow::Result<Application> {
        let Settings {
            server: config,
            site,
            notify,
            oidc,
            metrics,
        } = settings;
        let tls = tls_config(&config)?;
        let store = Store::open(&config.db)
            .await
            .map_err(|e| anyhow!("opening {}: {e}", config.db.display()))?;
        let checkpoints = if options.guard_chain {
            // The whole chain is verified once at start; a broken one keeps the dashboard
            // readable but refuses every state change until an admin acknowledges the break.
            let chain = store.enforce_chain().await.map_err(|e| {
                anyhow!("verifying the audit chain of {}: {e}", config.db.display())
            })?;
            if let Some(p) = &chain.problem {
                eprintln!("WARNING: the audit chain is BROKEN ({p}); every state change is refused until an admin acknowledges the break");
            }
            Some(audit_checkpoints(&config.data_dir)?)
        } else {
            None
        };
        let router = match options.executors {
            Executors::Given(router) => router,
            Executors::Build(build) => build(store.clone()).await?,
            Executors::Site => {
                // Agent steps and waits go to the enrolled agents (`lockstep agent add`, read at
                // start), SQL steps to the configured SQL Servers, probes to the web endpoints.
                let identity = crate::executors::agent::orchestrator_identity(&config.data_dir)?;
                let agents = Arc::new(
                    crate::executors::agent::AgentExecutor::from_registry(store.writer(), identity)
                        .await?,
                );
                site_router(&site, agents, &store)?
            }
        };
        let engine = Engine::new(store.clone(), router);
        let state = AppState::new(
            store,
            WebSettings {
                session_idle_secs: config.session_idle_secs,
                session_absolute_secs: config.session_absolute_secs,
                tls: tls.is_some(),
            },
            options.clock,
            crate::web::auth::throttle::LoginThrottle::new(
                config.login_max_failures,
                config.login_lockout_secs,
            )
            .with_address_limit(config.login_max_failures_per_address),
        )
        .with_ticket_url(notify.ticket_url.clone())
        .with_facts_stale_secs(config.facts_stale_secs);
        let state = if options.driver {
            state.with_engine(engine.clone())
        } else {
            state
        };
        if site.simulated_site {
            eprintln!("simulated_site: drain waits are shortened; never use this for a real site");
        }
        let state = if site.simulated_site || options.simulated_site {
            state.with_simulated_site()
        } else {
            state
        };
        // Without a token, `/metrics` is open only while the listener is loopback.
        state
            .metrics
            .set_access(crate::web::metrics::MetricsAccess {
                token: metrics.token,
                network_listener: !config.listen.ip().is_loopback(),
            });
        // Single sign-on: the provider is asked on the first sign-in, not now, so the dashboard
        // (and its local accounts) work while the provider is down.
        let state = match oidc {
            Some(oidc) => {
                eprintln!("single sign-on through {}", oidc.issuer);
                state.with_sso(crate::web::auth::oidc::Sso::new(oidc)?)
            }
            None => state,
        };
        let facts = if options.collect_facts {
            Some((
                crate::executors::agent::orchestrator_identity(&config.data_dir)?,
                config.facts_interval_secs,
                config.facts_stale_secs,
            ))
        } else {
            None
        };
        // Notifications (webhooks, e-mail) watch committed events in their own tasks.
        let notifier = crate::notify::spawn(state.store.clone(), notify).await?;
        let listener = match options.listener {
            Some(bound) => bound,
            None => tokio::net::TcpListener::bind(config.listen)
                .await
                .map_err(|e| anyhow!("cannot listen on {}: {e}", config.listen))?,
        };
        let addr = listener.local_addr()?;
        Ok(Application {
            state,
            engine,
            listener,
            addr,
            tls,
            notifier,
            checkpoints,
            facts,
            driver: options.driver,
        })
    }

    /// The port the listener is bound to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address the listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The dashboard's base URL, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The web state handlers share (tests act through its store and pool).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The store: the one owner of the database.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Starts the driver, the chain watch, notifications and the facts collector, serves until
    /// `shutdown` completes, then waits for each of them to end.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            state,
            engine,
            listener,
            tls,
            notifier,
            checkpoints,
            facts,
            driver,
            ..
        } = self;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // Re-verifies what was added (and the head file, the guard triggers) and sends out
        // signed checkpoints, every interval.
        let chain_watch = checkpoints.map(|(file, every)| {
            tokio::spawn(
                state
                    .store
                    .clone()
                    .watch_chain(file, every, stop_rx.clone()),
            )
        });
        let driver = driver.then(|| {
            let mut stop = stop_rx.clone();
            tokio::spawn(engine.drive(async move {
                let _ = stop.changed().await;
            }))
        });
        // Heartbeats and facts of every agent, at once and then every interval; a succeeded run
        // updates its Data Center's recorded versions from them.
        let (state, facts_tasks) = match facts {
            Some((identity, interval, stale)) => {
                crate::web::estate::start(state, identity, interval, stale, stop_rx.clone())
            }
            None => (state, Vec::new()),
        };
        let stop_tx = Arc::new(stop_tx);
        let signal = stop_tx.clone();
        let stopped = async move {
            shutdown.await;
            let _ = signal.send(true);
        };
        let served = crate::web::serve(listener, crate::web::router(state), tls, stopped).await;
        // Also when serving ended on its own (an error): nothing is left running.
        let _ = stop_tx.send(true);
        for t in facts_tasks {
            let _ = t.await;
        }
        if let Some(t) = chain_watch {
            let _ = t.await;
        }
        if let Some(driver) = driver {
            match driver.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("the engine stopped with an error: {e}"),
                Err(e) => eprintln!("the engine task failed: {e}"),
            }
        }
        // The watcher follows the store's events, which outlive it: it is stopped here.
        // Deliveries already under way finish on their own.
        notifier.abort();
        let _ = notifier.await;
        served
    }
}

/// The TLS configuration the settings ask for; plain HTTP only on loopback.
fn tls_config(config: &crate::config::Config) -> anyhow::Result<Option<rustls::ServerConfig>> {
    match (&config.tls, config.tls_self_signed) {
        (Some(files), _) => Ok(Some(crate::web::tls::server_config(
            &files.cert,
            &files.key,
        )?)),
        (None, true) => {
            let (cert, key) = crate::web::tls::self_signed(
                &config.data_dir,
                vec!["localhost".into(), config.listen.ip().to_string()],
            )?;
            eprintln!("using the self-signed certificate {}", cert.display());
            Ok(Some(crate::web::tls::server_config(&cert, &key)?))
        }
        (None, false) => {
            crate::web::tls::check_plain_http_allowed(&config.listen)?;
            Ok(None)
        }
    }
}

/// Where serve sends signed checkpoints (`LOCKSTEP_AUDIT_CHECKPOINTS`: a file, default
/// `<data_dir>/audit-checkpoints.jsonl`, `off` for none) and how often
/// (`LOCKSTEP_AUDIT_CHECKPOINT_SECS`, default 60; also how often the chain is re-verified).
fn audit_checkpoints(data_dir: &Path) -> anyhow::Result<(Option<PathBuf>, Duration)> {
    let file = match std::env::var("LOCKSTEP_AUDIT_CHECKPOINTS") {
        Ok(v) if v == "off" => None,
        Ok(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => Some(data_dir.join("audit-checkpoints.jsonl")),
    };
    let secs = match std::env::var("LOCKSTEP_AUDIT_CHECKPOINT_SECS") {
        Ok(v) => v
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=86_400).contains(s))
            .ok_or_else(|| {
                anyhow!(
                    "LOCKSTEP_AUDIT_CHECKPOINT_SECS: `{v}` is not a number of seconds from 1 to 86400"
                )
            })?,
        Err(_) => 60,
    };
    Ok((file, Duration::from_secs(secs)))
}

/// The executors of a site: agents (and their waits), SQL and probes by step kind.
pub fn site_router(
    site: &SiteConfig,
    agents: Arc<crate::executors::agent::AgentExecutor>,
    store: &Store,
) -> anyhow::Result<Router> {
    use crate::executors::probe::ProbeExecutor;
    use crate::executors::sql::{DirScripts, SqlExecutor};
    use crate::knowledge::plan::StepKind;
    let sql = SqlExecutor::new(
        site.sql.clone(),
        Arc::new(DirScripts(site.scripts_dir.clone())),
    )
    .with_backups(Arc::new(store.clone()));
    let probes = ProbeExecutor::new(site.probes.clone())?;
    Ok(Router::new()
        .route(StepKind::Agent, agents.clone())
        .route(StepKind::Wait, agents)
        .route(StepKind::Sql, Arc::new(sql))
        .route(StepKind::Probe, Arc::new(probes)))
}
