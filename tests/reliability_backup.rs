//! Backup and restore, through the real `lockstep` binary:
//! - an online backup taken while the engine keeps writing restores into a fresh data folder as
//!   exactly the state at the backup point (the events up to the backup's head, and every run and
//!   step as those events left it), and `lockstep audit verify` passes on it;
//! - a truncated, corrupted, tampered or head-less backup is refused with a message saying what
//!   is wrong, and the database it would have replaced is left byte for byte as it was;
//! - restore never replaces a database without `--force`, nor one another process has open; a
//!   damaged one (not readable as a database) it replaces with `--force`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lockstep::engine::testkit::noop_plan;
use lockstep::engine::Store;

const BIN: &str = env!("CARGO_BIN_EXE_lockstep");

fn lockstep(args: &[&str], paths: &[&Path]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("RUST_LOG", "warn");
    for p in paths {
        cmd.arg(p);
    }
    cmd.output().expect("run lockstep")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write_plan(dir: &Path, steps: usize) -> PathBuf {
    let plan = noop_plan(steps, false, &["h0", "h1", "h2"]);
    let path = dir.join("plan.json");
    std::fs::write(&path, serde_json::to_string(&plan).unwrap()).unwrap();
    path
}

/// `lockstep engine run-local`: drives the plan on the journaling executor, writing as it goes.
fn run_local(db: &Path, plan: &Path, effect_ms: u64) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["engine", "run-local", "--per-run", "2", "--effect-ms"])
        .arg(effect_ms.to_string())
        .arg("--db")
        .arg(db)
        .arg("--plan-json")
        .arg(plan)
        .arg("--journal")
        .arg(db.with_extension("journal"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A finished database made by the real engine.
fn finished_database(dir: &Path, steps: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let plan = write_plan(dir, steps);
    let db = dir.join("data").join("lockstep.db");
    let out = run_local(&db, &plan, 0).output().unwrap();
    assert!(out.status.success(), "run-local: {}", text(&out));
    db
}

/// Events so far in a database that may still be being created (no tables yet: none).
async fn events_so_far(db: &Path) -> usize {
    if !db.exists() {
        return 0;
    }
    let store = Store::open_read_only(db).await.unwrap();
    let n = store.all_events().await.map_or(0, |e| e.len());
    store.close().await;
    n
}

async fn event_count(db: &Path) -> usize {
    let store = Store::open_read_only(db).await.unwrap();
    let n = store.all_events().await.unwrap().len();
    store.close().await;
    n
}

/// The files that hold a database's content, and their bytes (`-shm` is only an index that
/// any reader may rebuild, so it is left out).
fn snapshot(db: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    ["", "-wal", ".audit-head", ".restoring"]
        .iter()
        .map(|suffix| {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            let p = PathBuf::from(p);
            // A reader may leave an empty write-ahead log behind: the same content as none.
            let bytes = std::fs::read(&p)
                .ok()
                .filter(|b| !b.is_empty() || *suffix != "-wal");
            (p, bytes)
        })
        .collect()
}

fn head_file(db: &Path) -> PathBuf {
    lockstep::engine::audit::head_path(db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_restores_the_state_at_the_backup_point_while_writes_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write_plan(dir.path(), 40);
    let source = dir.path().join("live").join("lockstep.db");
    let mut engine = run_local(&source, &plan, 60).spawn().unwrap();

    // Back up in the middle of the run, while steps are being claimed and finished.
    let deadline = Instant::now() + Duration::from_secs(60);
    while events_so_far(&source).await < 30 {
        assert!(Instant::now() < deadline, "the run did not get going");
        assert!(
            engine.try_wait().unwrap().is_none(),
            "the run ended before the backup"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let backup = dir.path().join("backups").join("copy.db");
    let out = lockstep(&["backup", "--db"], &[&source, &backup]);
    assert!(out.status.success(), "backup: {}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let head_id: i64 = printed
        .split("audit head #")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("backup printed no head: {printed}"));
    let finished = engine.wait_with_output().unwrap();
    assert!(finished.status.success(), "run-local: {}", text(&finished));

    let live = Store::open_read_only(&source).await.unwrap();
    let all_events = live.all_events().await.unwrap();
    assert!(
        all_events.len() as i64 > head_id,
        "writes went on after the backup ({} events, backup at #{head_id})",
        all_events.len()
    );

    // Restore into a data folder that does not exist yet.
    let restored = dir.path().join("fresh").join("data").join("lockstep.db");
    // The signing key never travels with a backup: the restore is given it (issue #14).
    let key = source.parent().unwrap().join("audit-signing.key");
    let out = lockstep(
        &["restore", "--key", key.to_str().unwrap(), "--db"],
        &[&restored, &backup],
    );
    assert!(out.status.success(), "restore: {}", text(&out));
    let out = lockstep(&["audit", "verify", "--db"], &[&restored]);
    assert!(out.status.success(), "audit verify: {}", text(&out));
    assert!(
        text(&out).contains(&format!("head #{head_id} ")),
        "{}",
        text(&out)
    );

    // The log is the live log up to the backup point, event for event.
    let store = Store::open(&restored).await.unwrap();
    store.integrity_check().await.unwrap();
    let events = store.all_events().await.unwrap();
    assert_eq!(events.len() as i64, head_id);
    assert_eq!(events[..], all_events[..head_id as usize]);

    // Runs and steps are what those events left, not what the live database holds now.
    let mut last_to: HashMap<(Option<String>, Option<String>), (serde_json::Value, u64)> =
        HashMap::new();
    for e in &events {
        if let Some(to) = e.payload.get("to") {
            let attempt = e.payload["attempt"].as_u64().unwrap_or(0);
            last_to.insert((e.run_id.clone(), e.step_id.clone()), (to.clone(), attempt));
        }
    }
    let runs = store.runs().await.unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    let (run_to, _) = &last_to[&(Some(run.id.clone()), None)];
    assert_eq!(&serde_json::to_value(run.status).unwrap(), run_to);
    let steps = store.steps(&run.id).await.unwrap();
    assert_eq!(steps.len(), 40);
    let live_steps = live.steps(&run.id).await.unwrap();
    let mut behind_live = 0;
    for (s, now) in steps.iter().zip(&live_steps) {
        let expected = last_to
            .get(&(Some(run.id.clone()), Some(s.id.clone())))
            .map(|(to, attempt)| (to.clone(), *attempt))
            .unwrap_or((serde_json::json!("pending"), 0));
        assert_eq!(
            (
                serde_json::to_value(s.status).unwrap(),
                u64::from(s.attempt)
            ),
            expected,
            "step {} in the restored database",
            s.id
        );
        if s.status != now.status {
            behind_live += 1;
        }
    }
    assert!(
        behind_live > 0,
        "the backup was taken mid-run, so some steps moved on in the live database since"
    );

    // The restored database carries on: a new transition extends the same chain.
    let comment = store
        .comment(
            &run.id,
            None,
            &lockstep::engine::testkit::operator("pat"),
            "restored from backup",
            0,
        )
        .await
        .unwrap();
    assert_eq!(comment.id, head_id + 1);
    drop(store);
    let out = lockstep(&["audit", "verify", "--db"], &[&restored]);
    assert!(
        out.status.success(),
        "audit verify after a write: {}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_corrupted_or_tampered_backup_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let source = finished_database(&dir.path().join("source"), 12);
    // The signing key never travels with a backup: restores are given it (issue #14).
    let source_key = source
        .parent()
        .unwrap()
        .join("audit-signing.key")
        .to_string_lossy()
        .into_owned();
    let backup = dir.path().join("copy.db");
    let out = lockstep(&["backup", "--db"], &[&source, &backup]);
    assert!(out.status.success(), "backup: {}", text(&out));
    let good = std::fs::read(&backup).unwrap();
    let good_head = std::fs::read(head_file(&backup)).unwrap();
    // The database a restore would replace: another, different one.
    let target = finished_database(&dir.path().join("target"), 3);
    let before = snapshot(&target);

    let bad = |name: &str, bytes: &[u8], with_head: bool| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        if with_head {
            std::fs::write(head_file(&p), &good_head).unwrap();
        }
        p
    };
    let page = 4096;
    let mut garbled = good.clone();
    for b in &mut garbled[page..3 * page] {
        *b ^= 0xa5;
    }
    let tampered = bad("tampered.db", &good, true);
    tamper_with_event_3(&tampered).await;
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "truncated",
            bad("truncated.db", &good[..good.len() / 2], true),
            "",
        ),
        ("garbled", bad("garbled.db", &garbled, true), ""),
        ("tampered", tampered, "audit log is broken at event 3"),
        (
            "without its head file",
            bad("headless.db", &good, false),
            "audit head file",
        ),
        ("empty", bad("empty.db", &[], true), ""),
        ("missing", dir.path().join("nowhere.db"), "does not exist"),
    ];
    for (what, file, says) in cases {
        let out = lockstep(
            &["restore", "--force", "--key", &source_key, "--db"],
            &[&target, &file],
        );
        let said = text(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "a {what} backup was restored: {said}"
        );
        assert!(
            said.contains("cannot be restored; nothing was changed") && said.contains(says),
            "a {what} backup: {said}"
        );
        let after = snapshot(&target);
        for ((path, was), (_, now)) in before.iter().zip(&after) {
            assert!(
                was == now,
                "a {what} backup changed {} ({:?} bytes, was {:?})",
                path.display(),
                now.as_ref().map(Vec::len),
                was.as_ref().map(Vec::len)
            );
        }
        let verify = lockstep(&["audit", "verify", "--db"], &[&target]);
        assert!(verify.status.success(), "{}", text(&verify));
    }
    // The good copy still restores over it, with --force.
    let out = lockstep(
        &["restore", "--force", "--key", &source_key, "--db"],
        &[&target, &backup],
    );
    assert!(out.status.success(), "restore: {}", text(&out));
    let verify = lockstep(&["audit", "verify", "--db"], &[&target]);
    assert!(verify.status.success(), "{}", text(&verify));
    assert_eq!(event_count(&target).await, event_count(&source).await);
}

/// Rewrites event 3's payload in place (keeping its stored hash), the append-only trigger
/// dropped first: what someone editing a copy of the file would do.
async fn tamper_with_event_3(db: &Path) {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .connect()
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER events_no_update")
        .execute(&mut conn)
        .await
        .unwrap();
    let done =
        sqlx::query("UPDATE events SET payload = json_set(payload, '$.attempt', 7) WHERE id = 3")
            .execute(&mut conn)
            .await
            .unwrap();
    assert_eq!(done.rows_affected(), 1);
    sqlx::Connection::close(conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_replaces_a_database_only_with_force_never_one_in_use_and_a_damaged_one_too() {
    let dir = tempfile::tempdir().unwrap();
    let source = finished_database(&dir.path().join("source"), 6);
    // The signing key never travels with a backup: restores are given it (issue #14).
    let source_key = source
        .parent()
        .unwrap()
        .join("audit-signing.key")
        .to_string_lossy()
        .into_owned();
    let backup = dir.path().join("copy.db");
    let out = lockstep(&["backup", "--db"], &[&source, &backup]);
    assert!(out.status.success(), "backup: {}", text(&out));
    let target = finished_database(&dir.path().join("target"), 2);

    let before = snapshot(&target);
    let out = lockstep(
        &["restore", "--key", &source_key, "--db"],
        &[&target, &backup],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("already exists; add --force"),
        "{}",
        text(&out)
    );
    assert!(
        snapshot(&target) == before,
        "refused without --force, yet changed"
    );

    // An orchestrator is driving a run in it (as `lockstep serve` would).
    let busy_dir = dir.path().join("busy");
    std::fs::create_dir_all(&busy_dir).unwrap();
    let busy_plan = write_plan(&busy_dir, 30);
    let busy = busy_dir.join("lockstep.db");
    let mut engine = run_local(&busy, &busy_plan, 100).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while events_so_far(&busy).await < 5 {
        assert!(Instant::now() < deadline, "the run did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = lockstep(
        &["restore", "--force", "--key", &source_key, "--db"],
        &[&busy, &backup],
    );
    assert!(
        engine.try_wait().unwrap().is_none(),
        "the run ended before the restore was tried; slow it down"
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("is in use by another process"),
        "{}",
        text(&out)
    );
    // Nothing was replaced under the engine: it finishes its own run, whose log verifies.
    let finished = engine.wait_with_output().unwrap();
    assert!(finished.status.success(), "run-local: {}", text(&finished));
    let store = Store::open_read_only(&busy).await.unwrap();
    let steps = store
        .steps(&store.runs().await.unwrap()[0].id)
        .await
        .unwrap();
    assert_eq!(steps.len(), 30, "the busy database holds its own run");
    let verify = lockstep(&["audit", "verify", "--db"], &[&busy]);
    assert!(verify.status.success(), "{}", text(&verify));

    // A damaged database (what a restore is often for) is replaced, with --force.
    let damaged = dir.path().join("damaged").join("lockstep.db");
    std::fs::create_dir_all(damaged.parent().unwrap()).unwrap();
    std::fs::write(&damaged, vec![0x5a; 64 * 1024]).unwrap();
    let out = lockstep(
        &["restore", "--force", "--key", &source_key, "--db"],
        &[&damaged, &backup],
    );
    assert!(
        out.status.success(),
        "restore over a damaged file: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("is not a readable database"),
        "{}",
        text(&out)
    );
    let verify = lockstep(&["audit", "verify", "--db"], &[&damaged]);
    assert!(verify.status.success(), "{}", text(&verify));

    // The backup itself is never the target.
    let out = lockstep(
        &["restore", "--force", "--key", &source_key, "--db"],
        &[&backup, &backup],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("is the database itself"),
        "{}",
        text(&out)
    );
}
