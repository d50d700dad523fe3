//! The audit log a page at a time: filters in the `WHERE` clause and `LIMIT`/`OFFSET` on the
//! event id, so the Audit page and API hold one page of rows however long the log is (they
//! loaded every event on every request: 20,000 events took 0.9 s and hundreds of megabytes when
//! several people looked at once).

use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, AssertSqlSafe, Row};

use super::queries::event_from_row;
use super::{EngineError, Result, Store};
use crate::engine::audit::AuditEvent;
use crate::engine::machine::Millis;

/// What events are wanted; every field optional, all given ones must hold.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EventFilter {
    pub run_id: Option<String>,
    pub actor: Option<String>,
    /// Kinds starting with this (`step.` for every step event).
    pub kind_prefix: Option<String>,
    /// From this time (inclusive), Unix milliseconds.
    pub from_ms: Option<Millis>,
    /// Before this time (exclusive), Unix milliseconds.
    pub to_ms: Option<Millis>,
    /// Words the person's own text contains (comment, justification, reason, note, evidence or
    /// text, as `web::audit_words::person_text` picks it), compared case-insensitively for
    /// ASCII letters.
    pub words: Option<String>,
}

/// The person's own text of an event, in SQL: the first non-blank string among these keys, at
/// the top of the payload or under `event` (the same order as `audit_words::person_text`).
fn person_text_sql() -> String {
    let mut parts = Vec::new();
    for key in [
        "comment",
        "justification",
        "reason",
        "note",
        "evidence",
        "text",
    ] {
        for path in [format!("$.{key}"), format!("$.event.{key}")] {
            parts.push(format!(
                "CASE WHEN json_type(payload, '{path}') = 'text' AND trim(json_extract(payload, '{path}')) <> '' THEN json_extract(payload, '{path}') END"
            ));
        }
    }
    format!("COALESCE({})", parts.join(", "))
}

impl EventFilter {
    /// The `WHERE` clause and its arguments.
    fn clause(&self) -> Result<(String, SqliteArguments)> {
        let mut sql = vec!["1 = 1".to_string()];
        let mut args = SqliteArguments::default();
        let bad = |e: sqlx::error::BoxDynError| EngineError::Invalid(e.to_string());
        if let Some(r) = &self.run_id {
            sql.push("run_id = ?".into());
            args.add(r.clone()).map_err(bad)?;
        }
        if let Some(a) = &self.actor {
            sql.push("actor = ?".into());
            args.add(a.clone()).map_err(bad)?;
        }
        if let Some(k) = &self.kind_prefix {
            sql.push("substr(kind, 1, length(?)) = ?".into());
            args.add(k.clone()).map_err(bad)?;
            args.add(k.clone()).map_err(bad)?;
        }
        if let Some(f) = self.from_ms {
            sql.push("at >= ?".into());
            args.add(f).map_err(bad)?;
        }
        if let Some(t) = self.to_ms {
            sql.push("at < ?".into());
            args.add(t).map_err(bad)?;
        }
        if let Some(w) = &self.words {
            sql.push(format!("instr(lower({}), ?) > 0", person_text_sql()));
            args.add(w.to_lowercase()).map_err(bad)?;
        }
        Ok((sql.join(" AND "), args))
    }
}

impl Store {
    /// One page of the events `filter` selects (newest or oldest first), and how many it
    /// selects in all.
    pub async fn events_page(
        &self,
        filter: &EventFilter,
        newest_first: bool,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<AuditEvent>, u64)> {
        let (clause, args) = filter.clause()?;
        let total: i64 =
            // The clause is built by `clause` from fixed fragments; every value is bound.
            sqlx::query_with(AssertSqlSafe(format!("SELECT COUNT(*) FROM events WHERE {clause}")), args)
                .fetch_one(&self.pool)
                .await?
                .get(0);
        let (clause, mut args) = filter.clause()?;
        let bad = |e: sqlx::error::BoxDynError| EngineError::Invalid(e.to_string());
        args.add(i64::from(limit)).map_err(bad)?;
        args.add(i64::try_from(offset).unwrap_or(i64::MAX))
            .map_err(bad)?;
        let rows = sqlx::query_with(
            AssertSqlSafe(format!(
                "SELECT id, run_id, step_id, actor, at, kind, payload, prev_hash, hash, sig FROM events
                 WHERE {clause} ORDER BY id {} LIMIT ? OFFSET ?",
                if newest_first { "DESC" } else { "ASC" }
            )),
            args,
        )
        .fetch_all(&self.pool)
        .await?;
        let events = rows.iter().map(event_from_row).collect::<Result<_>>()?;
        Ok((events, u64::try_from(total).unwrap_or(0)))
    }

    /// Every event `filter` selects, oldest first (the exports).
    pub async fn events_filtered(&self, filter: &EventFilter) -> Result<Vec<AuditEvent>> {
        let (clause, args) = filter.clause()?;
        let rows = sqlx::query_with(
            AssertSqlSafe(format!(
                "SELECT id, run_id, step_id, actor, at, kind, payload, prev_hash, hash, sig FROM events
                 WHERE {clause} ORDER BY id"
            )),
            args,
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }
}
