//! Where a recovery run finds the backups to restore: the evidence the failed run's
//! `backup_verify` steps committed to the store. Read at the moment of the restore, so the
//! restore acts on what the store holds, not on what was planned.

use crate::engine::machine::RunStatus;
use crate::engine::Store;
use crate::knowledge::operation::{Operation, SqlOperation};

use super::backup::BackupRecord;

/// The verified backups of a run, or why there are none to restore from.
#[async_trait::async_trait]
pub trait BackupCatalog: Send + Sync {
    async fn verified_backups(&self, run_id: &str) -> Result<Vec<BackupRecord>, String>;
}

#[async_trait::async_trait]
impl BackupCatalog for Store {
    async fn verified_backups(&self, run_id: &str) -> Result<Vec<BackupRecord>, String> {
        let run = self
            .run(run_id)
            .await
            .map_err(|e| format!("run {run_id}: {e}"))?;
        // A way back is for a run that failed (and was then aborted, which releases its
        // servers); restoring under a live or finished run would throw away the work it did.
        if !matches!(run.status, RunStatus::Failed | RunStatus::Aborted) {
            return Err(format!(
                "run {run_id} is {}, not failed or aborted: only a failed run's backups are restored",
                run.status.as_str()
            ));
        }
        let steps = self
            .steps(run_id)
            .await
            .map_err(|e| format!("run {run_id}: {e}"))?;
        let mut out = Vec::new();
        for s in steps {
            if !matches!(
                s.spec.operation,
                Operation::Sql(SqlOperation::BackupVerify { .. })
            ) {
                continue;
            }
            let Some(list) = s.state.evidence.as_ref().and_then(|e| e.get("backups")) else {
                continue;
            };
            let list: Vec<BackupRecord> = serde_json::from_value(list.clone())
                .map_err(|e| format!("run {run_id}, step {}: backup evidence: {e}", s.id))?;
            out.extend(list.into_iter().filter(|b| b.verified));
        }
        if out.is_empty() {
            return Err(format!("run {run_id} recorded no verified backup"));
        }
        Ok(out)
    }
}
