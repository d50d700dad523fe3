//! The SQL executor: Registry and Directory database work over TDS (tiberius).
//!
//! - CHECKDB and sp_updatestats run for the requested databases that exist on the server
//!   (SEED-NOTES 9): the list comes from the server's `sys.databases`, never from the seed's
//!   fixed script.
//! - Site scripts are read through a [`ScriptSource`], split on `GO` and run batch by batch.
//! - OutflowServices changes go to every Registry database Lockstep can reach (SEED-NOTES 10),
//!   match rows by host and the `/ose/OutflowServiceExtension.dll` suffix (SEED-NOTES 3), are
//!   always parameterized, and record the rows before and after.
//! - Every INFO and ERROR message is evidence; any error fails the step. A connection lost in
//!   the middle of a change makes the outcome Unknown (it may have taken effect).

mod backup;
pub mod catalog;
pub mod connect;
mod outflow;
pub mod script;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

pub use backup::{backup_file, BackupRecord};
use connect::{capture, classify, connect, Message, SqlClient};
pub use connect::{SqlEncryption, SqlError, SqlTarget};
use outflow::outflow;
pub use outflow::OutflowRow;
pub use script::{DirScripts, FixedScripts, ScriptSource};

use crate::engine::executor::{ActionStatus, Dispatch, Executor, IdempotencyKey, Outcome};
use crate::knowledge::operation::{Operation, SqlOperation};

/// The suffix every OutflowServices URL carries.
pub const OUTFLOW_SUFFIX: &str = "/ose/OutflowServiceExtension.dll";

/// SQL targets by inventory server name. Servers holding a Registry database are found by
/// asking each one's `sys.databases`, so a target list that misses one shows up as a failure.
#[derive(Debug, Clone, Default)]
pub struct SqlConfig {
    pub servers: BTreeMap<String, SqlTarget>,
}

pub struct SqlExecutor {
    config: SqlConfig,
    scripts: Arc<dyn ScriptSource>,
    /// Where a restore finds a run's verified backups (the store); none: restores are refused.
    backups: Option<Arc<dyn catalog::BackupCatalog>>,
    done: Mutex<HashMap<String, Outcome>>,
    running: Mutex<HashMap<String, ()>>,
}

/// Registry data and log file sizes, for the 10% free-space rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryFiles {
    pub mdf_mb: u64,
    pub ldf_mb: u64,
}

/// What one server contributed to a step's evidence.
#[derive(Debug, Default, Serialize)]
struct ServerEvidence {
    server: String,
    encryption: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    databases: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    not_on_server: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<Vec<OutflowRow>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<Vec<OutflowRow>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows_changed: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    batches: Vec<Value>,
    /// Backups written (and verified, or not) by this step: the change record shows them and
    /// a recovery run reads them back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    backups: Vec<BackupRecord>,
    messages: Vec<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

pub(crate) fn quote_name(db: &str) -> String {
    format!("[{}]", db.replace(']', "]]"))
}

impl SqlExecutor {
    pub fn new(config: SqlConfig, scripts: Arc<dyn ScriptSource>) -> SqlExecutor {
        SqlExecutor {
            config,
            scripts,
            backups: None,
            done: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Restores read the backups to restore from `catalog` (the store).
    pub fn with_backups(mut self, catalog: Arc<dyn catalog::BackupCatalog>) -> SqlExecutor {
        self.backups = Some(catalog);
        self
    }

    fn target(&self, server: &str) -> Result<&SqlTarget, SqlError> {
        self.config
            .servers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(server))
            .map(|(_, t)| t)
            .ok_or_else(|| {
                SqlError::Config(format!("no SQL connection is configured for {server}"))
            })
    }

    /// Runs one operation now; `host` is the step's server.
    pub async fn run(
        &self,
        host: Option<&str>,
        op: &SqlOperation,
    ) -> Result<Value, (SqlError, Value)> {
        self.run_for("adhoc", host, op).await
    }

    /// Runs one operation of run `run_id` (backup files are named by it).
    pub async fn run_for(
        &self,
        run_id: &str,
        host: Option<&str>,
        op: &SqlOperation,
    ) -> Result<Value, (SqlError, Value)> {
        match op {
            SqlOperation::OutflowRead
            | SqlOperation::OutflowUrlHost { .. }
            | SqlOperation::SecureFlagOff { .. } => self.on_every_registry(op).await,
            _ => {
                let Some(host) = host else {
                    return Err((
                        SqlError::Config("this SQL step names no server".into()),
                        Value::Null,
                    ));
                };
                let mut ev = ServerEvidence {
                    server: host.to_string(),
                    ..Default::default()
                };
                let r = self.on_server(run_id, host, op, &mut ev).await;
                let v = serde_json::to_value(&ev).unwrap_or(Value::Null);
                r.map(|_| v.clone()).map_err(|e| (e, v))
            }
        }
    }

    async fn session(&self, server: &str, ev: &mut ServerEvidence) -> Result<SqlClient, SqlError> {
        let t = self.target(server)?;
        ev.encryption = t.encryption_note();
        let (c, msgs) = capture(connect(server, t)).await;
        ev.messages
            .extend(msgs.into_iter().filter(|m| m.kind == "error"));
        c
    }

    async fn on_server(
        &self,
        run_id: &str,
        server: &str,
        op: &SqlOperation,
        ev: &mut ServerEvidence,
    ) -> Result<(), SqlError> {
        let mut c = self.session(server, ev).await?;
        match op {
            SqlOperation::CheckDb { databases } | SqlOperation::UpdateStats { databases } => {
                let present = existing(&mut c, ev).await?;
                for want in databases {
                    match present.iter().find(|p| p.eq_ignore_ascii_case(want)) {
                        Some(db) => ev.databases.push(db.clone()),
                        None => ev.not_on_server.push(want.clone()),
                    }
                }
                for db in ev.databases.clone() {
                    let sql = match op {
                        SqlOperation::CheckDb { .. } => {
                            format!("DBCC CHECKDB ({})", quote_name(&db))
                        }
                        _ => format!("USE {}\nEXEC sp_updatestats", quote_name(&db)),
                    };
                    batch(&mut c, &sql, ev).await?;
                }
                if ev.databases.is_empty() {
                    return Err(SqlError::Refused(format!(
                        "none of {} exists on {server}",
                        databases.join(", ")
                    )));
                }
                Ok(())
            }
            SqlOperation::RunScript { path } => {
                let text = self
                    .scripts
                    .read(server, path)
                    .await
                    .map_err(SqlError::Config)?;
                let batches = script::split_batches(&text)
                    .map_err(|e| SqlError::Config(format!("{path}: {e}")))?;
                if batches.is_empty() {
                    return Err(SqlError::Refused(format!("{path} holds no SQL")));
                }
                for (i, b) in batches.iter().enumerate() {
                    let start = ev.messages.len();
                    let r = batch(&mut c, &b.text, ev).await;
                    ev.batches.push(json!({
                        "batch": i + 1,
                        "first_line": b.first_line,
                        "messages": ev.messages.len() - start,
                        "ok": r.is_ok(),
                    }));
                    if let Err(e) = r {
                        return Err(match e {
                            SqlError::Server {
                                code,
                                class,
                                line,
                                message,
                            } => SqlError::Server {
                                code,
                                class,
                                line: line + b.first_line as u32 - 1,
                                message: format!(
                                    "{path}, batch {} of {}: {message}",
                                    i + 1,
                                    batches.len()
                                ),
                            },
                            other => other,
                        });
                    }
                }
                Ok(())
            }
            SqlOperation::BackupVerify { databases, folder } => {
                let present = existing(&mut c, ev).await?;
                for want in databases {
                    match present.iter().find(|p| p.eq_ignore_ascii_case(want)) {
                        Some(db) => ev.databases.push(db.clone()),
                        None => ev.not_on_server.push(want.clone()),
                    }
                }
                if ev.databases.is_empty() {
                    return Err(SqlError::Refused(format!(
                        "none of {} exists on {server}",
                        databases.join(", ")
                    )));
                }
                for db in ev.databases.clone() {
                    let path = backup::backup_file(folder, &db, run_id)?;
                    let (rec, r) =
                        backup::backup_and_verify(&mut c, server, &db, &path, &mut ev.messages)
                            .await;
                    ev.backups.push(rec);
                    r.map_err(|e| e.during(format!("backup of {db} to {path}")))?;
                }
                Ok(())
            }
            SqlOperation::RestoreFromRun {
                from_run,
                verify_only,
            } => {
                let catalog = self.backups.as_ref().ok_or_else(|| {
                    SqlError::Config("this executor has no store to read backups from".into())
                })?;
                let all = catalog
                    .verified_backups(from_run)
                    .await
                    .map_err(SqlError::Refused)?;
                let mine: Vec<BackupRecord> = all
                    .into_iter()
                    .filter(|b| b.server.eq_ignore_ascii_case(server))
                    .collect();
                if mine.is_empty() {
                    return Err(SqlError::Refused(format!(
                        "run {from_run} recorded no verified backup on {server}"
                    )));
                }
                for b in mine {
                    ev.databases.push(b.database.clone());
                    backup::restore(&mut c, &b.database, &b.file, *verify_only, &mut ev.messages)
                        .await
                        .map_err(|e| {
                            e.during(format!("restore of {} from {}", b.database, b.file))
                        })?;
                    ev.backups.push(b);
                }
                Ok(())
            }
            _ => Err(SqlError::Config("not a per-server SQL operation".into())),
        }
    }

    /// OutflowServices work on every reachable Registry database, in configuration order.
    async fn on_every_registry(&self, op: &SqlOperation) -> Result<Value, (SqlError, Value)> {
        let mut all = Vec::new();
        let mut skipped = Vec::new();
        let mut result = Ok(());
        for server in self.config.servers.keys() {
            let mut ev = ServerEvidence {
                server: server.clone(),
                ..Default::default()
            };
            let r = async {
                let mut c = self.session(server, &mut ev).await?;
                let present = existing(&mut c, &mut ev).await?;
                if !present.iter().any(|d| d.eq_ignore_ascii_case("Registry")) {
                    return Ok(false);
                }
                ev.databases.push("Registry".into());
                outflow(&mut c, op, &mut ev).await.map(|_| true)
            }
            .await;
            match r {
                Ok(true) => all.push(ev),
                Ok(false) => skipped.push(server.clone()),
                Err(e) => {
                    all.push(ev);
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() && all.is_empty() {
            result = Err(SqlError::Refused(
                "no configured SQL Server holds a Registry database".into(),
            ));
        }
        let v = json!({ "registry_servers": all, "without_registry": skipped });
        result.map(|_| v.clone()).map_err(|e| (e, v))
    }

    /// Registry data and log file sizes on `server`, from `sys.master_files` (8 KB pages).
    pub async fn registry_file_sizes(&self, server: &str) -> Result<RegistryFiles, SqlError> {
        let mut ev = ServerEvidence::default();
        let mut c = self.session(server, &mut ev).await?;
        let rows = c
            .query(
                "SELECT f.type_desc, f.size FROM sys.master_files f JOIN sys.databases d ON d.database_id = f.database_id WHERE d.name = @P1",
                &[&"Registry"],
            )
            .await
            .map_err(classify)?
            .into_first_result()
            .await
            .map_err(classify)?;
        let (mut mdf, mut ldf) = (None, None);
        for r in rows {
            let kind = r
                .try_get::<&str, _>(0)
                .map_err(classify)?
                .unwrap_or("")
                .to_string();
            let pages = r
                .try_get::<i32, _>(1)
                .map_err(classify)?
                .unwrap_or(0)
                .max(0) as u64;
            let mb = pages * 8 / 1024;
            match kind.as_str() {
                "ROWS" => *mdf.get_or_insert(0) += mb,
                "LOG" => *ldf.get_or_insert(0) += mb,
                _ => {}
            }
        }
        match (mdf, ldf) {
            (Some(mdf_mb), Some(ldf_mb)) => Ok(RegistryFiles { mdf_mb, ldf_mb }),
            _ => Err(SqlError::Refused(format!(
                "{server} holds no Registry database"
            ))),
        }
    }
}

/// Runs a batch to its end, keeping every message; a server error fails it.
async fn batch(c: &mut SqlClient, sql: &str, ev: &mut ServerEvidence) -> Result<(), SqlError> {
    let (r, msgs) = capture(async {
        let s = c.simple_query(sql).await?;
        s.into_results().await?;
        Ok::<(), tiberius::error::Error>(())
    })
    .await;
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
    ev.messages.extend(msgs);
    r.map_err(classify)
}

/// Databases on the server, from `sys.databases`.
async fn existing(c: &mut SqlClient, ev: &mut ServerEvidence) -> Result<Vec<String>, SqlError> {
    let (r, msgs) = capture(async {
        let rows = c
            .simple_query("SELECT name FROM sys.databases")
            .await?
            .into_first_result()
            .await?;
        Ok::<_, tiberius::error::Error>(
            rows.iter()
                .filter_map(|r| r.get::<&str, _>(0).map(str::to_string))
                .collect::<Vec<_>>(),
        )
    })
    .await;
    ev.messages
        .extend(msgs.into_iter().filter(|m| m.kind != "environment"));
    r.map_err(classify)
}

fn mutates(op: &SqlOperation) -> bool {
    !matches!(
        op,
        SqlOperation::OutflowRead
            | SqlOperation::CheckDb { .. }
            | SqlOperation::BackupVerify { .. }
            | SqlOperation::RestoreFromRun {
                verify_only: true,
                ..
            }
    )
}

#[async_trait::async_trait]
impl Executor for SqlExecutor {
    async fn execute(&self, dispatch: &Dispatch) -> Outcome {
        let key = dispatch.key.as_string();
        if let Some(o) = self.done.lock().ok().and_then(|d| d.get(&key).cloned()) {
            return o;
        }
        let Operation::Sql(op) = &dispatch.operation else {
            return Outcome::Failed {
                message: "the SQL executor runs only SQL operations".into(),
                evidence: Value::Null,
            };
        };
        if let Ok(mut r) = self.running.lock() {
            if r.insert(key.clone(), ()).is_some() {
                return Outcome::Unknown {
                    reason: format!("{key} is already running"),
                };
            }
        }
        let within = Duration::from_secs(dispatch.timeout_secs.max(1));
        let outcome = match tokio::time::timeout(
            within,
            self.run_for(&dispatch.key.run_id, dispatch.host.as_deref(), op),
        )
        .await
        {
            Err(_) if mutates(op) => Outcome::Unknown {
                reason: format!("no answer within {within:?}; the change may have taken effect"),
            },
            Err(_) => Outcome::Failed {
                message: format!("no answer within {within:?}"),
                evidence: Value::Null,
            },
            Ok(Ok(evidence)) => Outcome::Succeeded { evidence },
            Ok(Err((SqlError::Transport(m), _))) if mutates(op) => Outcome::Unknown {
                reason: format!(
                    "the connection broke during the change, which may have taken effect: {m}"
                ),
            },
            Ok(Err((e, evidence))) => Outcome::Failed {
                message: e.to_string(),
                evidence,
            },
        };
        if let Ok(mut r) = self.running.lock() {
            r.remove(&key);
        }
        if !matches!(outcome, Outcome::Unknown { .. }) {
            if let Ok(mut d) = self.done.lock() {
                d.insert(key, outcome.clone());
            }
        }
        outcome
    }

    async fn status(&self, key: &IdempotencyKey, _host: Option<&str>) -> ActionStatus {
        let k = key.as_string();
        if let Some(outcome) = self.done.lock().ok().and_then(|d| d.get(&k).cloned()) {
            return ActionStatus::Finished { outcome };
        }
        if self
            .running
            .lock()
            .map(|r| r.contains_key(&k))
            .unwrap_or(false)
        {
            return ActionStatus::Running;
        }
        ActionStatus::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_bracket_quoted() {
        assert_eq!(quote_name("Reg]istry"), "[Reg]]istry]");
    }
}
