//! The audit log a page at a time: filters in the `WHERE` clause and `LIMIT`/`OFFSET` on the
//! event id, so the Audit page and API hold one page of rows however long the log is (they
//! loaded every event on every request: 20,000 events took 0.9 s and hundreds of megabytes when
//! several people looked at once).

use rusqlite::params_from_iter;
use rusqlite::types::Value;

use super::queries::{all, event_from_row, EVENT_COLUMNS};
use super::{raw, Result, Store};
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
    fn clause(&self) -> (String, Vec<Value>) {
        let mut sql = vec!["1 = 1".to_string()];
        let mut args: Vec<Value> = Vec::new();
        if let Some(r) = &self.run_id {
            sql.push("run_id = ?".into());
            args.push(r.clone().into());
        }
        if let Some(a) = &self.actor {
            sql.push("actor = ?".into());
            args.push(a.clone().into());
        }
        if let Some(k) = &self.kind_prefix {
            sql.push("substr(kind, 1, length(?)) = ?".into());
            args.push(k.clone().into());
            args.push(k.clone().into());
        }
        if let Some(f) = self.from_ms {
            sql.push("at >= ?".into());
            args.push(f.into());
        }
        if let Some(t) = self.to_ms {
            sql.push("at < ?".into());
            args.push(t.into());
        }
        if let Some(w) = &self.words {
            sql.push(format!("instr(lower({}), ?) > 0", person_text_sql()));
            args.push(w.to_lowercase().into());
        }
        (sql.join(" AND "), args)
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
        // The clause is built by `clause` from fixed fragments; every value is bound.
        let (clause, args) = filter.clause();
        self.read(|db| {
            raw::snapshot(db, || {
                let total: i64 = db
                    .prepare(&format!("SELECT COUNT(*) FROM events WHERE {clause}"))?
                    .query_row(params_from_iter(&args), |r| r.get(0))?;
                let mut page = args.clone();
                page.push(i64::from(limit).into());
                page.push(i64::try_from(offset).unwrap_or(i64::MAX).into());
                let events = all(
                    db,
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE {clause} ORDER BY id {} \
                         LIMIT ? OFFSET ?",
                        if newest_first { "DESC" } else { "ASC" }
                    ),
                    params_from_iter(&page),
                    event_from_row,
                )?;
                Ok((events, u64::try_from(total).unwrap_or(0)))
            })
        })
        .await
    }

    /// Every event `filter` selects, oldest first (the exports).
    pub async fn events_filtered(&self, filter: &EventFilter) -> Result<Vec<AuditEvent>> {
        let (clause, args) = filter.clause();
        self.read(|db| {
            all(
                db,
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE {clause} ORDER BY id"),
                params_from_iter(&args),
                event_from_row,
            )
        })
        .await
    }
}
