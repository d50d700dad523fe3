//! `lockstep demo`: the dashboard on the embedded SQLite in a data directory, driving a
//! simulated Data Center whose agents are enrolled with pinned certificates, with a demo account
//! per role. The app is built by the same [`Application`] as `lockstep serve`; what the demo adds
//! is the simulated site, its executors, the accounts and the manual-task hook: when a person
//! claims a manual task in the browser, the simulated host does the work (Setup installs the
//! target version), so the post-condition checked after "complete" is checked against a real
//! change.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use lockstep_protocol::tls::Thumbprint;
use lockstep_simulator::SimulatedDataCenter;
use rand::Rng;

use crate::config::{Config, Overrides, Settings};
use crate::engine::machine::StepStatus;
use crate::engine::Store;
use crate::knowledge::inventory::Inventory;
use crate::knowledge::plan::StepKind;
use crate::startup::{Application, Executors, Options};
use crate::web::auth::{accounts, Role};

/// The demo accounts: name, role, what they are for.
pub const ACCOUNTS: [(&str, &str, &str); 5] = [
    ("operator", "operator", "starts runs, performs manual tasks"),
    ("approver", "approver", "approves the start and the gates"),
    (
        "approver2",
        "approver",
        "a second approver, for gates that need two",
    ),
    ("viewer", "viewer", "watches"),
    ("admin", "admin", "manages accounts"),
];

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn password() -> String {
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(20)
        .map(char::from)
        .collect()
}

/// Runs the demo until Ctrl-C.
pub async fn run(
    data_dir: &Path,
    listen: &str,
    inventory_text: &str,
    faults: &[super::Fault],
) -> anyhow::Result<ExitCode> {
    // Refuse a non-loopback address before anything is created.
    let addr: std::net::SocketAddr = listen.parse().map_err(|e| {
        anyhow!("--listen `{listen}` is not an address such as 127.0.0.1:8080: {e}")
    })?;
    if !addr.ip().is_loopback() {
        anyhow::bail!(
            "--listen {addr}: the demo serves plain HTTP, so it listens only on a loopback \
             address such as 127.0.0.1:8080 (use `lockstep serve` with TLS for anything else)"
        );
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let inventory_path = data_dir.join("inventory.toml");
    let first_start = !inventory_path.exists();
    if first_start {
        Inventory::parse(inventory_text).map_err(|e| anyhow!("the demo inventory: {e}"))?;
        std::fs::write(&inventory_path, inventory_text)?;
    }
    let inventory = Inventory::load(&inventory_path).map_err(|e| anyhow!("{e}"))?;
    let toml = std::fs::read_to_string(&inventory_path)?;
    let db = data_dir.join("lockstep.db");
    let mut config = Config::from_process(
        None,
        &Overrides {
            listen: Some(listen.to_string()),
            db: Some(db.clone()),
            ..Default::default()
        },
    )?;
    // The orchestrator's identity (pinned by the simulated agents) lives in the demo's folder.
    config.data_dir = data_dir.to_path_buf();
    // The demo reads no settings file: no notifications, no single sign-on, `/metrics` as on
    // any loopback listener.
    let settings = Settings {
        server: config,
        site: Default::default(),
        notify: Default::default(),
        oidc: None,
        metrics: Default::default(),
    };
    let identity = crate::executors::agent::orchestrator_identity(data_dir)?;
    // The simulated Data Center starts once the store is open (its SQL backups go through it);
    // the builder hands back its router, the Data Center comes back here.
    let (started, simulated) = tokio::sync::oneshot::channel();
    let site_inventory = inventory_path.clone();
    let site_dir = data_dir.join("simulated");
    let executors = Executors::Build(Box::new(move |store: Store| {
        Box::pin(async move {
            let (dc, router) =
                super::site::start(&site_inventory, &site_dir, identity, 30, &store).await?;
            let _ = started.send(dc);
            Ok(router)
        })
    }));
    let app = Application::build(
        settings,
        Options {
            executors,
            clock: std::sync::Arc::new(crate::engine::clock::TokioClock::new()),
            driver: true,
            collect_facts: true,
            guard_chain: false,
            simulated_site: true,
            listener: None,
        },
    )
    .await?;
    let dc = simulated
        .await
        .map_err(|_| anyhow!("the simulated Data Center did not start"))?;
    for f in faults {
        f.inject(&dc)
            .map_err(|e| anyhow!("--fault {}:{}: {e}", f.server, f.kind))?;
        eprintln!("fault injected: {}", f.describe());
    }
    let pool = app.store().writer().clone();
    for (server, a) in &dc.endpoints().agents {
        let thumbprint = Thumbprint::parse(&a.thumbprint).map_err(|e| anyhow!("{e}"))?;
        crate::executors::agent::registry::add(&pool, server, &a.url, thumbprint, now()).await?;
    }
    if crate::web::datacenters::current(&pool, &inventory.name)
        .await?
        .is_none()
    {
        crate::web::datacenters::save(&pool, &toml, "demo", now())
            .await?
            .map_err(|e| anyhow!("the demo inventory: {e}"))?;
    }
    let mut printed = Vec::new();
    if accounts::list_users(&pool).await?.is_empty() {
        for (name, role, what) in ACCOUNTS {
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            let pw = password();
            accounts::add_user(&pool, name, role, &pw, now()).await?;
            printed.push(format!("  {name:<10} {pw}   ({what})"));
        }
    }
    let mut out = String::new();
    out.push_str(&format!(
        "Simulated Data Center `{}` ({} servers) is running on 127.0.0.x loopback addresses.\n",
        inventory.name,
        dc.servers.len()
    ));
    if printed.is_empty() {
        out.push_str(&format!(
            "Demo accounts exist already (their passwords were printed on the first start). To \
             start over, stop the demo and delete {}.\n",
            data_dir.display()
        ));
    } else {
        out.push_str("Demo accounts (passwords shown only this once):\n");
        for line in &printed {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "What to try: log in as operator, open New run, choose upgrade-8.11 for `{}`, submit it; \
         in another browser log in as approver and approve the start and each gate; as operator \
         claim and complete the manual tasks (the simulated servers really run Setup) and watch \
         the steps move.\nCtrl-C stops the demo; runs and the audit log stay in {}.\n",
        inventory.name,
        data_dir.display()
    ));
    out.push_str(&format!("Lockstep demo on {}/\n", app.url()));
    print!("{out}");
    std::io::stdout().flush()?;

    let store = app.store().clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let dc = std::sync::Arc::new(dc);
    let hook = tokio::spawn(manual_task_hook(store, dc.clone(), stop_rx));
    app.run_until_stopped(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop_tx.send(true);
    })
    .await?;
    let _ = hook.await;
    match std::sync::Arc::try_unwrap(dc) {
        Ok(dc) => dc.stop().await?,
        Err(_) => {
            eprintln!("the simulated Data Center is still in use; its agents stop with the process")
        }
    }
    println!("Lockstep demo stopped.");
    Ok(ExitCode::SUCCESS)
}

/// When a person claims a manual task, the simulated host does the work the task describes.
async fn manual_task_hook(
    store: Store,
    dc: std::sync::Arc<SimulatedDataCenter>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut events = store.subscribe();
    let mut done: HashSet<(String, String, u32)> = HashSet::new();
    loop {
        let event = tokio::select! {
            _ = stop.changed() => return,
            e = events.recv() => e,
        };
        let event = match event {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        let (Some(run), Some(step)) = (event.run_id, event.step_id) else {
            continue;
        };
        let Ok(s) = store.step(&run, &step).await else {
            continue;
        };
        if s.spec.kind != StepKind::Manual
            || s.status != StepStatus::AwaitingOperator
            || s.state.claimed_by.is_none()
            || !done.insert((run.clone(), step.clone(), s.attempt))
        {
            continue;
        }
        let Some(host) = s.spec.host.as_deref().and_then(|h| dc.host(h)) else {
            continue;
        };
        let sql = s.spec.host.as_deref().and_then(|h| dc.sql(h));
        match super::manual::perform(host, sql, &s.spec) {
            Ok(what) => eprintln!("demo: {step}: {what}"),
            Err(e) => eprintln!("demo: {step}: the simulated host could not do the task: {e}"),
        }
    }
}
