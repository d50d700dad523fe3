//! `lockstep backup FILE` (an online copy of the orchestrator database while it runs) and
//! `lockstep restore FILE` (put such a copy back, with the service stopped).
//!
//! A backup is the database file plus its audit head file (`FILE.audit-head`), so the copy
//! verifies on its own. Restore trusts neither blindly: the copy must pass `PRAGMA
//! integrity_check` and audit verification against that head before anything is touched, and
//! the database it replaces must exist only with `--force` and must not be open in another
//! process. The copy then lands under a temporary name, is synced, and is renamed into place
//! with its head file, so `lockstep audit verify` passes on the restored database.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Row};

use super::audit::DbArg;
use crate::engine::audit::{self, ChainHead};
use crate::engine::Store;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to write the copy (must not exist). Its audit head file is written beside it.
    pub file: PathBuf,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup to restore (written by `lockstep backup`, with its `.audit-head` file beside it).
    pub file: PathBuf,
    /// Replace the existing database. Its current content is lost.
    #[arg(long)]
    pub force: bool,
    /// The audit signing key the backup was signed with (default: the target's, else the one
    /// beside the backup). Keys never travel with backups; this one is installed beside the
    /// restored database if it has none or another.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbArg,
}

pub async fn run_backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    if !args.db.db.is_file() {
        bail!("the database {} does not exist", args.db.db.display());
    }
    if let Some(dir) = args.file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    }
    let store = Store::open(&args.db.db).await?;
    let head = store.backup(&args.file).await?;
    println!(
        "backup written to {} (audit head #{} {})",
        args.file.display(),
        head.id,
        head.hash
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn run_restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let key = restore_key(&args.file, &args.db.db, args.key.as_deref()).with_context(|| {
        format!(
            "the backup {} cannot be restored; nothing was changed",
            args.file.display()
        )
    })?;
    let head = verify_backup(&args.file, &key).await.with_context(|| {
        format!(
            "the backup {} cannot be restored; nothing was changed",
            args.file.display()
        )
    })?;
    let target = &args.db.db;
    if same_file(&args.file, target) {
        bail!(
            "{} is the database itself; restore a backup into another --db",
            args.file.display()
        );
    }
    // Held until the new file is in place: no one can open the old database meanwhile.
    let _exclusive = if target.exists() {
        if !args.force {
            bail!(
                "the database {} already exists; add --force to replace it (its current content is lost). Nothing was changed",
                target.display()
            );
        }
        take_exclusive(target).await?
    } else {
        None
    };
    install(&args.file, target, &head)?;
    let key = install_key(&key, target)?;
    // The restored file must verify where it now lives, exactly as `audit verify` will.
    let restored = Store::open_read_only_with_key(target, &key).await?;
    restored.integrity_check().await?;
    let report = restored.verify_audit().await?;
    if let Some(p) = report.problem {
        bail!(
            "the restored database {} does not verify: {p}",
            target.display(),
        );
    }
    println!(
        "restored {} from {} (audit head #{} {})",
        target.display(),
        args.file.display(),
        head.id,
        head.hash
    );
    Ok(ExitCode::SUCCESS)
}

/// The backup's own checks: a readable SQLite file, `integrity_check` ok, and an audit chain that
/// is whole and ends where its head file says. Returns that head.
async fn verify_backup(file: &Path, key: &Path) -> anyhow::Result<ChainHead> {
    if !file.is_file() {
        bail!("{} does not exist or is not a file", file.display());
    }
    let head_file = audit::head_path(file);
    if !head_file.is_file() {
        bail!(
            "its audit head file {} is missing (`lockstep backup` writes it beside the copy); without it the log cannot be shown complete",
            head_file.display()
        );
    }
    let copy = Store::open_read_only_with_key(file, key).await?;
    copy.integrity_check()
        .await
        .map_err(|e| anyhow::anyhow!("it is damaged: {e}"))?;
    let report = copy
        .verify_audit()
        .await
        .map_err(|e| anyhow::anyhow!("it is not a readable Lockstep database: {e}"))?;
    if let Some(p) = report.problem {
        bail!(
            "its audit log is broken at event {} [{}]: {}",
            p.event_id,
            p.kind,
            p.what
        );
    }
    copy.close().await;
    // The backup's own signed head is what the restored database keeps.
    Ok(audit::read_head(&head_file)?.unwrap_or(ChainHead {
        id: 0,
        hash: audit::GENESIS_HASH.into(),
        sig: None,
    }))
}

/// The signing key that checks a backup (keys never travel with backups): `--key`, else the
/// one of the database it restores to, else the one beside the backup — the first whose id is
/// the one that signed the backup's head.
fn restore_key(backup: &Path, target: &Path, given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let signed_by = audit::read_head(&audit::head_path(backup))
        .ok()
        .flatten()
        .and_then(|h| h.sig)
        .and_then(|s| s.split(':').nth(1).map(str::to_string));
    let candidates: Vec<PathBuf> = match given {
        Some(k) => vec![k.to_path_buf()],
        None => vec![
            audit::signing::key_path_for(target),
            audit::signing::key_path_for(backup),
        ],
    };
    for k in &candidates {
        if let Ok(v) = audit::VerifyingKey::load(k) {
            if signed_by.as_deref().is_none_or(|id| id == v.key_id) {
                return Ok(k.clone());
            }
        }
    }
    match signed_by {
        Some(id) => bail!(
            "it was signed by audit key {id}, which is not at {}; give that key with --key",
            candidates
                .iter()
                .map(|c| c.display().to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        ),
        None => Ok(candidates[0].clone()),
    }
}

/// Puts the key that verified the backup beside the restored database (its own key, moved
/// aside as `.replaced` if it was another), so the restored database verifies and is signed
/// with the same key from now on. Returns where the key now is.
fn install_key(key: &Path, target: &Path) -> anyhow::Result<PathBuf> {
    let dest = audit::signing::key_path_for(target);
    if same_file(key, &dest) || !key.is_file() {
        return Ok(key.to_path_buf());
    }
    let text =
        std::fs::read_to_string(key).with_context(|| format!("cannot read {}", key.display()))?;
    if audit::SigningKey::load_or_create(key).is_err() {
        // A `.pub` file: verification only; the restored database keeps what it has.
        return Ok(key.to_path_buf());
    }
    if dest.exists() {
        let mut aside = dest.as_os_str().to_owned();
        aside.push(".replaced");
        std::fs::rename(&dest, PathBuf::from(&aside))
            .with_context(|| format!("cannot move {} aside", dest.display()))?;
        let _ = std::fs::remove_file(audit::signing::public_path(&dest));
    }
    audit::signing::create_private(&dest, &text)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    let public = audit::signing::public_path(key);
    if let Ok(p) = std::fs::read_to_string(&public) {
        let _ = audit::signing::create_private(&audit::signing::public_path(&dest), &p);
    }
    Ok(dest)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// One connection that is alone on the database and holds it exclusively. Leaving WAL mode
/// needs every other connection closed, so a running `lockstep serve` (whose engine polls the
/// database every second) makes this fail instead of having its file replaced underneath it.
/// A file SQLite cannot read at all (the damaged database a restore is often for) cannot be in
/// use as a database either: `None`, and it is replaced.
async fn take_exclusive(target: &Path) -> anyhow::Result<Option<sqlx::SqliteConnection>> {
    let in_use = || {
        anyhow::anyhow!(
            "the database {} is in use by another process (stop `lockstep serve` and other lockstep commands first). Nothing was changed",
            target.display()
        )
    };
    let unreadable = |e: sqlx::Error| {
        eprintln!(
            "warning: {} is not a readable database ({e}); replacing it",
            target.display()
        );
        Ok(None)
    };
    let mut conn = SqliteConnectOptions::from_str("sqlite://")?
        .filename(target)
        .busy_timeout(Duration::ZERO)
        .connect()
        .await
        .with_context(|| format!("cannot open the database {}", target.display()))?;
    let mode = match sqlx::query("PRAGMA journal_mode = DELETE")
        .fetch_one(&mut conn)
        .await
    {
        Ok(row) => row.get::<String, _>(0),
        Err(e) if is_busy(&e) => return Err(in_use()),
        Err(e) if is_unreadable(&e) => return unreadable(e),
        Err(e) => return Err(e).context(format!("cannot lock {}", target.display())),
    };
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(in_use());
    }
    match sqlx::query("BEGIN EXCLUSIVE").execute(&mut conn).await {
        Ok(_) => Ok(Some(conn)),
        Err(e) if is_busy(&e) => Err(in_use()),
        Err(e) if is_unreadable(&e) => unreadable(e),
        Err(e) => Err(e).context(format!("cannot lock {}", target.display())),
    }
}

/// SQLITE_NOTADB (26) and SQLITE_CORRUPT (11), with their extended codes.
fn is_unreadable(e: &sqlx::Error) -> bool {
    let code = e
        .as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i64>().ok());
    matches!(code.map(|c| c & 0xff), Some(11) | Some(26))
}

fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.message().contains("locked") || d.message().contains("busy"))
}

/// Copies the verified backup beside the target, syncs it, moves the head file and then the
/// database into place. A crash in between leaves either file recoverable by running restore
/// again; the backup itself is never modified.
fn install(backup: &Path, target: &Path, head: &ChainHead) -> anyhow::Result<()> {
    let dir = match target.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(".restoring");
    let tmp = PathBuf::from(tmp);
    std::fs::copy(backup, &tmp)
        .with_context(|| format!("cannot copy {} to {}", backup.display(), tmp.display()))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", tmp.display()))?;
    // A write-ahead log left by the old database would be replayed into the new one.
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = target.as_os_str().to_owned();
        side.push(suffix);
        match std::fs::remove_file(PathBuf::from(&side)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context(format!("cannot remove {}", side.to_string_lossy())),
        }
    }
    audit::write_head(&audit::head_path(target), head)
        .with_context(|| format!("cannot write {}", audit::head_path(target).display()))?;
    std::fs::rename(&tmp, target)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), target.display()))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync the folder {}", dir.display()))?;
    Ok(())
}
