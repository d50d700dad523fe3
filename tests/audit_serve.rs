//! A real `lockstep serve` process on a broken audit chain (issue #14): it starts, says so on
//! every page, refuses every state change through the API with the break named, and an admin's
//! acknowledgement (API) starts a new signed segment after which changes go through again, the
//! break staying listed by `lockstep audit verify`.

mod serve_process;

use std::path::Path;
use std::process::Command;

use lockstep::engine::audit::{self, AuditEvent};
use lockstep::engine::store::NewRun;
use lockstep::engine::testkit::{noop_plan, operator};
use lockstep::engine::Store;
use sqlx::{Connection, SqliteConnection};

fn lockstep(args: &[&str], db: &Path, stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .arg("--db")
        .arg(db)
        .env_remove("LOCKSTEP_AUDIT_KEY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "lockstep {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A data folder with a run and an admin's API token.
async fn prepared() -> (tempfile::TempDir, std::path::PathBuf, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lockstep.db");
    let store = Store::open(&db).await.unwrap();
    let new = NewRun {
        change_ticket: "CHG-14".into(),
        window_start: None,
        window_end: None,
        plan: noop_plan(2, false, &[]),
    };
    let run = store.create_run(new, &operator("olga"), 1).await.unwrap();
    store
        .comment(&run.id, None, &operator("olga"), "ready", 2)
        .await
        .unwrap();
    drop(store);
    lockstep(
        &["user", "add", "ada", "--role", "admin", "--password-stdin"],
        &db,
        Some("a long enough passphrase 42\n"),
    );
    let token = lockstep(&["user", "token", "ada", "--label", "test"], &db, None)
        .trim()
        .to_string();
    (dir, db, run.id, token)
}

async fn append_unsigned(db: &Path) -> i64 {
    let store = Store::open_read_only(db).await.unwrap();
    let last: AuditEvent = store.all_events().await.unwrap().pop().unwrap();
    drop(store);
    let mut e = last.clone();
    e.id += 1;
    e.actor = "mallory".into();
    e.prev_hash = last.hash.clone();
    e.hash = audit::event_hash(&e);
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("INSERT INTO events (id, run_id, step_id, actor, at, kind, payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
        .bind(e.id).bind(&e.run_id).bind(&e.step_id).bind(&e.actor).bind(e.at).bind(&e.kind)
        .bind(audit::canonical_json(&e.payload)).bind(&e.prev_hash).bind(&e.hash)
        .execute(&mut conn).await.unwrap();
    e.id
}

async fn comment(s: &serve_process::Serve, token: &str, run: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/runs/{run}/comments", s.base))
        .bearer_auth(token)
        .json(&serde_json::json!({"text": "still here"}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn verify(db: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["audit", "verify", "--db"])
        .arg(db)
        .env_remove("LOCKSTEP_AUDIT_KEY")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn serve_on_an_unsigned_appended_event_refuses_changes_until_an_admin_acknowledges() {
    let (dir, db, run, token) = prepared().await;
    let forged = append_unsigned(&db).await;
    let dir_path = dir.path().to_path_buf();
    let s = serve_process::start(serve_process::command(&dir_path), dir);
    let (status, body) = comment(&s, &token, &run).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("audit chain is broken")
            && body.contains(&format!("event {forged} [unsigned]")),
        "{body}"
    );
    let page = reqwest::Client::new()
        .get(format!("{}/runs", s.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"chain-broken\""), "{page}");
    assert!(
        page.contains("Acknowledge the break"),
        "an admin sees the form: {page}"
    );
    let (ok, text) = verify(&db);
    assert!(
        !ok && text.contains(&format!("event {forged} [unsigned]")),
        "{text}"
    );

    let ack = reqwest::Client::new()
        .post(format!("{}/api/v1/audit/acknowledge", s.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"reason": "test tampering, investigated"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ack.status(), 200, "{}", ack.text().await.unwrap());
    let (status, body) = comment(&s, &token, &run).await;
    assert_eq!(status, 201, "{body}");
    let page = reqwest::Client::new()
        .get(format!("{}/runs", s.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("chain-broken"), "banner gone");
    let (ok, text) = verify(&db);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("acknowledged break: event {forged} [unsigned]")),
        "{text}"
    );
}

#[tokio::test]
async fn serve_on_a_truncated_log_without_its_head_does_not_hide_the_truncation() {
    let (dir, db, run, token) = prepared().await;
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    for sql in [
        "DROP TRIGGER events_no_delete",
        "DELETE FROM events WHERE id = (SELECT MAX(id) FROM events)",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    drop(conn);
    std::fs::remove_file(audit::head_path(&db)).unwrap();
    let dir_path = dir.path().to_path_buf();
    let s = serve_process::start(serve_process::command(&dir_path), dir);
    let (status, body) = comment(&s, &token, &run).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("head_missing") && body.contains("guard_dropped"),
        "{body}"
    );
    let (ok, text) = verify(&db);
    assert!(!ok, "{text}");
    assert!(
        text.contains("[head_missing]") && text.contains("events_no_delete"),
        "{text}"
    );
    drop(s);
}
