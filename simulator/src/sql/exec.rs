//! Executes parsed statements against SQLite and produces the events SQL Server would send:
//! result sets, row counts, INFO messages (CHECKDB, sp_updatestats, BACKUP, USE) and ERROR
//! messages with SQL Server's numbers, classes and line numbers.

use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::Connection;

use super::backup::{BackupFile, BackupFiles};
use super::lexer::tokenize;
use super::parse::{parse_batch, ParseError, Stmt, TextArg};
use super::translate::to_sqlite;
use super::{
    Column, Event, InstanceSpec, OutflowRow, ResultSet, ServerMessage, SqlFaults, SqlType, Value,
};

/// Per-connection state.
#[derive(Debug, Clone)]
pub struct Session {
    pub database: String,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            database: "master".into(),
        }
    }
}

pub(super) struct Engine {
    conn: Connection,
    /// Databases in `sys.databases` order.
    dbs: Vec<String>,
    server_name: String,
    /// Backup files written by BACKUP DATABASE, by path: the instance's "disk".
    files: BackupFiles,
}

/// Tables each database starts with. The Directory table is a stand-in: the procedure never
/// reads Directory data, it only checks and backs the database up.
const REGISTRY_SCHEMA: &str = "CREATE TABLE Registry.OutflowServices (
    ServerId INT PRIMARY KEY NOT NULL,
    Url NVARCHAR(255) COLLATE NOCASE NOT NULL,
    secureFlag BIT NOT NULL DEFAULT 1);";
const DIRECTORY_SCHEMA: &str = "CREATE TABLE Directory.Accounts (
    AccountId INT PRIMARY KEY NOT NULL,
    Status NVARCHAR(32) COLLATE NOCASE NOT NULL);
    INSERT INTO Directory.Accounts VALUES (1, 'active'), (2, 'active'), (3, 'suspended');";
const CATALOG_SCHEMA: &str = "CREATE TABLE main.sys_databases (
    name NVARCHAR(128) COLLATE NOCASE NOT NULL, database_id INT NOT NULL, state_desc NVARCHAR(60) NOT NULL);
  CREATE TABLE main.sys_master_files (
    database_id INT NOT NULL, file_id INT NOT NULL, type INT NOT NULL, type_desc NVARCHAR(60) NOT NULL,
    name NVARCHAR(128) COLLATE NOCASE NOT NULL, physical_name NVARCHAR(260) NOT NULL, size INT NOT NULL);
  CREATE TABLE msdb.backupset (
    backup_set_id INTEGER PRIMARY KEY, database_name NVARCHAR(128) NOT NULL,
    physical_device_name NVARCHAR(260) NOT NULL, type NVARCHAR(1) NOT NULL,
    media_set_id INT NOT NULL DEFAULT 0, backup_size BIGINT NOT NULL DEFAULT 0,
    has_backup_checksums BIT NOT NULL DEFAULT 0);
  CREATE TABLE msdb.backupmediafamily (
    media_set_id INT NOT NULL, family_sequence_number INT NOT NULL DEFAULT 1,
    physical_device_name NVARCHAR(260) NOT NULL);";

impl Engine {
    pub(super) fn create(spec: &InstanceSpec) -> rusqlite::Result<Engine> {
        let conn = Connection::open_in_memory()?;
        let mut dbs = vec![
            "master".to_string(),
            "tempdb".into(),
            "model".into(),
            "msdb".into(),
        ];
        if spec.has_registry {
            dbs.push("Registry".into());
        }
        if spec.has_directory {
            dbs.push("Directory".into());
        }
        for db in &dbs {
            conn.execute(&format!("ATTACH DATABASE ':memory:' AS \"{db}\""), [])?;
        }
        conn.execute_batch(CATALOG_SCHEMA)?;
        for (i, db) in dbs.iter().enumerate() {
            let (mdf, ldf) = if db == "Registry" {
                (spec.registry_mdf_mb, spec.registry_ldf_mb)
            } else {
                (64, 16)
            };
            conn.execute(
                "INSERT INTO main.sys_databases VALUES (?1, ?2, 'ONLINE')",
                rusqlite::params![db, i as i64 + 1],
            )?;
            for (file_id, kind, desc, name, ext, mb) in [
                (1, 0, "ROWS", db.clone(), "mdf", mdf),
                (2, 1, "LOG", format!("{db}_log"), "ldf", ldf),
            ] {
                conn.execute(
                    "INSERT INTO main.sys_master_files VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    rusqlite::params![
                        i as i64 + 1,
                        file_id,
                        kind,
                        desc,
                        name,
                        format!("D:\\SQLData\\{name}.{ext}"),
                        (mb * 128) as i64
                    ],
                )?;
            }
        }
        if spec.has_registry {
            conn.execute_batch(REGISTRY_SCHEMA)?;
            for r in &spec.outflow {
                conn.execute(
                    "INSERT INTO Registry.OutflowServices VALUES (?1, ?2, ?3)",
                    rusqlite::params![r.server_id, r.url, r.secure_flag],
                )?;
            }
        }
        if spec.has_directory {
            conn.execute_batch(DIRECTORY_SCHEMA)?;
        }
        Ok(Engine {
            conn,
            dbs,
            server_name: spec.server_name.clone(),
            files: BackupFiles::default(),
        })
    }

    pub(super) fn database(&self, name: &str) -> Option<String> {
        self.dbs
            .iter()
            .find(|d| d.eq_ignore_ascii_case(name))
            .cloned()
    }

    pub(super) fn outflow_rows(&self) -> Vec<OutflowRow> {
        let Ok(mut st) = self.conn.prepare(
            "SELECT ServerId, Url, secureFlag FROM Registry.OutflowServices ORDER BY ServerId",
        ) else {
            return Vec::new();
        };
        st.query_map([], |r| {
            Ok(OutflowRow {
                server_id: r.get(0)?,
                url: r.get(1)?,
                secure_flag: r.get::<_, i64>(2)? != 0,
            })
        })
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
    }

    pub(super) fn damage_backup(&mut self, path: &str) -> bool {
        self.files.damage(path)
    }

    pub(super) fn backups(&self) -> Vec<String> {
        let Ok(mut st) = self
            .conn
            .prepare("SELECT database_name FROM msdb.backupset ORDER BY backup_set_id")
        else {
            return Vec::new();
        };
        st.query_map([], |r| r.get(0))
            .map(|rows| rows.filter_map(Result::ok).collect())
            .unwrap_or_default()
    }

    pub(super) fn run_batch(
        &mut self,
        session: &mut Session,
        text: &str,
        params: &[(String, Value)],
        faults: &SqlFaults,
    ) -> Vec<Event> {
        let mut ev = Vec::new();
        let stmts = tokenize(text)
            .map_err(|e| ParseError {
                number: 105,
                line: e.line,
                message: e.message,
            })
            .and_then(|t| parse_batch(&t));
        match stmts {
            Ok(stmts) => {
                for s in &stmts {
                    self.run(s, session, params, faults, &mut ev);
                }
            }
            Err(e) => {
                ev.push(Event::Error(ServerMessage::error(
                    e.number, 15, e.message, e.line,
                )));
                ev.push(Event::Done {
                    count: None,
                    error: true,
                });
            }
        }
        ev
    }

    fn fail(ev: &mut Vec<Event>, number: i32, text: String, line: i32) {
        ev.push(Event::Error(ServerMessage::error(number, 16, text, line)));
        ev.push(Event::Done {
            count: None,
            error: true,
        });
    }

    fn run(
        &mut self,
        s: &Stmt,
        session: &mut Session,
        params: &[(String, Value)],
        faults: &SqlFaults,
        ev: &mut Vec<Event>,
    ) {
        match s {
            Stmt::Use { db, line } => match self.database(db) {
                Some(canon) => {
                    if canon != session.database {
                        ev.push(Event::DatabaseChanged { old: session.database.clone(), new: canon.clone() });
                    }
                    ev.push(Event::Info(ServerMessage::info(5701, format!("Changed database context to '{canon}'."), *line)));
                    session.database = canon;
                    ev.push(Event::Done { count: None, error: false });
                }
                None => Self::fail(
                    ev,
                    911,
                    format!("Database '{db}' does not exist. Make sure that the name is entered correctly."),
                    *line,
                ),
            },
            Stmt::CheckDb { db, no_infomsgs, line } => self.checkdb(db.as_deref(), *no_infomsgs, *line, session, faults, ev),
            Stmt::UpdateStats { line } => self.update_stats(&session.database, *line, ev),
            Stmt::Backup { db, disk, line } => match arg(disk, params) {
                Ok(disk) => self.backup(db, &disk, *line, faults, ev),
                Err(m) => Self::fail(ev, 137, m, *line),
            },
            Stmt::RestoreVerify { disk, line } => match arg(disk, params) {
                Ok(disk) => self.verify(&disk, *line, ev),
                Err(m) => Self::fail(ev, 137, m, *line),
            },
            Stmt::Restore { db, disk, replace, line } => match arg(disk, params) {
                Ok(disk) => self.restore(db, &disk, *replace, *line, ev),
                Err(m) => Self::fail(ev, 137, m, *line),
            },
            Stmt::If { negated, query, then, line } => {
                let exists = to_sqlite(query, &session.database, &self.server_name)
                    .map_err(|e| (e.number, e.message))
                    .and_then(|t| {
                        let sql = format!("SELECT EXISTS ({})", t.sql);
                        self.conn.query_row(&sql, [], |r| r.get::<_, bool>(0)).map_err(|e| map_sqlite(&e))
                    });
                match exists {
                    Ok(x) if x != *negated => {
                        for s in then {
                            self.run(s, session, params, faults, ev);
                        }
                    }
                    Ok(_) => {}
                    Err((n, m)) => Self::fail(ev, n, m, *line),
                }
            }
            Stmt::Block(stmts) => {
                for s in stmts {
                    self.run(s, session, params, faults, ev);
                }
            }
            Stmt::Set { .. } => ev.push(Event::Done { count: None, error: false }),
            Stmt::Print { text, line } => {
                ev.push(Event::Info(ServerMessage::info(0, text.clone(), *line)));
            }
            Stmt::Exec { procedure, line } => Self::fail(ev, 2812, format!("Could not find stored procedure '{procedure}'."), *line),
            Stmt::Data { tokens, line } => match to_sqlite(tokens, &session.database, &self.server_name) {
                Ok(t) => match self.data(&t.sql, params) {
                    Ok(mut out) => ev.append(&mut out),
                    Err((n, m)) => Self::fail(ev, n, m, *line),
                },
                Err(e) => Self::fail(ev, e.number, e.message, e.line),
            },
        }
    }

    fn tables(&self, db: &str) -> Vec<(String, i64)> {
        let sql = format!(
            "SELECT name FROM \"{}\".sqlite_master WHERE type = 'table' ORDER BY name",
            db.replace('"', "")
        );
        let names: Vec<String> = self
            .conn
            .prepare(&sql)
            .and_then(|mut st| {
                st.query_map([], |r| r.get(0))
                    .map(|r| r.filter_map(Result::ok).collect())
            })
            .unwrap_or_default();
        names
            .into_iter()
            .map(|n| {
                let count = self
                    .conn
                    .query_row(&format!("SELECT COUNT(*) FROM \"{db}\".\"{n}\""), [], |r| {
                        r.get(0)
                    })
                    .unwrap_or(0);
                (n, count)
            })
            .collect()
    }

    fn checkdb(
        &mut self,
        db: Option<&str>,
        quiet: bool,
        line: i32,
        session: &Session,
        faults: &SqlFaults,
        ev: &mut Vec<Event>,
    ) {
        let name = db.unwrap_or(&session.database);
        let Some(canon) = self.database(name) else {
            return Self::fail(
                ev,
                2520,
                format!("Could not find database '{name}'. The database either does not exist, or was dropped before a statement tried to use it. Verify if the database exists by querying the sys.databases catalog view."),
                line,
            );
        };
        let info = |ev: &mut Vec<Event>, n: i32, t: String| {
            if !quiet {
                ev.push(Event::Info(ServerMessage::info(n, t, line)));
            }
        };
        info(ev, 2536, format!("DBCC results for '{canon}'."));
        for (t, rows) in self.tables(&canon) {
            info(
                ev,
                2593,
                format!(
                    "There are {rows} rows in {} pages for object \"{t}\".",
                    1 + rows / 50
                ),
            );
        }
        let broken = faults
            .checkdb_error_in
            .as_deref()
            .map(|d| d.eq_ignore_ascii_case(&canon))
            .unwrap_or(false);
        if broken {
            ev.push(Event::Error(ServerMessage::error(
                8928, 16,
                "Object ID 565577053, index ID 1, partition ID 72057594039697408, alloc unit ID 72057594044809216 (type In-row data): Page (1:312) could not be processed.  See other errors for details.",
                line,
            )));
            ev.push(Event::Error(ServerMessage::error(
                8989, 16,
                format!("CHECKDB found 0 allocation errors and 1 consistency errors in database '{canon}'."),
                line,
            )));
        } else {
            info(ev, 8989, format!("CHECKDB found 0 allocation errors and 0 consistency errors in database '{canon}'."));
        }
        info(ev, 2528, "DBCC execution completed. If DBCC printed error messages, contact your system administrator.".into());
        ev.push(Event::Done {
            count: None,
            error: broken,
        });
    }

    fn update_stats(&mut self, db: &str, line: i32, ev: &mut Vec<Event>) {
        let mut m = |t: String| {
            let mut msg = ServerMessage::info(0, t, line);
            msg.procedure = "sp_updatestats".into();
            ev.push(Event::Info(msg));
        };
        for (t, _) in self.tables(db) {
            m(format!("Updating [dbo].[{t}]"));
            m("    0 index(es)/statistic(s) have been updated, 1 did not require update.".into());
        }
        m("Statistics for all tables have been updated.".into());
        ev.push(Event::Done {
            count: None,
            error: false,
        });
    }

    fn backup(&mut self, db: &str, disk: &str, line: i32, faults: &SqlFaults, ev: &mut Vec<Event>) {
        let Some(canon) = self.database(db) else {
            return Self::fail(
                ev,
                911,
                format!(
                    "Database '{db}' does not exist. Make sure that the name is entered correctly."
                ),
                line,
            );
        };
        if disk.trim().is_empty() {
            return Self::fail(ev, 3201, "Cannot open backup device ''. Operating system error 3(The system cannot find the path specified.).".into(), line);
        }
        if faults.backup_delay_secs > 0 {
            ev.push(Event::Pause(Duration::from_secs(faults.backup_delay_secs)));
        }
        let sizes: Vec<(String, i64)> = self
            .conn
            .prepare("SELECT f.name, f.size FROM main.sys_master_files f JOIN main.sys_databases d ON d.database_id = f.database_id WHERE d.name = ?1 ORDER BY f.file_id")
            .and_then(|mut st| st.query_map([&canon], |r| Ok((r.get(0)?, r.get(1)?))).map(|r| r.filter_map(Result::ok).collect()))
            .unwrap_or_default();
        let mut total = 0;
        let mut processed = Vec::new();
        for (file, pages) in &sizes {
            // A full backup copies the used pages; the simulator treats a tenth as used.
            let used = (pages / 10).max(2);
            total += used;
            processed.push(Event::Info(ServerMessage::info(
                4035,
                format!("Processed {used} pages for database '{canon}', file '{file}' on file 1."),
                line,
            )));
        }
        let file = match BackupFile::capture(&self.conn, &canon, total, faults.backup_unrestorable)
        {
            Ok(f) => f,
            Err(e) => {
                let (n, m) = map_sqlite(&e);
                return Self::fail(ev, n, m, line);
            }
        };
        let recorded = self.conn.execute(
            "INSERT INTO msdb.backupset (database_name, physical_device_name, type, media_set_id, backup_size, has_backup_checksums) VALUES (?1, ?2, 'D', (SELECT COUNT(*) + 1 FROM msdb.backupset), ?3, 1)",
            rusqlite::params![&canon, disk, file.size_bytes()],
        ).and_then(|_| self.conn.execute(
            "INSERT INTO msdb.backupmediafamily (media_set_id, physical_device_name) VALUES ((SELECT MAX(media_set_id) FROM msdb.backupset), ?1)",
            [disk],
        ));
        if let Err(e) = recorded {
            let (n, m) = map_sqlite(&e);
            return Self::fail(ev, n, m, line);
        }
        self.files.write(disk, file);
        ev.append(&mut processed);
        let secs = 0.05 + faults.backup_delay_secs as f64;
        ev.push(Event::Info(ServerMessage::info(
            3014,
            format!("BACKUP DATABASE successfully processed {total} pages in {secs:.3} seconds ({:.3} MB/sec).", total as f64 / 128.0 / secs),
            line,
        )));
        ev.push(Event::Done {
            count: None,
            error: false,
        });
    }

    /// RESTORE VERIFYONLY: the file exists and its checksum holds.
    fn verify(&mut self, disk: &str, line: i32, ev: &mut Vec<Event>) {
        match self.files.read(disk) {
            Ok(_) => {
                ev.push(Event::Info(ServerMessage::info(
                    3262,
                    "The backup set on file 1 is valid.",
                    line,
                )));
                ev.push(Event::Done {
                    count: None,
                    error: false,
                });
            }
            Err((n, m)) => self.restore_failed(ev, n, m, "VERIFY DATABASE", line),
        }
    }

    /// RESTORE DATABASE: puts the file's tables back in place of the database's.
    fn restore(&mut self, db: &str, disk: &str, replace: bool, line: i32, ev: &mut Vec<Event>) {
        let file = match self.files.read(disk) {
            Ok(f) => f.clone(),
            Err((n, m)) => return self.restore_failed(ev, n, m, "RESTORE DATABASE", line),
        };
        let Some(canon) = self.database(db) else {
            return self.restore_failed(ev, 911, format!("Database '{db}' does not exist. The simulated server restores only over a database it holds."), "RESTORE DATABASE", line);
        };
        if !file.database().eq_ignore_ascii_case(&canon) && !replace {
            let m = format!("The backup set holds a backup of a database other than the existing '{canon}' database.");
            return self.restore_failed(ev, 3154, m, "RESTORE DATABASE", line);
        }
        if !replace {
            let m = format!("The tail of the log for the database \"{canon}\" has not been backed up. Use BACKUP LOG WITH NORECOVERY to backup the log if it contains work you do not want to lose. Use the WITH REPLACE or WITH STOPAT clause of the RESTORE statement to just overwrite the contents of the log.");
            return self.restore_failed(ev, 3159, m, "RESTORE DATABASE", line);
        }
        if let Err(e) = file.put_back(&self.conn, &canon) {
            let (n, m) = map_sqlite(&e);
            return self.restore_failed(ev, n, m, "RESTORE DATABASE", line);
        }
        let pages = file.pages();
        ev.push(Event::Info(ServerMessage::info(
            4035,
            format!("Processed {pages} pages for database '{canon}', file '{canon}' on file 1."),
            line,
        )));
        ev.push(Event::Info(ServerMessage::info(3014, format!("RESTORE DATABASE successfully processed {pages} pages in 0.050 seconds ({:.3} MB/sec).", pages as f64 / 128.0 / 0.05), line)));
        ev.push(Event::Done {
            count: None,
            error: false,
        });
    }

    /// The error SQL Server sends, then its "terminating abnormally" 3013.
    fn restore_failed(
        &self,
        ev: &mut Vec<Event>,
        number: i32,
        text: String,
        what: &str,
        line: i32,
    ) {
        ev.push(Event::Error(ServerMessage::error(number, 16, text, line)));
        Self::fail(ev, 3013, format!("{what} is terminating abnormally."), line);
    }

    fn data(&mut self, sql: &str, params: &[(String, Value)]) -> Result<Vec<Event>, (i32, String)> {
        let mut st = self.conn.prepare(sql).map_err(|e| map_sqlite(&e))?;
        for i in 1..=st.parameter_count() {
            let name = st.parameter_name(i).unwrap_or("?").to_string();
            let value = params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&name))
                .map(|(_, v)| v)
                .ok_or_else(|| (137, format!("Must declare the scalar variable \"{name}\".")))?;
            let r = match value {
                Value::Null => st.raw_bind_parameter(i, rusqlite::types::Null),
                Value::Int(v) => st.raw_bind_parameter(i, v),
                Value::Float(v) => st.raw_bind_parameter(i, v),
                Value::Text(v) => st.raw_bind_parameter(i, v),
            };
            r.map_err(|e| map_sqlite(&e))?;
        }
        if st.column_count() == 0 {
            let n = st.raw_execute().map_err(|e| map_sqlite(&e))?;
            return Ok(vec![Event::Done {
                count: Some(n as u64),
                error: false,
            }]);
        }
        let decl: Vec<(String, Option<String>)> = st
            .columns()
            .map(|c| (c.name().to_string(), c.decl_type().map(str::to_string)))
            .collect();
        let mut rows = Vec::new();
        let mut q = st.raw_query();
        while let Some(r) = q.next().map_err(|e| map_sqlite(&e))? {
            let mut row = Vec::with_capacity(decl.len());
            for i in 0..decl.len() {
                row.push(match r.get_ref(i).map_err(|e| map_sqlite(&e))? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(v) => Value::Float(v),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Value::Text(String::from_utf8_lossy(t).into_owned())
                    }
                });
            }
            rows.push(row);
        }
        let columns = decl
            .iter()
            .enumerate()
            .map(|(i, (name, d))| Column {
                name: name.clone(),
                ty: column_type(d.as_deref(), rows.iter().map(|r| &r[i])),
            })
            .collect();
        let n = rows.len() as u64;
        Ok(vec![
            Event::Rows(ResultSet { columns, rows }),
            Event::Done {
                count: Some(n),
                error: false,
            },
        ])
    }
}

/// The declared type decides; values that do not fit it (SQLite is loosely typed) make the
/// column NVARCHAR so nothing is lost.
/// The value of a device argument: a literal, or a text parameter the client sent.
fn arg(a: &TextArg, params: &[(String, Value)]) -> Result<String, String> {
    match a {
        TextArg::Literal(s) => Ok(s.clone()),
        TextArg::Param(name) => match params.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some((_, Value::Text(s))) => Ok(s.clone()),
            Some(_) => Err(format!(
                "The backup device {name} must be a character string."
            )),
            None => Err(format!("Must declare the scalar variable \"{name}\".")),
        },
    }
}

fn column_type<'a>(decl: Option<&str>, values: impl Iterator<Item = &'a Value> + Clone) -> SqlType {
    let d = decl.unwrap_or("").to_ascii_uppercase();
    let wanted = if d.contains("BIGINT") {
        Some(SqlType::BigInt)
    } else if d.contains("BIT") {
        Some(SqlType::Bit)
    } else if d.contains("INT") {
        Some(SqlType::Int)
    } else if d.contains("CHAR") || d.contains("TEXT") {
        Some(SqlType::NVarChar)
    } else if d.contains("FLOAT") || d.contains("REAL") || d.contains("DOUBLE") {
        Some(SqlType::Float)
    } else {
        None
    };
    let fits = |t: SqlType, v: &Value| match (t, v) {
        (_, Value::Null) | (SqlType::NVarChar, _) => true,
        (SqlType::Int, Value::Int(i)) => i32::try_from(*i).is_ok(),
        (SqlType::BigInt, Value::Int(_)) => true,
        (SqlType::Bit, Value::Int(i)) => *i == 0 || *i == 1,
        (SqlType::Float, Value::Float(_)) => true,
        _ => false,
    };
    let candidate = wanted.unwrap_or_else(|| match values.clone().find(|v| **v != Value::Null) {
        Some(Value::Int(_)) if values.clone().all(|v| fits(SqlType::Int, v)) => SqlType::Int,
        Some(Value::Int(_)) => SqlType::BigInt,
        Some(Value::Float(_)) => SqlType::Float,
        _ => SqlType::NVarChar,
    });
    if values.clone().all(|v| fits(candidate, v)) {
        candidate
    } else {
        SqlType::NVarChar
    }
}

/// SQLite's complaint, as the SQL Server error a client would see.
fn map_sqlite(e: &rusqlite::Error) -> (i32, String) {
    let msg = match e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
        other => other.to_string(),
    };
    if let Some(t) = msg.strip_prefix("no such table: ") {
        (208, format!("Invalid object name '{t}'."))
    } else if let Some(c) = msg.strip_prefix("no such column: ") {
        (207, format!("Invalid column name '{c}'."))
    } else if msg.contains("UNIQUE constraint failed") {
        (
            2627,
            format!("Violation of PRIMARY KEY constraint. Cannot insert duplicate key ({msg})."),
        )
    } else if msg.contains("NOT NULL constraint failed") {
        (
            515,
            format!(
                "Cannot insert the value NULL into a column that does not allow nulls ({msg})."
            ),
        )
    } else if msg.contains("syntax error") {
        (102, format!("Incorrect syntax ({msg})."))
    } else {
        (
            50000,
            format!("The simulated SQL Server could not run the statement: {msg}"),
        )
    }
}
