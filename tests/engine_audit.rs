//! The audit chain against tampering with the database file: flip a byte, delete a row, swap two
//! rows, truncate the log, rebuild it with fresh hashes. Each is detected; the first four at the
//! first bad event. And an audit event that cannot be written stops the change (fail closed).

use std::path::{Path, PathBuf};
use std::process::Command;

use lockstep::engine::audit::{self, AuditEvent, ChainProblem};
use lockstep::engine::machine::RunEvent;
use lockstep::engine::store::NewRun;
use lockstep::engine::testkit::{approver, noop_plan, operator};
use lockstep::engine::{EngineError, Store};
use sqlx::{Connection, Row, SqliteConnection};

/// A database with 20 events: a run created, submitted, approved, then 17 comments.
async fn recorded() -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let store = Store::open(&db).await.unwrap();
    let new = NewRun {
        change_ticket: "CHG-9".into(),
        window_start: None,
        window_end: None,
        plan: noop_plan(2, true, &[]),
    };
    let run = store.create_run(new, &operator("olga"), 1).await.unwrap();
    store
        .apply_run_event(
            &run.id,
            &RunEvent::Submit {
                actor: operator("olga"),
            },
            2,
        )
        .await
        .unwrap();
    let start = RunEvent::ApproveStart {
        actor: approver("carl"),
        comment: "go".into(),
    };
    store.apply_run_event(&run.id, &start, 3).await.unwrap();
    for i in 0..17 {
        store
            .comment(
                &run.id,
                None,
                &operator("olga"),
                &format!("note number {i}"),
                10 + i,
            )
            .await
            .unwrap();
    }
    assert_eq!(store.verify_audit().await.unwrap().problem, None);
    (dir, db, run.id)
}

/// A raw connection, as someone with the file would have, with the append-only triggers dropped.
async fn tamper(db: &Path) -> SqliteConnection {
    let url = format!("sqlite://{}", db.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("DROP TRIGGER events_no_update")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER events_no_delete")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

async fn first_bad_event(db: &Path) -> Option<(i64, String)> {
    let store = Store::open_read_only(db).await.unwrap();
    store
        .verify_audit()
        .await
        .unwrap()
        .problem
        .map(|p| (p.event_id, p.what))
}

#[tokio::test]
async fn the_application_cannot_update_or_delete_events() {
    let (_dir, db, _) = recorded().await;
    let url = format!("sqlite://{}", db.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    assert!(sqlx::query("UPDATE events SET actor = 'x' WHERE id = 3")
        .execute(&mut conn)
        .await
        .is_err());
    assert!(sqlx::query("DELETE FROM events WHERE id = 3")
        .execute(&mut conn)
        .await
        .is_err());
}

#[tokio::test]
async fn a_flipped_byte_is_detected_at_that_event() {
    let (_dir, db, _) = recorded().await;
    let mut conn = tamper(&db).await;
    let payload: String = sqlx::query("SELECT payload FROM events WHERE id = 7")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    let at = payload.find("note number").expect("comment text");
    let mut bytes = payload.into_bytes();
    bytes[at] ^= 0x01; // 'n' -> 'o'
    let flipped = String::from_utf8(bytes).unwrap();
    sqlx::query("UPDATE events SET payload = ? WHERE id = 7")
        .bind(flipped)
        .execute(&mut conn)
        .await
        .unwrap();
    let (id, what) = first_bad_event(&db).await.expect("detected");
    assert_eq!(id, 7, "{what}");
}

#[tokio::test]
async fn a_deleted_row_is_detected_where_it_was() {
    let (_dir, db, _) = recorded().await;
    let mut conn = tamper(&db).await;
    sqlx::query("DELETE FROM events WHERE id = 9")
        .execute(&mut conn)
        .await
        .unwrap();
    let (id, what) = first_bad_event(&db).await.expect("detected");
    assert_eq!(id, 9, "{what}");
}

#[tokio::test]
async fn two_swapped_rows_are_detected_at_the_first_of_them() {
    let (_dir, db, _) = recorded().await;
    let mut conn = tamper(&db).await;
    // Swap every column but the id between events 6 and 12 (same ids, exchanged content).
    for (a, b) in [(6, -1), (12, 6), (-1, 12)] {
        sqlx::query("UPDATE events SET id = ? WHERE id = ?")
            .bind(b)
            .bind(a)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let (id, what) = first_bad_event(&db).await.expect("detected");
    assert_eq!(id, 6, "{what}");
}

#[tokio::test]
async fn a_truncated_log_is_detected_at_the_first_missing_event() {
    let (_dir, db, _) = recorded().await;
    let mut conn = tamper(&db).await;
    sqlx::query("DELETE FROM events WHERE id >= 18")
        .execute(&mut conn)
        .await
        .unwrap();
    let (id, what) = first_bad_event(&db).await.expect("detected");
    assert_eq!(id, 18, "{what}");
    assert!(what.contains("truncated"), "{what}");
}

#[tokio::test]
async fn a_log_rebuilt_with_fresh_hashes_is_detected_by_the_head_file() {
    let (_dir, db, _) = recorded().await;
    let store = Store::open_read_only(&db).await.unwrap();
    let mut events: Vec<AuditEvent> = store.all_events().await.unwrap();
    drop(store);
    // Rewrite history from event 5 on, re-chaining every hash so the table agrees with itself.
    events[4].actor = "mallory".into();
    let mut prev = events[3].hash.clone();
    for e in events.iter_mut().skip(4) {
        e.prev_hash = prev.clone();
        e.hash = audit::event_hash(e);
        prev = e.hash.clone();
    }
    assert_eq!(
        audit::verify_chain(&events, None)
            .problem
            .map(|p| p.event_id),
        Some(1),
        "only the head file is left to catch it"
    );
    let mut conn = tamper(&db).await;
    sqlx::query("DELETE FROM events")
        .execute(&mut conn)
        .await
        .unwrap();
    for e in &events {
        sqlx::query("INSERT INTO events (id, run_id, step_id, actor, at, kind, payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(e.id).bind(&e.run_id).bind(&e.step_id).bind(&e.actor).bind(e.at).bind(&e.kind)
            .bind(audit::canonical_json(&e.payload)).bind(&e.prev_hash).bind(&e.hash)
            .execute(&mut conn).await.unwrap();
    }
    let (id, what) = first_bad_event(&db).await.expect("detected");
    assert_eq!(id, 20, "{what}");
    assert!(what.contains("rebuilt"), "{what}");
}

#[tokio::test]
async fn a_missing_head_file_is_reported() {
    let (_dir, db, _) = recorded().await;
    std::fs::remove_file(audit::head_path(&db)).unwrap();
    assert!(first_bad_event(&db).await.is_some());
}

#[tokio::test]
async fn the_cli_names_the_first_bad_event_and_exits_non_zero() {
    let (_dir, db, _) = recorded().await;
    let bin = env!("CARGO_BIN_EXE_lockstep");
    let ok = Command::new(bin)
        .args(["audit", "verify", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("audit log ok: 20 events"));
    let mut conn = tamper(&db).await;
    sqlx::query("UPDATE events SET actor = 'mallory' WHERE id = 4")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let bad = Command::new(bin)
        .args(["audit", "verify", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(out.contains("BROKEN at event 4"), "{out}");
}

#[tokio::test]
async fn when_the_audit_event_cannot_be_written_the_transition_does_not_happen() {
    let (_dir, db, run_id) = recorded().await;
    let url = format!("sqlite://{}", db.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("CREATE TRIGGER refuse_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let store = Store::open(&db).await.unwrap();
    let pause = RunEvent::Pause {
        actor: operator("olga"),
        reason: "check".into(),
    };
    let err = store
        .apply_run_event(&run_id, &pause, 100)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Audit(_)), "{err}");
    assert_eq!(store.run(&run_id).await.unwrap().status.as_str(), "running");
}

#[tokio::test]
async fn export_writes_every_event_as_jsonl_and_csv_and_a_backup_verifies_on_its_own() {
    let (dir, db, _) = recorded().await;
    let bin = env!("CARGO_BIN_EXE_lockstep");
    let jsonl = Command::new(bin)
        .args(["audit", "export", "--format", "jsonl", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(jsonl.status.success());
    let lines: Vec<AuditEvent> = String::from_utf8(jsonl.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 20);
    assert_eq!(
        audit::verify_chain(&lines, None)
            .problem
            .map(|p| p.event_id),
        Some(1),
        "exported events still chain (no head)"
    );
    assert!(lines.iter().all(|e| audit::event_hash(e) == e.hash));
    let csv = Command::new(bin)
        .args(["audit", "export", "--format", "csv", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert!(csv.starts_with("id,at_ms,at_utc,run_id,step_id,actor,kind,payload,prev_hash,hash\n"));
    assert_eq!(csv.lines().count(), 21);
    let bad = Command::new(bin)
        .args(["audit", "export", "--format", "xml", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--format"));

    let copy = dir.path().join("copy.db");
    let b = Command::new(bin)
        .arg("backup")
        .arg(&copy)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let v = Command::new(bin)
        .args(["audit", "verify", "--db"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    let again = Command::new(bin)
        .arg("backup")
        .arg(&copy)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(!again.status.success(), "a backup never overwrites");
}

// ---- The signed chain (issue #14): what someone holding the database but not the key can try.

/// Appends an event after the newest one, correctly chained, as someone with only the database
/// file could: `sig` is written as given (`None`: unsigned).
async fn append_forged(db: &Path, sig: Option<&str>) -> i64 {
    let store = Store::open_read_only(db).await.unwrap();
    let last = store.all_events().await.unwrap().pop().unwrap();
    drop(store);
    let mut e = last.clone();
    e.id = last.id + 1;
    e.actor = "mallory".into();
    e.kind = "comment".into();
    e.payload = serde_json::json!({"text": "all fine here"});
    e.prev_hash = last.hash.clone();
    e.hash = audit::event_hash(&e);
    insert(db, &e, sig).await;
    e.id
}

async fn insert(db: &Path, e: &AuditEvent, sig: Option<&str>) {
    let url = format!("sqlite://{}", db.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("INSERT INTO events (id, run_id, step_id, actor, at, kind, payload, prev_hash, hash, sig) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        .bind(e.id).bind(&e.run_id).bind(&e.step_id).bind(&e.actor).bind(e.at).bind(&e.kind)
        .bind(audit::canonical_json(&e.payload)).bind(&e.prev_hash).bind(&e.hash).bind(sig)
        .execute(&mut conn).await.unwrap();
}

async fn problems(db: &Path) -> Vec<ChainProblem> {
    Store::open_read_only(db)
        .await
        .unwrap()
        .verify_audit()
        .await
        .unwrap()
        .problems
}

fn names(problems: &[ChainProblem], id: i64, kind: &str) -> bool {
    problems.iter().any(|p| p.event_id == id && p.kind == kind)
}

#[tokio::test]
async fn an_appended_event_correctly_chained_but_unsigned_is_named() {
    let (_dir, db, _) = recorded().await;
    let id = append_forged(&db, None).await;
    assert_eq!(id, 21);
    let found = problems(&db).await;
    assert!(names(&found, 21, "unsigned"), "{found:?}");
    assert_eq!(found[0].event_id, 21, "{found:?}");
}

#[tokio::test]
async fn an_appended_event_with_a_made_up_or_copied_signature_is_named() {
    let (_dir, db, _) = recorded().await;
    let store = Store::open_read_only(&db).await.unwrap();
    let copied = store.all_events().await.unwrap()[3].sig.clone().unwrap();
    drop(store);
    append_forged(&db, Some(&copied)).await;
    let found = problems(&db).await;
    assert!(names(&found, 21, "signature"), "{found:?}");
}

#[tokio::test]
async fn truncating_the_newest_events_and_deleting_the_head_is_named_and_blocks_writes() {
    let (_dir, db, run_id) = recorded().await;
    let mut conn = tamper(&db).await;
    sqlx::query("DELETE FROM events WHERE id >= 18")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    std::fs::remove_file(audit::head_path(&db)).unwrap();
    let found = problems(&db).await;
    assert!(names(&found, 17, "head_missing"), "{found:?}");
    // The write that used to hide the truncation (a new head for the shortened log) is refused.
    let store = Store::open(&db).await.unwrap();
    let report = store.enforce_chain().await.unwrap();
    assert!(report.problem.is_some());
    let err = store
        .comment(&run_id, None, &operator("olga"), "hide it", 99)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::ChainBroken(_)), "{err}");
    assert!(err.to_string().contains("head_missing"), "{err}");
    assert!(!audit::head_path(&db).exists(), "nothing was written");
    let found = problems(&db).await;
    assert!(names(&found, 17, "head_missing"), "{found:?}");
}

#[tokio::test]
async fn a_forged_unsigned_head_for_a_truncated_log_is_named() {
    let (_dir, db, _) = recorded().await;
    let store = Store::open_read_only(&db).await.unwrap();
    let events = store.all_events().await.unwrap();
    drop(store);
    let mut conn = tamper(&db).await;
    sqlx::query("DELETE FROM events WHERE id >= 18")
        .execute(&mut conn)
        .await
        .unwrap();
    let head = audit::ChainHead {
        id: 17,
        hash: events[16].hash.clone(),
        sig: None,
    };
    std::fs::remove_file(audit::head_path(&db)).unwrap();
    audit::write_head(&audit::head_path(&db), &head).unwrap();
    let found = problems(&db).await;
    assert!(names(&found, 17, "head_unsigned"), "{found:?}");
    // An event's own signature passed off as the head's is no head signature.
    let head = audit::ChainHead {
        sig: events[16].sig.clone(),
        ..head
    };
    std::fs::remove_file(audit::head_path(&db)).unwrap();
    audit::write_head(&audit::head_path(&db), &head).unwrap();
    let found = problems(&db).await;
    assert!(names(&found, 17, "head_signature"), "{found:?}");
}

#[tokio::test]
async fn a_whole_chain_rebuilt_with_fresh_hashes_is_named() {
    let (_dir, db, _) = recorded().await;
    let store = Store::open_read_only(&db).await.unwrap();
    let mut events = store.all_events().await.unwrap();
    drop(store);
    let mut prev = audit::GENESIS_HASH.to_string();
    for e in events.iter_mut() {
        e.actor = "mallory".into();
        e.prev_hash = prev.clone();
        e.hash = audit::event_hash(e);
        prev = e.hash.clone();
    }
    let mut conn = tamper(&db).await;
    sqlx::query("DELETE FROM events")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    for e in &events {
        insert(&db, e, None).await;
    }
    let found = problems(&db).await;
    assert!(names(&found, 20, "rebuilt"), "{found:?}");
    std::fs::remove_file(audit::head_path(&db)).unwrap();
    let found = problems(&db).await;
    assert!(names(&found, 20, "head_missing"), "{found:?}");
}

#[tokio::test]
async fn a_dropped_guard_trigger_is_named_and_blocks_writes() {
    let (_dir, db, run_id) = recorded().await;
    let url = format!("sqlite://{}", db.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("DROP TRIGGER events_no_delete")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let found = problems(&db).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, "guard_dropped");
    assert!(found[0].what.contains("events_no_delete"), "{found:?}");
    let store = Store::open(&db).await.unwrap();
    store.enforce_chain().await.unwrap();
    let err = store
        .comment(&run_id, None, &operator("olga"), "x", 99)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::ChainBroken(_)), "{err}");
    // The acknowledgement puts the guard back and lets writes through again.
    store
        .acknowledge_break("ada", "trigger dropped during maintenance; restored", 100)
        .await
        .unwrap();
    store
        .comment(&run_id, None, &operator("olga"), "x", 101)
        .await
        .unwrap();
    let report = store.verify_audit().await.unwrap();
    assert_eq!(report.problem, None, "{:?}", report.problems);
    assert_eq!(report.acknowledged.len(), 1);
    assert_eq!(report.acknowledged[0].problem.kind, "guard_dropped");
}

#[tokio::test]
async fn an_event_appended_behind_a_running_store_is_caught_before_the_next_write() {
    let (_dir, db, run_id) = recorded().await;
    let store = Store::open(&db).await.unwrap();
    assert_eq!(store.enforce_chain().await.unwrap().problem, None);
    store
        .comment(&run_id, None, &operator("olga"), "fine", 50)
        .await
        .unwrap();
    let forged = append_forged(&db, None).await;
    let err = store
        .comment(&run_id, None, &operator("olga"), "after", 51)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("event {forged} [unsigned]")),
        "{err}"
    );
    assert!(store.chain_break().is_some());
}

#[tokio::test]
async fn an_acknowledged_break_starts_a_new_signed_segment_and_stays_listed() {
    let (_dir, db, run_id) = recorded().await;
    let forged = append_forged(&db, None).await;
    let store = Store::open(&db).await.unwrap();
    store.enforce_chain().await.unwrap();
    let refused = store.acknowledge_break("ada", "  ", 60).await.unwrap_err();
    assert!(refused.to_string().contains("reason"), "{refused}");
    let ack = store
        .acknowledge_break("ada", "mallory's note removed from trust; investigated", 60)
        .await
        .unwrap();
    assert_eq!(ack.id, forged + 1);
    assert!(ack.sig.is_some());
    store
        .comment(&run_id, None, &operator("olga"), "back to work", 61)
        .await
        .unwrap();
    let report = store.verify_audit().await.unwrap();
    assert_eq!(report.problem, None, "{:?}", report.problems);
    assert_eq!(report.acknowledged.len(), 1);
    let a = &report.acknowledged[0];
    assert_eq!(
        (a.problem.event_id, a.problem.kind.as_str()),
        (forged, "unsigned")
    );
    assert_eq!((a.ack_event, a.by.as_str()), (ack.id, "ada"));
    let again = store
        .acknowledge_break("ada", "again", 62)
        .await
        .unwrap_err();
    assert!(again.to_string().contains("no break"), "{again}");
    // The CLI shows the acknowledged break and exits 0.
    drop(store);
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["audit", "verify", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("acknowledged break: event {forged} [unsigned]")),
        "{text}"
    );
}

#[tokio::test]
async fn the_cli_names_each_kind_of_tampering() {
    let (_dir, db, _) = recorded().await;
    append_forged(&db, None).await;
    let url = format!("sqlite://{}", db.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("DROP TRIGGER events_no_update")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["audit", "verify", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("BROKEN at event 21"), "{text}");
    assert!(text.contains("event 21 [unsigned]"), "{text}");
    assert!(
        text.contains("[guard_dropped]") && text.contains("events_no_update"),
        "{text}"
    );
    // Without the key nothing can be checked, and that is said plainly.
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["audit", "verify", "--key", "/nonexistent/k", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no audit signing key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn checkpoints_held_elsewhere_catch_a_log_rewritten_with_the_key() {
    let (dir, db, _) = recorded().await;
    let store = Store::open(&db).await.unwrap();
    let outside = dir.path().join("elsewhere.jsonl");
    assert_eq!(
        store.write_checkpoint(&outside, None, 1).await.unwrap(),
        Some(20)
    );
    assert_eq!(
        store.write_checkpoint(&outside, Some(20), 2).await.unwrap(),
        None,
        "unchanged head"
    );
    drop(store);
    // Someone holding the whole folder, key included, rewrites event 12 on and re-signs all.
    let key_file = audit::signing::default_key_path(&db);
    let (key, created) = audit::SigningKey::load_or_create(&key_file).unwrap();
    assert!(!created);
    let store = Store::open_read_only(&db).await.unwrap();
    let mut events = store.all_events().await.unwrap();
    drop(store);
    let mut prev = events[10].hash.clone();
    for e in events.iter_mut().skip(11) {
        e.actor = "mallory".into();
        e.prev_hash = prev.clone();
        e.hash = audit::event_hash(e);
        e.sig = Some(key.sign_event(&e.hash));
        prev = e.hash.clone();
    }
    let mut conn = tamper(&db).await;
    sqlx::query("DELETE FROM events WHERE id >= 12")
        .execute(&mut conn)
        .await
        .unwrap();
    for (name, on) in audit::verify::GUARDS {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE TRIGGER {name} {on} BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END")))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    drop(conn);
    for e in events.iter().skip(11) {
        insert(&db, e, e.sig.as_deref()).await;
    }
    let last = events.last().unwrap();
    let head = audit::ChainHead {
        id: last.id,
        hash: last.hash.clone(),
        sig: Some(key.sign_head(last.id, &last.hash)),
    };
    std::fs::remove_file(audit::head_path(&db)).unwrap();
    audit::write_head(&audit::head_path(&db), &head).unwrap();
    assert_eq!(problems(&db).await, vec![], "the folder alone cannot tell");
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["audit", "verify", "--checkpoints"])
        .arg(&outside)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("event 20 [checkpoint]") && text.contains("rewritten"),
        "{text}"
    );
}

#[tokio::test]
async fn the_key_head_and_database_are_private_files() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, db, _) = recorded().await;
    for f in [
        db.clone(),
        audit::head_path(&db),
        audit::signing::default_key_path(&db),
    ] {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
}

#[tokio::test]
async fn a_bundle_export_carries_signatures_key_head_and_checkpoints_and_verifies_against_the_key_held(
) {
    let (dir, db, _) = recorded().await;
    let bin = env!("CARGO_BIN_EXE_lockstep");
    // One checkpoint sent out, where `serve` would write it (beside the database).
    let store = Store::open(&db).await.unwrap();
    let checkpoints = dir.path().join("audit-checkpoints.jsonl");
    assert_eq!(
        store
            .write_checkpoint(&checkpoints, None, 50)
            .await
            .unwrap(),
        Some(20)
    );
    drop(store);
    let file = dir.path().join("bundle.json");
    let out = Command::new(bin)
        .args(["audit", "export", "--format", "bundle", "--db"])
        .arg(&db)
        .arg("--out")
        .arg(&file)
        .env_remove("LOCKSTEP_AUDIT_CHECKPOINTS")
        .env_remove("LOCKSTEP_AUDIT_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle =
        lockstep::engine::audit_bundle::Bundle::parse(&std::fs::read_to_string(&file).unwrap())
            .unwrap();
    let key = bundle.signing_key.clone().expect("the public key");
    assert_eq!(bundle.events.len(), 20);
    assert!(bundle
        .events
        .iter()
        .all(|e| e.sig.as_deref().is_some_and(|s| s.contains(&key.key_id))));
    assert!(bundle.head.as_ref().is_some_and(|h| h.sig.is_some()));
    assert_eq!(bundle.checkpoints.len(), 1);

    let verify = |key: &Path| {
        let out = Command::new(bin)
            .args(["audit", "verify", "--export"])
            .arg(&file)
            .arg("--key")
            .arg(key)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let public = dir.path().join("audit-signing.key.pub");
    let (ok, said) = verify(&public);
    assert!(ok, "{said}");
    assert!(
        said.contains(&format!(
            "all 20 signatures valid, signed by key {} (the key you hold); head signed; 1 checkpoints agree",
            key.key_id
        )),
        "{said}"
    );
    // Another server's key: the export is not signed by the key the auditor holds.
    let other = dir.path().join("other.key");
    let (other_key, _) = audit::SigningKey::load_or_create(&other).unwrap();
    let (ok, said) = verify(&dir.path().join("other.key.pub"));
    assert!(
        !ok && said.contains(&key.key_id) && said.contains(&other_key.verifying().key_id),
        "{said}"
    );
}
