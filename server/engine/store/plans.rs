//! The plans SQLite chooses for the statements every transition and claim runs, checked against
//! the bundled SQLite: none may walk a run's steps or its log. SQLite 3.54 (the library upgrade
//! of issue 22) chose, for the order check, to walk every step of the run through
//! `steps_claim_scan` and probe each one's dependencies, so a transition cost grew with the
//! plan; nothing measured it until the benchmark ran 3,000 steps. A query written so that the
//! planner has no such choice (`CROSS JOIN` fixes the order) is checked here so an upgrade that
//! changes a plan fails a test instead of a night's run.
//!
//! And none may be re-prepared when its parameters change: the store keeps each connection's
//! prepared statements (`raw.rs`), but SQLite re-parses a statement whose plan it tied to the
//! values bound, which costs what not keeping it would. The store's connections turn on the
//! query planner's stability guarantee (QPSG) so that it never does.

#[cfg(test)]
mod tests {
    use super::super::claim::{
        CANDIDATES, DONE_SINCE, HELD_SAME_PHASE, UNBLOCK_ALL, UNBLOCK_SINCE,
    };
    use super::super::queries::LOAD_STEP;
    use super::super::transitions::ORDER_CHECK;
    use rusqlite::types::Value;

    use crate::engine::testkit::noop_plan;
    use crate::engine::Store;

    /// The `detail` lines of `EXPLAIN QUERY PLAN` for `sql` (parameters left unbound: NULL).
    fn plan(db: &rusqlite::Connection, sql: &str) -> Vec<String> {
        let mut st = db
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("the statement prepares");
        let nulls = vec![rusqlite::types::Null; st.parameter_count()];
        let mut rows = st.query(rusqlite::params_from_iter(nulls)).expect("plan");
        let mut out = Vec::new();
        while let Some(r) = rows.next().expect("row") {
            out.push(r.get::<_, String>(3).expect("detail"));
        }
        out
    }

    /// A line that reads every row of a table, or every row of one run (a search bound only
    /// by the run: `(run_id=?)`).
    fn walks(line: &str) -> bool {
        let table_scan = ["steps", "step_deps", "step_specs", "events", "step_log"]
            .iter()
            .any(|t| {
                line.starts_with(&format!("SCAN {t}")) || line.contains(&format!("SCAN {t} "))
            });
        table_scan || line.ends_with("(run_id=?)")
    }

    /// Every hot statement with two sets of parameters for a step of `run` (the walk check binds
    /// NULLs instead; the re-prepare check runs both sets).
    fn hot_statements(run: &str) -> Vec<(&'static str, &'static str, Vec<Value>, Vec<Value>)> {
        let text = |s: &str| Value::Text(s.to_string());
        let r = text(run);
        vec![
            (
                "order check",
                ORDER_CHECK,
                vec![r.clone(), text("s0001")],
                vec![r.clone(), text("s0002")],
            ),
            (
                "load step",
                LOAD_STEP,
                vec![r.clone(), text("s0001")],
                vec![r.clone(), text("s0002")],
            ),
            (
                "candidates",
                CANDIDATES,
                vec![r.clone(), 0.into()],
                vec![r.clone(), 1.into()],
            ),
            (
                "unblock (all)",
                UNBLOCK_ALL,
                vec![r.clone(), 0.into()],
                vec![r.clone(), 1.into()],
            ),
            (
                "unblock (since)",
                UNBLOCK_SINCE,
                vec![text(r#"["s0001"]"#), r.clone(), r.clone(), 0.into()],
                vec![text(r#"["s0002","s0003"]"#), r.clone(), r.clone(), 0.into()],
            ),
            (
                "window end",
                HELD_SAME_PHASE,
                vec![r.clone(), text("s0001"), text("A")],
                vec![r.clone(), text("s0002"), text("B")],
            ),
            (
                "done since",
                DONE_SINCE,
                vec![r.clone(), 0.into()],
                vec![r.clone(), 5.into()],
            ),
        ]
    }

    #[tokio::test]
    async fn no_hot_statement_walks_a_run_s_steps_or_its_log() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Rows in the tables, as a real run has them (the planner has no statistics either way).
        let store = Store::open(&dir.path().join("p.db")).await.expect("open");
        crate::engine::testkit::started_run(&store, noop_plan(300, false, &[]), "CHG-PLANS").await;
        let plans = store
            .read(|db| {
                Ok(hot_statements("any")
                    .into_iter()
                    .map(|(name, sql, _, _)| (name, plan(db, sql)))
                    .collect::<Vec<_>>())
            })
            .await
            .expect("plans");
        for (name, lines) in plans {
            assert!(!lines.is_empty(), "{name}: no plan");
            let bad: Vec<&String> = lines.iter().filter(|l| walks(l)).collect();
            assert!(
                bad.is_empty(),
                "{name} walks a run: {bad:?} (whole plan: {lines:?})"
            );
        }
    }

    /// How often `sql` was re-prepared running it with `a`, then `b`, then `a` again, the way the
    /// store runs it: from the connection's cache, reading the first row only.
    fn reprepared(db: &rusqlite::Connection, sql: &str, a: &[Value], b: &[Value]) -> i32 {
        for params in [a, b, a] {
            let mut st = db.prepare_cached(sql).expect("the statement prepares");
            let mut rows = st.query(rusqlite::params_from_iter(params)).expect("query");
            rows.next().expect("row");
        }
        db.prepare_cached(sql)
            .expect("the statement prepares")
            .get_status(rusqlite::StatementStatus::RePrepare)
    }

    #[tokio::test]
    async fn no_hot_statement_is_parsed_again_when_its_parameters_change() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("p.db")).await.expect("open");
        let run =
            crate::engine::testkit::started_run(&store, noop_plan(3000, false, &[]), "CHG-PREP")
                .await;
        let cases = hot_statements(&run);
        // On a reader, and on the writer inside a transaction, where the engine asks them.
        let mut counts = store
            .read(|db| {
                Ok(cases
                    .iter()
                    .map(|(name, sql, a, b)| (*name, reprepared(db, sql, a, b)))
                    .collect::<Vec<_>>())
            })
            .await
            .expect("statements");
        let written = store
            .write(false, |w| {
                Ok(cases
                    .iter()
                    .map(|(name, sql, a, b)| (*name, reprepared(w.db, sql, a, b)))
                    .collect::<Vec<_>>())
            })
            .await
            .expect("statements");
        counts.extend(written.value);
        let again: Vec<String> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name} ({n} times)"))
            .collect();
        assert!(
            again.is_empty(),
            "parsed again when their parameters changed: {}",
            again.join(", ")
        );
        // The check can fail: without the stability guarantee, the order check is parsed again.
        let joined = store
            .write(false, |w| {
                let qpsg = rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG;
                w.db.set_db_config(qpsg, false)?;
                let (_, sql, a, b) = &cases[0]; // the order check
                let n = reprepared(w.db, &format!("{sql} -- without QPSG"), a, b);
                w.db.set_db_config(qpsg, true)?;
                Ok(n)
            })
            .await
            .expect("statement")
            .value;
        assert!(
            joined > 0,
            "without QPSG the order check was expected to be parsed again"
        );
    }

    /// The check can fail: a question asked of a run's steps by run alone walks them.
    #[tokio::test]
    async fn the_check_finds_a_plan_that_walks_a_run() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("p.db")).await.expect("open");
        let lines = store
            .read(|db| {
                Ok(plan(
                    db,
                    "SELECT id FROM steps WHERE run_id = ? ORDER BY seq",
                ))
            })
            .await
            .expect("plan");
        assert!(lines.iter().any(|l| walks(l)), "{lines:?}");
    }
}
