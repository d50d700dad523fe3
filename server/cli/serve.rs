//! `lockstep serve` (the dashboard and JSON API) and `lockstep user` (local accounts).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, Overrides};
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
    let settings = crate::config::Settings::from_process(args.config.as_deref(), &overrides)?;
    let db = settings.server.db.clone();
    let app =
        crate::startup::Application::build(settings, crate::startup::Options::serve()).await?;
    eprintln!(
        "Lockstep dashboard on {}/ (database {})",
        app.url(),
        db.display()
    );
    app.run_until_stopped(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn open_db(db: &UserDb) -> anyhow::Result<sqlx::SqlitePool> {
    let overrides = Overrides {
        db: db.db.clone(),
        ..Default::default()
    };
    let config = Config::from_process(db.config.as_deref(), &overrides)?;
    let store = crate::engine::Store::open(&config.db)
        .await
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", config.db.display()))?;
    Ok(store.writer().clone())
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
