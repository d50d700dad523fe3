//! `lockstep serve` (the dashboard and JSON API) and `lockstep user` (local accounts).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, Overrides, SiteConfig};
use crate::web::auth::{accounts, Role};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (see README "Configuration").
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080. Plain HTTP only on loopback.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// SQLite database file.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// PEM certificate chain for HTTPS.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate kept in the data folder.
    #[arg(long, conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
}

/// Options shared by the `user` commands.
#[derive(Debug, clap::Args)]
pub struct UserDb {
    /// TOML configuration file (for the database path).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// SQLite database file.
    #[arg(long, value_name = "FILE", global = true)]
    pub db: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum UserCmd {
    /// Create a local account. The password is asked for, or read from standard input.
    Add {
        /// The account name: 1 to 64 letters, digits, '.', '_', '-', '@'.
        name: String,
        /// viewer (reads), operator (runs and tasks), approver (gates, never their own request)
        /// or admin (accounts and agents); each includes the ones before it.
        #[arg(long)]
        role: String,
        /// Read the password from the first line of standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        /// The person the account belongs to (a verified e-mail; default: the name). A second
        /// account for the same person is refused: separation of duties counts people.
        #[arg(long)]
        person: Option<String>,
        #[command(flatten)]
        db: UserDb,
    },
    /// Disable an account and end its sessions at once.
    Disable {
        /// The account to disable (local or single sign-on).
        name: String,
        #[command(flatten)]
        db: UserDb,
    },
    /// Create an API token for an account and print it (shown once).
    Token {
        /// The account the token acts as (with that account's role).
        name: String,
        /// What the token is for (e.g. "ci").
        #[arg(long)]
        label: String,
        #[command(flatten)]
        db: UserDb,
    },
    /// List accounts: name, role, state (active or disabled), tab-separated.
    List {
        #[command(flatten)]
        db: UserDb,
    },
}

pub async fn run_serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        listen: args.listen,
        db: args.db,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        tls_self_signed: args.tls_self_signed,
    };
    let crate::config::Settings {
        server: config,
        site,
        notify: notify_config,
        oidc,
        metrics,
    } = crate::config::Settings::from_process(args.config.as_deref(), &overrides)?;
    let tls = match (&config.tls, config.tls_self_signed) {
        (Some(files), _) => Some(crate::web::tls::server_config(&files.cert, &files.key)?),
        (None, true) => {
            let (cert, key) = crate::web::tls::self_signed(
                &config.data_dir,
                vec!["localhost".into(), config.listen.ip().to_string()],
            )?;
            eprintln!("using the self-signed certificate {}", cert.display());
            Some(crate::web::tls::server_config(&cert, &key)?)
        }
        (None, false) => {
            crate::web::tls::check_plain_http_allowed(&config.listen)?;
            None
        }
    };
    let store = crate::engine::Store::open(&config.db)
        .await
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", config.db.display()))?;
    // The whole chain is verified once at start; a broken one keeps the dashboard readable but
    // refuses every state change until an admin acknowledges the break.
    let chain = store.enforce_chain().await.map_err(|e| {
        anyhow::anyhow!("verifying the audit chain of {}: {e}", config.db.display())
    })?;
    if let Some(p) = &chain.problem {
        eprintln!("WARNING: the audit chain is BROKEN ({p}); every state change is refused until an admin acknowledges the break");
    }
    let checkpoints = audit_checkpoints(&config.data_dir)?;
    let pool = crate::web::db::open(&config.db).await?;
    let ticket_url = notify_config.ticket_url.clone();
    // Notifications (webhooks, e-mail) watch committed events in their own tasks.
    let _notifier = crate::notify::spawn(store.clone(), notify_config).await?;
    // The driver moves approved runs forward: agent steps and waits go to the enrolled agents
    // (`lockstep agent add`, read at start), SQL steps to the configured SQL Servers, probes to
    // the web endpoints — the same executors as the demo, configured from the `[sql]` and
    // `[probes]` tables instead of a simulator.
    let identity = crate::executors::agent::orchestrator_identity(&config.data_dir)?;
    let agents = std::sync::Arc::new(
        crate::executors::agent::AgentExecutor::from_registry(&pool, identity).await?,
    );
    let executors = site_router(&site, agents, &store)?;
    let engine = crate::engine::Engine::new(store.clone(), executors);
    let state = crate::web::AppState::new(
        store,
        pool,
        crate::web::WebSettings {
            session_idle_secs: config.session_idle_secs,
            session_absolute_secs: config.session_absolute_secs,
            tls: tls.is_some(),
        },
        std::sync::Arc::new(crate::engine::clock::TokioClock::new()),
        crate::web::auth::throttle::LoginThrottle::new(
            config.login_max_failures,
            config.login_lockout_secs,
        )
        .with_address_limit(config.login_max_failures_per_address),
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!(
        "Lockstep dashboard on {scheme}://{addr}/ (database {})",
        config.db.display()
    );
    let state = state
        .with_engine(engine.clone())
        .with_ticket_url(ticket_url)
        .with_facts_stale_secs(config.facts_stale_secs);
    let state = if site.simulated_site {
        eprintln!("simulated_site: drain waits are shortened; never use this for a real site");
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
    // Single sign-on: the provider is asked on the first sign-in, not now, so the dashboard (and
    // its local accounts) work while the provider is down.
    let state = match oidc {
        Some(oidc) => {
            eprintln!("single sign-on through {}", oidc.issuer);
            state.with_sso(crate::web::auth::oidc::Sso::new(oidc)?)
        }
        None => state,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Re-verifies what was added (and the head file, the guard triggers) and sends out signed
    // checkpoints, every interval.
    let chain_watch = tokio::spawn(state.store.clone().watch_chain(
        checkpoints.0,
        checkpoints.1,
        stop_rx.clone(),
    ));
    let mut driver_stop = stop_rx.clone();
    let driver = tokio::spawn(engine.drive(async move {
        let _ = driver_stop.changed().await;
    }));
    // Heartbeats and facts of every agent, at once and then every interval; a succeeded run
    // updates its Data Center's recorded versions from them.
    let (state, facts_tasks) = crate::web::estate::start(
        state,
        crate::executors::agent::orchestrator_identity(&config.data_dir)?,
        config.facts_interval_secs,
        config.facts_stale_secs,
        stop_rx.clone(),
    );
    let shutdown = async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop_tx.send(true);
    };
    crate::web::serve(listener, crate::web::router(state), tls, shutdown).await?;
    for t in facts_tasks {
        let _ = t.await;
    }
    let _ = chain_watch.await;
    match driver.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("the engine stopped with an error: {e}"),
        Err(e) => eprintln!("the engine task failed: {e}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Where serve sends signed checkpoints (`LOCKSTEP_AUDIT_CHECKPOINTS`: a file, default
/// `<data_dir>/audit-checkpoints.jsonl`, `off` for none) and how often
/// (`LOCKSTEP_AUDIT_CHECKPOINT_SECS`, default 60; also how often the chain is re-verified).
fn audit_checkpoints(
    data_dir: &std::path::Path,
) -> anyhow::Result<(Option<PathBuf>, std::time::Duration)> {
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
                anyhow::anyhow!(
                    "LOCKSTEP_AUDIT_CHECKPOINT_SECS: `{v}` is not a number of seconds from 1 to 86400"
                )
            })?,
        Err(_) => 60,
    };
    Ok((file, std::time::Duration::from_secs(secs)))
}

/// The executors of a site: agents (and their waits), SQL and probes by step kind.
pub fn site_router(
    site: &SiteConfig,
    agents: std::sync::Arc<crate::executors::agent::AgentExecutor>,
    store: &crate::engine::Store,
) -> anyhow::Result<crate::engine::Router> {
    use crate::executors::probe::ProbeExecutor;
    use crate::executors::sql::{DirScripts, SqlExecutor};
    use crate::knowledge::plan::StepKind;
    let sql = SqlExecutor::new(
        site.sql.clone(),
        std::sync::Arc::new(DirScripts(site.scripts_dir.clone())),
    )
    .with_backups(std::sync::Arc::new(store.clone()));
    let probes = ProbeExecutor::new(site.probes.clone())?;
    Ok(crate::engine::Router::new()
        .route(StepKind::Agent, agents.clone())
        .route(StepKind::Wait, agents)
        .route(StepKind::Sql, std::sync::Arc::new(sql))
        .route(StepKind::Probe, std::sync::Arc::new(probes)))
}

async fn open_db(db: &UserDb) -> anyhow::Result<sqlx::SqlitePool> {
    let overrides = Overrides {
        db: db.db.clone(),
        ..Default::default()
    };
    let config = Config::from_process(db.config.as_deref(), &overrides)?;
    crate::web::db::open(&config.db).await
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !from_stdin && stdin.is_terminal() {
        // No terminal-echo control without another dependency: say so plainly.
        eprint!("Password (shown as typed; prefer --password-stdin from a secret store): ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        anyhow::bail!("no password given on standard input");
    }
    Ok(password)
}

pub async fn run_user(cmd: UserCmd) -> anyhow::Result<ExitCode> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    match cmd {
        UserCmd::Add {
            name,
            role,
            password_stdin,
            person,
            db,
        } => {
            let role: Role = role
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--role: {e}"))?;
            crate::web::auth::check_user_name(&name).map_err(anyhow::Error::msg)?;
            let password = read_password(password_stdin)?;
            let pool = open_db(&db).await?;
            let user =
                accounts::add_user_for(&pool, &name, person.as_deref(), role, &password, now)
                    .await?;
            println!("added {} ({})", user.name, user.role);
        }
        UserCmd::Disable { name, db } => {
            let pool = open_db(&db).await?;
            let user = accounts::disable_user(&pool, &name).await?;
            println!("disabled {} and ended their sessions", user.name);
        }
        UserCmd::Token { name, label, db } => {
            let pool = open_db(&db).await?;
            let user = accounts::find_user(&pool, &name)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no account named `{name}`"))?;
            if user.disabled {
                anyhow::bail!("`{name}` is disabled");
            }
            println!(
                "{}",
                accounts::create_token(&pool, user.id, &label, now).await?
            );
        }
        UserCmd::List { db } => {
            let pool = open_db(&db).await?;
            for u in accounts::list_users(&pool).await? {
                let state = if u.disabled { "disabled" } else { "active" };
                println!("{}\t{}\t{}", u.name, u.role, state);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
