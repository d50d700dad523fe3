//! The records of a finished clustered `upgrade-8.11` run, through separate processes (see
//! `e2e_common`): the change record and the Audit page fit a 1400 px window with no raw JSON,
//! Chromium prints the change record to PDF (`--print-to-pdf`) and its text (`pdftotext`) holds
//! the summary, every approval with its whole comment and every manual task with who did it;
//! and the Audit page's verifiable export passes `lockstep audit verify --export` as exported
//! (naming the server's key fingerprint, and with `--key` its public key file) and fails, naming
//! the event, once one event is edited, removed or appended, or edited and re-chained without
//! the signing key.

mod e2e_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e_common::{start_site, summary, Site};
use serde_json::Value;

/// Fetches a dashboard page as `token` (pages accept API tokens like the API does).
async fn page(site: &Site, token: &str, path: &str) -> String {
    let r = site
        .http
        .get(format!("{}{path}", site.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.text().await.unwrap()
}

/// Saves `html` as a file Chromium can open offline: the stylesheets and scripts under
/// `/static/` point at the repository's files, and a last script writes the page's width
/// (`document.documentElement.scrollWidth`) into `body[data-width]` for `--dump-dom`.
fn offline_copy(html: &str, dir: &Path, name: &str) -> PathBuf {
    let statics = Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
    let html = html.replace("\"/static/", &format!("\"file://{}/", statics.display()));
    let html = html.replace(
        "</body>",
        "<script>document.body.setAttribute('data-width', document.documentElement.scrollWidth)</script></body>",
    );
    let file = dir.join(name);
    std::fs::write(&file, html).unwrap();
    file
}

fn chromium(args: &[String]) -> std::process::Output {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--allow-file-access-from-files",
            "--virtual-time-budget=3000",
        ])
        .args(args)
        .output()
        .expect("chromium runs (Debian package `chromium`; scripts/test installs it)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The page's width in a `width`-px window, as Chromium lays it out.
fn laid_out_width(file: &Path, width: u32) -> u32 {
    let out = chromium(&[
        format!("--window-size={width},1000"),
        "--dump-dom".into(),
        format!("file://{}", file.display()),
    ]);
    let dom = String::from_utf8_lossy(&out.stdout);
    let at = dom
        .find("data-width=\"")
        .unwrap_or_else(|| panic!("the page's width was not written: {dom:.2000}"));
    dom[at + 12..]
        .split('"')
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("unreadable width in {dom:.2000}"))
}

/// Chromium prints `file` to PDF; `pdftotext` gives its text with all whitespace as one space.
fn printed_text(file: &Path, dir: &Path) -> String {
    let pdf = dir.join(format!(
        "{}.pdf",
        file.file_stem().unwrap().to_string_lossy()
    ));
    chromium(&[
        format!("--print-to-pdf={}", pdf.display()),
        "--no-pdf-header-footer".into(),
        format!("file://{}", file.display()),
    ]);
    let out = Command::new("pdftotext")
        .arg(&pdf)
        .arg("-")
        .output()
        .expect("pdftotext runs (Debian package `poppler-utils`; scripts/test installs it)");
    assert!(
        out.status.success(),
        "pdftotext failed on {}",
        pdf.display()
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Screenshots of `file` at 1400 and 400 px into `test-artifacts/` (the README's pictures in
/// `docs/` are copies of these).
fn screenshots(file: &Path, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    for (w, h) in [(1400, 2200), (400, 2200)] {
        chromium(&[
            format!("--window-size={w},{h}"),
            "--hide-scrollbars".into(),
            format!(
                "--screenshot={}",
                dir.join(format!("{name}-{w}.png")).display()
            ),
            format!("file://{}", file.display()),
        ]);
    }
}

fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What a reader would take for raw JSON: an object or a quoted key.
fn looks_like_json(text: &str) -> Option<&str> {
    ["{\"", "\":", "\\\""]
        .into_iter()
        .find(|pattern| text.contains(pattern))
}

fn verify_export(file: &Path) -> (bool, String) {
    verify_export_with(file, &[])
}

/// `lockstep audit verify --export FILE` with `extra` arguments (`--key PUB`).
fn verify_export_with(file: &Path, extra: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["audit", "verify", "--export"])
        .arg(file)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_records_of_a_finished_clustered_run_read_print_and_verify() {
    let site = start_site("clustered", 140).await;
    let id = site.create_run("upgrade-8.11", &[]).await;
    let detail = site.drive(&id, Duration::from_secs(300)).await;
    assert_eq!(detail["run"]["status"], "succeeded", "{}", summary(&detail));
    let viewer = &site.tokens.operator;
    let dir = tempfile::tempdir().unwrap();

    // The same content as JSON, in the OpenAPI-described report.
    let report = site.get(viewer, &format!("/runs/{id}/report")).await;
    let r = &report["record"];
    assert_eq!(r["status"], "succeeded");
    assert_eq!(r["outcome"], "succeeded");
    assert_eq!(r["datacenter"], site.inventory_name.as_str());
    assert!(r["seed_chapter"].as_str().unwrap().starts_with("Chapter 1"));
    let approvals = r["approvals"].as_array().unwrap();
    let approve_events = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "run.approve_start" || e["kind"] == "step.approve")
        .count();
    assert!(approve_events > 1, "the run had gates");
    assert_eq!(approvals.len(), approve_events, "every approval is listed");
    let all_tasks = r["manual_tasks"].as_array().unwrap();
    assert_eq!(
        r["counts"]["manual_tasks"].as_u64().unwrap() as usize,
        all_tasks.len()
    );
    // The tasks people performed (a task the site made unnecessary is skipped, not performed).
    let tasks: Vec<&Value> = all_tasks
        .iter()
        .filter(|t| t["status"] == "succeeded")
        .collect();
    assert!(
        !tasks.is_empty(),
        "upgrade-8.11 has manual tasks: {all_tasks:?}"
    );
    for t in &tasks {
        assert_eq!(t["performed_by"], "operator", "{t}");
    }
    assert!(
        r["backups"]
            .as_array()
            .is_some_and(|b| !b.is_empty() && b.iter().all(|b| b["verified"] == true)),
        "the upgrade's verified backups: {}",
        r["backups"]
    );

    // The change record: fits 1400 px, and its printed text holds everything a board needs.
    let html = page(&site, viewer, &format!("/runs/{id}/report")).await;
    let file = offline_copy(&html, dir.path(), "record.html");
    let width = laid_out_width(&file, 1400);
    assert!(
        width <= 1400,
        "the change record is {width} px wide at 1400 px"
    );
    screenshots(&file, "change-record");
    let text = printed_text(&file, dir.path());
    if let Some(p) = looks_like_json(&text) {
        panic!("raw JSON (`{p}`) in the printed change record: {text}");
    }
    let ticket = r["change_ticket"].as_str().unwrap();
    for want in [
        "Summary",
        ticket,
        &site.inventory_name,
        "Chapter 1: Upgrade Connected Backup Components",
        "Requested by",
        "Change window",
        "Duration",
        "Outcome",
        "DBCC CHECKDB",
    ] {
        assert!(
            text.contains(want),
            "`{want}` is not in the printed record: {text}"
        );
    }
    // `<q>` prints its text between quotation marks.
    for a in approvals {
        let row = words(&format!(
            "{} {} {}: “{}”",
            a["actor"].as_str().unwrap(),
            a["verdict"].as_str().unwrap(),
            a["subject"].as_str().unwrap(),
            a["comment"].as_str().unwrap()
        ));
        assert!(
            text.contains(&row),
            "the approval `{row}` is not whole in the printed record: {text}"
        );
    }
    for t in &tasks {
        let on = match t["server"].as_str().unwrap() {
            "" => String::new(),
            server => format!(" on {server}"),
        };
        let row = words(&format!(
            "{}{on}: performed by {}",
            t["title"].as_str().unwrap(),
            t["performed_by"].as_str().unwrap()
        ));
        assert!(
            text.contains(&row),
            "the manual task `{row}` is not in the printed record: {text}"
        );
        let recorded = words(t["recorded"].as_str().unwrap());
        assert!(
            text.contains(&recorded),
            "what was recorded, `{recorded}`, is not in the printed record"
        );
    }

    // The Audit page of the run: fits 1400 px, sentences instead of JSON, the run named; and
    // searched for the approvers' words, their approvals read as sentences.
    for (name, path) in [
        ("audit.html", format!("/audit?run={id}")),
        (
            "audit-search.html",
            format!("/audit?run={id}&q=checked%20the%20EVIDENCE"),
        ),
    ] {
        let html = page(&site, viewer, &path).await;
        let file = offline_copy(&html, dir.path(), name);
        let width = laid_out_width(&file, 1400);
        assert!(width <= 1400, "{path} is {width} px wide at 1400 px");
        if name == "audit.html" {
            screenshots(&file, "audit");
        }
        let text = printed_text(&file, dir.path());
        if let Some(p) = looks_like_json(&text) {
            panic!("raw JSON (`{p}`) on {path}: {text}");
        }
        // A ticket may wrap at its hyphens: compare without any whitespace.
        let bare = |s: &str| s.split_whitespace().collect::<String>();
        assert!(
            bare(&text).contains(&bare(&format!("{ticket} · {}", site.inventory_name))),
            "the run is named by ticket and Data Center: {text}"
        );
        if name == "audit-search.html" {
            assert!(
                text.contains("approver approved the gate")
                    && text.contains(": 'checked the evidence'"),
                "approvals read as sentences: {text}"
            );
        }
    }

    // The Data Center drawing: after the run every server reads 8.11 (from the agents' facts,
    // collected after the run, or the recorded versions serve updated from them).
    let dc_path = format!("/datacenters/{}", site.inventory_name.replace(' ', "%20"));
    let servers = site.agents.len();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let drawing = page(&site, viewer, &format!("{dc_path}/drawing")).await;
        let upgraded = drawing.matches("<text class=\"version\" ").count();
        let at_8_11 = drawing.matches(">Connected 8.11<").count();
        if at_8_11 == servers {
            assert!(upgraded >= servers, "{drawing}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{at_8_11} of {servers} servers read Connected 8.11 90 s after the run: {drawing}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let html = page(&site, viewer, &dc_path).await;
    let file = offline_copy(&html, dir.path(), "datacenter.html");
    let width = laid_out_width(&file, 1400);
    assert!(
        width <= 1400,
        "the Data Center page is {width} px wide at 1400 px"
    );
    screenshots(&file, "datacenter");

    // The CSV gives ISO 8601 UTC times beside the milliseconds.
    let csv = page(&site, viewer, &format!("/audit/export.csv?run={id}")).await;
    let first = csv.lines().nth(1).unwrap();
    let cells: Vec<&str> = first.split("\",\"").collect();
    assert!(
        cells[2].len() == 24 && cells[2].ends_with('Z') && cells[2].contains('T'),
        "ISO 8601 UTC in the third column: {first}"
    );

    // The verifiable export: passes as exported, fails naming the event once tampered with.
    let bundle_text = page(&site, viewer, "/audit/export.bundle.json").await;
    let fresh = dir.path().join("fresh.json");
    std::fs::write(&fresh, &bundle_text).unwrap();
    let (ok, said) = verify_export(&fresh);
    assert!(ok && said.starts_with("audit export ok:"), "{said}");
    let bundle: Value = serde_json::from_str(&bundle_text).unwrap();
    let n = bundle["events"].as_array().unwrap().len();
    assert!(n > 10);
    // Every event signed, checked under the key the export names — the server's own: its
    // public key file (what an auditor obtains out of band) gives the same fingerprint.
    let public = site.dir.path().join("data").join("audit-signing.key.pub");
    let public_key =
        std::fs::read_to_string(&public).unwrap_or_else(|e| panic!("{}: {e}", public.display()));
    assert_eq!(
        bundle["signing_key"]["public_key"].as_str(),
        public_key.split_whitespace().nth(1),
        "the export carries the server's public key"
    );
    let key_id = bundle["signing_key"]["key_id"].as_str().unwrap();
    assert!(
        said.contains(&format!("all {n} signatures valid, signed by key {key_id}"))
            && said.contains("head signed"),
        "the verdict names the key's fingerprint: {said}"
    );
    assert!(
        bundle["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["sig"].as_str().is_some_and(|s| s.contains(key_id))),
        "each event carries its signature"
    );
    let (ok, said) = verify_export_with(&fresh, &["--key".as_ref(), public.as_os_str()]);
    assert!(ok && said.contains("the key you hold"), "{said}");

    let tampered = |name: &str, change: &dyn Fn(&mut Vec<Value>)| {
        let mut b = bundle.clone();
        change(b["events"].as_array_mut().unwrap());
        let file = dir.path().join(name);
        std::fs::write(&file, serde_json::to_string(&b).unwrap()).unwrap();
        verify_export(&file)
    };
    let (ok, said) = tampered("edited.json", &|events| {
        events[4]["actor"] = Value::from("mallory");
    });
    assert!(!ok && said.contains("BROKEN at event 5"), "edited: {said}");
    let (ok, said) = tampered("removed.json", &|events| {
        events.remove(6);
    });
    assert!(!ok && said.contains("BROKEN at event 7"), "removed: {said}");
    let (ok, said) = tampered("appended.json", &|events| {
        let mut extra = events.last().unwrap().clone();
        extra["id"] = Value::from(n as i64 + 1);
        extra["prev_hash"] = extra["hash"].clone();
        events.push(extra);
    });
    assert!(
        !ok && said.contains(&format!("BROKEN at event {}", n + 1)),
        "appended: {said}"
    );
    // Forged but correctly chained: event 9 edited, every hash after it rebuilt and the head
    // moved to the new last hash — a consistent chain, made without the signing key.
    let (ok, said) = tampered("rechained.json", &|events| {
        let mut chain: Vec<lockstep::engine::audit::AuditEvent> = events
            .iter()
            .map(|e| serde_json::from_value(e.clone()).unwrap())
            .collect();
        chain[8].actor = "mallory".into();
        for i in 8..chain.len() {
            if i > 8 {
                chain[i].prev_hash = chain[i - 1].hash.clone();
            }
            chain[i].hash = lockstep::engine::audit::event_hash(&chain[i]);
        }
        *events = chain
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect();
    });
    assert!(!ok, "a re-chained forgery passed: {said}");
    let mut check = bundle.clone();
    let rechained: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("rechained.json")).unwrap())
            .unwrap();
    check["events"] = rechained["events"].clone();
    check["head"]["hash"] = rechained["events"][n - 1]["hash"].clone();
    let file = dir.path().join("rechained-head.json");
    std::fs::write(&file, serde_json::to_string(&check).unwrap()).unwrap();
    let (ok, said) = verify_export(&file);
    assert!(
        !ok && said.contains("BROKEN at event 9") && said.contains("signature"),
        "rechained: {said}"
    );
}
