//! The simulated server's backup files: what `BACKUP DATABASE` writes to a path, what
//! `RESTORE VERIFYONLY` checks and what `RESTORE DATABASE … WITH REPLACE` puts back.
//!
//! A file is a snapshot of the database's tables (their `CREATE` text and every row), so a
//! restore really brings back the rows and the schema a failed Setup changed, and a test can
//! read the difference over TDS. A file written while the `backup_unrestorable` fault is on is
//! damaged: it exists and has a size, but its checksum does not hold, as with a bad disk.

use std::collections::BTreeMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;

/// One table as captured: its `CREATE TABLE` text (without the schema) and its rows.
#[derive(Debug, Clone)]
struct TableSnapshot {
    name: String,
    create: String,
    rows: Vec<Vec<SqlValue>>,
}

#[derive(Debug, Clone)]
pub(super) struct BackupFile {
    database: String,
    tables: Vec<TableSnapshot>,
    /// Pages the backup processed (8 KB each): the file's size.
    pages: i64,
    damaged: bool,
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl BackupFile {
    /// Captures every table of the attached schema `db`.
    pub(super) fn capture(
        conn: &Connection,
        db: &str,
        pages: i64,
        damaged: bool,
    ) -> rusqlite::Result<BackupFile> {
        let mut st = conn.prepare(&format!(
            "SELECT name, sql FROM {}.sqlite_master WHERE type = 'table' ORDER BY name",
            quote(db)
        ))?;
        let defs: Vec<(String, String)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut tables = Vec::new();
        for (name, create) in defs {
            let mut q = conn.prepare(&format!("SELECT * FROM {}.{}", quote(db), quote(&name)))?;
            let n = q.column_count();
            let rows = q
                .query_map([], |r| (0..n).map(|i| r.get::<_, SqlValue>(i)).collect())?
                .collect::<rusqlite::Result<Vec<Vec<SqlValue>>>>()?;
            tables.push(TableSnapshot { name, create, rows });
        }
        Ok(BackupFile {
            database: db.to_string(),
            tables,
            pages,
            damaged,
        })
    }

    pub(super) fn database(&self) -> &str {
        &self.database
    }

    pub(super) fn pages(&self) -> i64 {
        self.pages
    }

    pub(super) fn size_bytes(&self) -> i64 {
        self.pages * 8192
    }

    /// Drops every table of `db` and recreates the captured ones with their rows, in one
    /// transaction: a restore that fails half-way leaves the database as it was.
    pub(super) fn put_back(&self, conn: &Connection, db: &str) -> rusqlite::Result<()> {
        let tx = conn.unchecked_transaction()?;
        let now: Vec<String> = tx
            .prepare(&format!(
                "SELECT name FROM {}.sqlite_master WHERE type = 'table'",
                quote(db)
            ))?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for t in now {
            tx.execute(&format!("DROP TABLE {}.{}", quote(db), quote(&t)), [])?;
        }
        for t in &self.tables {
            // sqlite_master keeps `CREATE TABLE name (…)`; the schema goes back in front.
            let body = t.create.find('(').map(|i| &t.create[i..]).unwrap_or("");
            tx.execute(
                &format!("CREATE TABLE {}.{} {body}", quote(db), quote(&t.name)),
                [],
            )?;
            for row in &t.rows {
                let marks = vec!["?"; row.len()].join(", ");
                tx.execute(
                    &format!(
                        "INSERT INTO {}.{} VALUES ({marks})",
                        quote(db),
                        quote(&t.name)
                    ),
                    rusqlite::params_from_iter(row.iter()),
                )?;
            }
        }
        tx.commit()
    }
}

/// The files on the instance's disk, by path (compared case-insensitively, as on Windows).
#[derive(Debug, Default)]
pub(super) struct BackupFiles(BTreeMap<String, BackupFile>);

impl BackupFiles {
    /// `WITH INIT`: the file is overwritten.
    pub(super) fn write(&mut self, path: &str, file: BackupFile) {
        self.0.insert(path.to_ascii_lowercase(), file);
    }

    /// The file at `path` if it exists and is intact; otherwise SQL Server's error.
    pub(super) fn read(&self, path: &str) -> Result<&BackupFile, (i32, String)> {
        match self.0.get(&path.to_ascii_lowercase()) {
            None => Err((
                3201,
                format!("Cannot open backup device '{path}'. Operating system error 2(The system cannot find the file specified.)."),
            )),
            Some(f) if f.damaged => Err((
                3189,
                format!("Damage to the backup set was detected. The checksum of '{path}' does not match its contents."),
            )),
            Some(f) => Ok(f),
        }
    }

    /// Damages the file at `path` (a test or fault's stand-in for a bad disk).
    pub(super) fn damage(&mut self, path: &str) -> bool {
        match self.0.get_mut(&path.to_ascii_lowercase()) {
            Some(f) => {
                f.damaged = true;
                true
            }
            None => false,
        }
    }
}
