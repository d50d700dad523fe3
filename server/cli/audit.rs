//! `lockstep audit verify|export|acknowledge` (backup and restore: `backup.rs`; the hidden
//! engine commands: `engine.rs`).

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
    /// Verify the audit chain: each event's hash and Ed25519 signature, the signed head file
    /// and the append-only guard triggers. Names every break (event and kind) and exits 1 if any.
    Verify {
        /// Verify this export (`audit export --format bundle`, or the Audit page's verifiable
        /// export) offline instead of the database: the chain, its head and any signatures.
        #[arg(long, value_name = "FILE")]
        export: Option<PathBuf>,
        #[command(flatten)]
        db: DbArg,
        /// The signing key, or its `.pub` file (default: LOCKSTEP_AUDIT_KEY, else
        /// audit-signing.key in the database's folder). With --export: the server's public key
        /// as obtained out of band; the export must be signed by it.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Also check signed checkpoints held elsewhere (the `audit-checkpoints.jsonl` that
        /// serve writes): catches a log rewritten even by someone holding the key.
        #[arg(long, value_name = "FILE")]
        checkpoints: Option<PathBuf>,
    },
    /// Acknowledge a broken chain (admin): records the break in a new signed event that starts
    /// a new segment, so the dashboard accepts changes again. The break stays listed by verify.
    Acknowledge {
        /// Who acknowledges (recorded as the event's actor).
        #[arg(long)]
        by: String,
        /// Why it is safe to continue (what was found and done).
        #[arg(long)]
        reason: String,
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
            export: Some(file),
            key,
            ..
        } => verify_export(&file, key.as_deref()),
        AuditCmd::Verify {
            export: None,
            db,
            key,
            checkpoints,
        } => {
            let key = key.unwrap_or_else(|| audit::signing::key_path_for(&db.db));
            let store = Store::open_read_only_with_key(&db.db, &key).await?;
            store.integrity_check().await?;
            let mut report = store.verify_audit().await?;
            if let Some(file) = &checkpoints {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read the checkpoints {}", file.display()))?;
                for p in store.verify_checkpoints(&text).await? {
                    report.set(p);
                }
            }
            for a in &report.acknowledged {
                println!(
                    "acknowledged break: {} — acknowledged by {} at event {}: {}",
                    a.problem, a.by, a.ack_event, a.reason
                );
            }
            match (&report.problem, &report.last) {
                (None, Some(last)) => {
                    println!(
                        "audit log ok: {} events, head #{} {}, signed by key {}",
                        report.events,
                        last.id,
                        last.hash,
                        report.key_id.as_deref().unwrap_or("-")
                    );
                    Ok(ExitCode::SUCCESS)
                }
                (None, None) => {
                    println!("audit log ok: empty");
                    Ok(ExitCode::SUCCESS)
                }
                (Some(p), _) => {
                    if p.event_id > 0 {
                        println!("audit log BROKEN at event {}: {}", p.event_id, p.what);
                    } else {
                        println!("audit log BROKEN: {}", p.what);
                    }
                    for p in &report.problems {
                        println!("  {p}");
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
        AuditCmd::Acknowledge { by, reason, db } => {
            let store = Store::open(&db.db).await?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
            let event = store.acknowledge_break(&by, &reason, now).await?;
            println!(
                "break acknowledged by {by} in event {}; a new signed segment starts there",
                event.id
            );
            Ok(ExitCode::SUCCESS)
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
            let events = match (&run, format) {
                (_, audit::ExportFormat::Bundle) => Vec::new(),
                (Some(r), _) => store.events_after(0, Some(r), u32::MAX).await?,
                (None, _) => store.all_events().await?,
            };
            let mut sink: Box<dyn Write> = match &out {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            if format == audit::ExportFormat::Bundle {
                // With the public key, the head's signature and the checkpoints sent out.
                let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
                let bundle = store
                    .audit_bundle(
                        audit::iso_utc(now),
                        "lockstep audit export",
                        crate::engine::audit_bundle::checkpoints_beside(&db.db),
                    )
                    .await?;
                serde_json::to_writer_pretty(&mut sink, &bundle)?;
                sink.write_all(b"\n")?;
            } else {
                crate::engine::audit_bundle::export(&events, format, &mut sink)?;
            }
            sink.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `audit verify --export FILE [--key KEY]`: exit 0 when the export verifies, 1 naming the first
/// bad event, 2 (an error) when a file cannot be read or is not an export or a key. With `--key`
/// (the server's public key, obtained out of band) the export must be signed by that key.
fn verify_export(
    file: &std::path::Path,
    key: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    use crate::engine::audit_bundle::{self, Bundle};
    let held = key.map(audit::VerifyingKey::load).transpose()?;
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
    let verdict = audit_bundle::verify(&bundle, held.as_ref());
    for a in &verdict.acknowledged {
        println!(
            "acknowledged break: {} — acknowledged by {} at event {}: {}",
            a.problem, a.by, a.ack_event, a.reason
        );
    }
    println!("{}", verdict.line());
    Ok(if verdict.problem.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
