//! Backups you can restore: `BACKUP DATABASE … WITH CHECKSUM, INIT` to a file named by the run,
//! proved at once by `RESTORE VERIFYONLY … WITH CHECKSUM`, and the restore a recovery run makes
//! from those files.
//!
//! The file path is always a parameter (`TO DISK = @P1`); the database name cannot be one in
//! T-SQL, so it is taken from the server's own `sys.databases` and bracket-quoted. Each backup
//! is recorded as a [`BackupRecord`] in the step's evidence — the shape the change record shows
//! and the recovery run reads back.

use serde::{Deserialize, Serialize};
use tiberius::ColumnData;

use super::connect::{capture, classify, Message, SqlClient, SqlError};
use super::quote_name;

/// One verified (or not) backup of one database, as the run's evidence keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    pub database: String,
    pub server: String,
    pub file: String,
    /// From `msdb.dbo.backupset.backup_size` (bytes); `None` when the server kept no row.
    pub size_bytes: Option<u64>,
    /// When the backup finished, as Lockstep saw it (RFC 3339, UTC).
    pub finished_at: String,
    /// `RESTORE VERIFYONLY … WITH CHECKSUM` succeeded for this file.
    pub verified: bool,
}

/// The backup file of `db` for run `run_id` in `folder` (a Windows path on the SQL Server).
pub fn backup_file(folder: &str, db: &str, run_id: &str) -> Result<String, SqlError> {
    let folder = folder.trim_end_matches(['\\', '/']);
    if folder.is_empty() {
        return Err(SqlError::Config("the backup folder is empty".into()));
    }
    // The run id becomes part of a file name: keep it to what a file name can hold.
    if run_id.is_empty()
        || !run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(SqlError::Config(format!(
            "run id `{run_id}` cannot name a backup file"
        )));
    }
    Ok(format!("{folder}\\{db}-{run_id}.bak"))
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Runs one parameterised statement to its end, keeping the server's messages.
async fn exec(
    c: &mut SqlClient,
    sql: &str,
    path: &str,
    messages: &mut Vec<Message>,
) -> Result<(), SqlError> {
    let (r, msgs) = capture(async { c.execute(sql, &[&path]).await.map(|_| ()) }).await;
    for m in &msgs {
        // A person reads the verdicts (CHECKDB's, a backup's, an error); every message stays
        // available as a technical line.
        if let Some(said) = crate::executors::words::sql_message(m.kind, m.code, &m.text) {
            crate::engine::steplog::line(said);
        }
        crate::engine::steplog::detail(match m.code {
            Some(code) => format!("SQL {} {code}: {}", m.kind, m.text),
            None => format!("SQL {}: {}", m.kind, m.text),
        });
    }
    messages.extend(msgs.into_iter().filter(|m| m.kind != "environment"));
    r.map_err(classify)
}

/// Backs `db` up to `path` and verifies the file. The record is returned even when the
/// verification fails (verified = false), so the evidence shows what was written.
pub async fn backup_and_verify(
    c: &mut SqlClient,
    server: &str,
    db: &str,
    path: &str,
    messages: &mut Vec<Message>,
) -> (BackupRecord, Result<(), SqlError>) {
    let mut rec = BackupRecord {
        database: db.to_string(),
        server: server.to_string(),
        file: path.to_string(),
        size_bytes: None,
        finished_at: String::new(),
        verified: false,
    };
    let backup = format!(
        "BACKUP DATABASE {} TO DISK = @P1 WITH CHECKSUM, INIT",
        quote_name(db)
    );
    if let Err(e) = exec(c, &backup, path, messages).await {
        return (rec, Err(e));
    }
    rec.finished_at = now_rfc3339();
    match backup_size(c, db, path).await {
        Ok(size) => rec.size_bytes = size,
        Err(e) => return (rec, Err(e)),
    }
    let verify = "RESTORE VERIFYONLY FROM DISK = @P1 WITH CHECKSUM";
    let r = exec(c, verify, path, messages).await;
    rec.verified = r.is_ok();
    (rec, r)
}

/// Verifies the file again and, unless `verify_only`, restores `db` from `path` over the
/// database as it is now.
pub async fn restore(
    c: &mut SqlClient,
    db: &str,
    path: &str,
    verify_only: bool,
    messages: &mut Vec<Message>,
) -> Result<(), SqlError> {
    exec(
        c,
        "RESTORE VERIFYONLY FROM DISK = @P1 WITH CHECKSUM",
        path,
        messages,
    )
    .await?;
    if verify_only {
        return Ok(());
    }
    let sql = format!(
        "RESTORE DATABASE {} FROM DISK = @P1 WITH REPLACE",
        quote_name(db)
    );
    exec(c, &sql, path, messages).await
}

/// The size msdb recorded for the newest backup of `db` to `path`.
async fn backup_size(c: &mut SqlClient, db: &str, path: &str) -> Result<Option<u64>, SqlError> {
    let row = c
        .query(
            "SELECT TOP 1 b.backup_size FROM msdb.dbo.backupset b \
             JOIN msdb.dbo.backupmediafamily m ON m.media_set_id = b.media_set_id \
             WHERE m.physical_device_name = @P1 AND b.database_name = @P2 \
             ORDER BY b.backup_set_id DESC",
            &[&path, &db],
        )
        .await
        .map_err(classify)?
        .into_row()
        .await
        .map_err(classify)?;
    let Some(row) = row else { return Ok(None) };
    // SQL Server declares backup_size numeric(20,0); read any whole number the server sends.
    Ok(row.into_iter().next().and_then(|v| match v {
        ColumnData::I64(Some(n)) => u64::try_from(n).ok(),
        ColumnData::I32(Some(n)) => u64::try_from(n).ok(),
        ColumnData::Numeric(Some(n)) => u64::try_from(n.int_part()).ok(),
        _ => None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_file_is_named_by_database_and_run_in_the_folder() {
        assert_eq!(
            backup_file("D:\\Backup\\", "Registry", "3f2a-01").unwrap(),
            "D:\\Backup\\Registry-3f2a-01.bak"
        );
        assert!(backup_file("", "Registry", "r1").is_err());
        assert!(backup_file("D:\\B", "Registry", "../x").is_err());
    }
}
