//! The audit chain against tampering with the database file: flip a byte, delete a row, swap two
//! rows, truncate the log, rebuild it with fresh hashes. Each is detected; the first four at the
//! first bad event. And an audit event that cannot be written stops the change (fail closed).

use std::path::{Path, PathBuf};
use std::process::Command;

use lockstep::engine::audit::{self, AuditEvent};
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
