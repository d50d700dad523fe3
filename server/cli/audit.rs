//! `lockstep audit verify|export` (backup and restore: `backup.rs`; the hidden engine commands:
//! `engine.rs`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::engine::audit;
use crate::engine::Store;

/// The database, as in `lockstep serve`.
#[derive(Debug, clap::Args)]
pub struct DbArg {
    /// SQLite database file.
    #[arg(
        long,
        value_name = "FILE",
        env = "LOCKSTEP_DB",
        default_value = "lockstep-data/lockstep.db"
    )]
    pub db: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCmd {
    /// Verify the audit chain and its head file; names the first bad event and exits 1 if any.
    Verify {
        /// Verify this export (`audit export --format bundle`, or the Audit page's verifiable
        /// export) offline instead of the database: the chain, its head and any signatures.
        #[arg(long, value_name = "FILE")]
        export: Option<PathBuf>,
        #[command(flatten)]
        db: DbArg,
    },
    /// Write the audit log to standard output (or --out), oldest event first.
    Export {
        /// jsonl (one event object per line, exactly as stored), csv (header row, then one
        /// row per event with ISO 8601 UTC times; every cell quoted, leading `= + - @`
        /// neutralised for spreadsheets) or bundle (the whole chain with its head, one JSON
        /// document that `audit verify --export` checks offline).
        #[arg(long, value_name = "FORMAT", value_parser = audit::ExportFormat::parse)]
        format: audit::ExportFormat,
        /// Only this run's events.
        #[arg(long, value_name = "RUN_ID")]
        run: Option<String>,
        /// Write here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        db: DbArg,
    },
}

pub async fn run_audit(cmd: AuditCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCmd::Verify {
            export: Some(file), ..
        } => verify_export(&file),
        AuditCmd::Verify { export: None, db } => {
            let store = Store::open_read_only(&db.db).await?;
            store.integrity_check().await?;
            let report = store.verify_audit().await?;
            match (&report.problem, &report.last) {
                (None, Some(last)) => {
                    println!(
                        "audit log ok: {} events, head #{} {}",
                        report.events, last.id, last.hash
                    );
                    Ok(ExitCode::SUCCESS)
                }
                (None, None) => {
                    println!("audit log ok: empty");
                    Ok(ExitCode::SUCCESS)
                }
                (Some(p), _) => {
                    println!("audit log BROKEN at event {}: {}", p.event_id, p.what);
                    Ok(ExitCode::from(1))
                }
            }
        }
        AuditCmd::Export {
            format,
            run,
            out,
            db,
        } => {
            if format == audit::ExportFormat::Bundle && run.is_some() {
                anyhow::bail!(
                    "--run cannot be used with --format bundle: only the whole chain, from its first event, can be verified"
                );
            }
            let store = Store::open_read_only(&db.db).await?;
            let events = match &run {
                Some(r) => store.events_after(0, Some(r), u32::MAX).await?,
                None => store.all_events().await?,
            };
            let mut sink: Box<dyn Write> = match &out {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            audit::export(&events, format, &mut sink)?;
            sink.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `audit verify --export FILE`: exit 0 when the export verifies, 1 naming the first bad event,
/// 2 (an error) when the file cannot be read or is not an export.
fn verify_export(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    use crate::engine::audit_bundle::{self, Bundle};
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    if size > audit_bundle::MAX_BYTES {
        anyhow::bail!(
            "{} is {size} bytes, more than the {} an export may be",
            file.display(),
            audit_bundle::MAX_BYTES
        );
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let bundle = Bundle::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let verdict = audit_bundle::verify(&bundle);
    println!("{}", verdict.line());
    Ok(if verdict.problem.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
