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
        #[command(flatten)]
        db: DbArg,
    },
    /// Write the audit log to standard output (or --out), oldest event first.
    Export {
        /// jsonl (one event object per line, exactly as stored) or csv (header row, then one
        /// row per event; every cell quoted, leading `= + - @` neutralised for spreadsheets).
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
        AuditCmd::Verify { db } => {
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
