//! The simulated SQL Server instance of one Data Center server: its databases (master, model,
//! msdb, and Registry and/or Directory), backed by SQLite with one attached schema per database.
//!
//! Statements arrive as T-SQL text (a batch, or `sp_executesql` with parameters) and answer a
//! list of [`Event`]s that the TDS layer encodes as tokens. See [`parse`] for what is understood.

mod backup;
mod exec;
pub mod lexer;
pub mod parse;
mod translate;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use exec::Session;

/// Column types the simulated server returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    Int,
    BigInt,
    Bit,
    Float,
    NVarChar,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

impl Value {
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Text(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: SqlType,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResultSet {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
}

/// An INFO or ERROR message as SQL Server sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerMessage {
    pub number: i32,
    pub state: u8,
    pub class: u8,
    pub text: String,
    pub procedure: String,
    pub line: i32,
}

impl ServerMessage {
    pub fn info(number: i32, text: impl Into<String>, line: i32) -> Self {
        ServerMessage {
            number,
            state: 1,
            class: 0,
            text: text.into(),
            procedure: String::new(),
            line,
        }
    }
    pub fn error(number: i32, class: u8, text: impl Into<String>, line: i32) -> Self {
        ServerMessage {
            number,
            state: 1,
            class,
            text: text.into(),
            procedure: String::new(),
            line,
        }
    }
}

/// What executing a batch produced, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Rows(ResultSet),
    Info(ServerMessage),
    Error(ServerMessage),
    /// End of one statement; `count` for statements that report rows.
    Done {
        count: Option<u64>,
        error: bool,
    },
    DatabaseChanged {
        old: String,
        new: String,
    },
    /// The server works for this long before answering further (fault: slow backup).
    Pause(Duration),
}

/// One row of `Registry.dbo.OutflowServices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutflowRow {
    pub server_id: i32,
    pub url: String,
    pub secure_flag: bool,
}

/// What the instance holds when it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// Name reported in INFO/ERROR tokens (the host name).
    pub server_name: String,
    pub has_registry: bool,
    pub has_directory: bool,
    pub outflow: Vec<OutflowRow>,
    pub registry_mdf_mb: u64,
    pub registry_ldf_mb: u64,
    /// SQL logins: (name, password).
    pub logins: Vec<(String, String)>,
}

/// Faults an operator of the simulator can inject into the SQL side of one server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlFaults {
    /// DBCC CHECKDB reports a consistency error in this database (case-insensitive).
    pub checkdb_error_in: Option<String>,
    /// Every BACKUP DATABASE takes this long.
    pub backup_delay_secs: u64,
    /// The TDS connection is dropped after a request arrives, before any answer.
    pub drop_connection: bool,
    /// Every backup file written while this is on is damaged: RESTORE VERIFYONLY and RESTORE
    /// DATABASE refuse it (error 3189), as with a bad disk.
    #[serde(default)]
    pub backup_unrestorable: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("the simulated SQL Server could not be created: {0}")]
pub struct SetupError(String);

/// One simulated SQL Server instance. Cheap to clone; all clones share the databases.
#[derive(Clone)]
pub struct SqlInstance {
    inner: Arc<Mutex<exec::Engine>>,
    faults: Arc<Mutex<SqlFaults>>,
    spec: Arc<InstanceSpec>,
}

impl SqlInstance {
    pub fn new(spec: InstanceSpec) -> Result<Self, SetupError> {
        let engine = exec::Engine::create(&spec).map_err(|e| SetupError(e.to_string()))?;
        Ok(SqlInstance {
            inner: Arc::new(Mutex::new(engine)),
            faults: Arc::new(Mutex::new(SqlFaults::default())),
            spec: Arc::new(spec),
        })
    }

    pub fn server_name(&self) -> &str {
        &self.spec.server_name
    }

    pub fn check_login(&self, user: &str, password: &str) -> bool {
        self.spec
            .logins
            .iter()
            .any(|(u, p)| u.eq_ignore_ascii_case(user) && p == password)
    }

    pub fn faults(&self) -> SqlFaults {
        self.faults.lock().map(|f| f.clone()).unwrap_or_default()
    }

    pub fn set_faults(&self, faults: SqlFaults) {
        if let Ok(mut f) = self.faults.lock() {
            *f = faults;
        }
    }

    /// The canonical name of a database that exists here, matched case-insensitively.
    pub fn database(&self, name: &str) -> Option<String> {
        let e = self.inner.lock().ok()?;
        e.database(name)
    }

    /// Runs one batch. `params` are `sp_executesql` parameters (`@P1` …).
    pub fn execute(
        &self,
        session: &mut Session,
        text: &str,
        params: &[(String, Value)],
    ) -> Vec<Event> {
        let faults = self.faults();
        match self.inner.lock() {
            Ok(mut e) => e.run_batch(session, text, params, &faults),
            Err(_) => vec![
                Event::Error(ServerMessage::error(
                    50000,
                    20,
                    "The simulated SQL Server is in an inconsistent state after an earlier failure.",
                    1,
                )),
                Event::Done { count: None, error: true },
            ],
        }
    }

    /// The OutflowServices rows of one Registry database (inspection for tests and the demo).
    pub fn outflow_rows(&self) -> Vec<OutflowRow> {
        self.inner
            .lock()
            .map(|e| e.outflow_rows())
            .unwrap_or_default()
    }

    /// Runs one batch on a fresh session (the simulator's own hand, e.g. a half-run Setup
    /// altering the Registry database); answers the server's first error message.
    pub fn run_as_setup(&self, text: &str) -> Result<(), String> {
        let mut session = Session::default();
        let events = self.execute(&mut session, text, &[]);
        match events.iter().find_map(|e| match e {
            Event::Error(m) => Some(m.text.clone()),
            _ => None,
        }) {
            Some(m) => Err(m),
            None => Ok(()),
        }
    }

    /// Damages the backup file at `path`; false when no such file exists.
    pub fn damage_backup(&self, path: &str) -> bool {
        self.inner
            .lock()
            .map(|mut e| e.damage_backup(path))
            .unwrap_or(false)
    }

    /// Names of databases backed up so far (msdb.dbo.backupset), oldest first.
    pub fn backups(&self) -> Vec<String> {
        self.inner.lock().map(|e| e.backups()).unwrap_or_default()
    }
}
