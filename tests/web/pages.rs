//! Data Centers, runbooks, new run, audit and report pages through the browser's forms.

use lockstep::engine::machine::RunStatus;
use lockstep::web::auth::Role;

use crate::app::spawn_app;

const INVENTORY: &str = include_str!("../../examples/clustered.toml");

#[tokio::test]
async fn an_inventory_with_errors_is_shown_back_with_its_lines_and_nothing_is_stored() {
    let app = spawn_app().await;
    let op = app.login_as("olga", Role::Operator).await;
    let bad = INVENTORY.replacen("topology = \"clustered\"", "topology = \"<b>ring</b>\"", 1);
    let r = app.post(&op, "/datacenters", &[("toml", &bad)]).await;
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(page.contains("line "), "{page}");
    assert!(page.contains("topology"));
    assert!(!page.contains("<b>ring</b>"), "the typed text is escaped");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM data_centers")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_stored_data_center_shows_its_topology_and_preflight() {
    let app = spawn_app().await;
    let op = app.login_as("olga", Role::Operator).await;
    let r = app.post(&op, "/datacenters", &[("toml", INVENTORY)]).await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let page = app.get(&op, &location).await.text().await.unwrap();
    assert!(page.contains("<svg class=\"topology\""));
    assert!(page.contains("primary side") && page.contains("secondary side"));
    assert!(page.contains("NWRM1"));
    assert!(
        page.contains("<line "),
        "directory pairs are drawn across the sides"
    );
    assert!(page.contains("Preflight"));
}

#[tokio::test]
async fn a_new_run_is_previewed_then_created_and_waits_for_start_approval() {
    let app = spawn_app().await;
    let op = app.login_as("olga", Role::Operator).await;
    app.post(&op, "/datacenters", &[("toml", INVENTORY)]).await;
    let fields = [
        ("datacenter", "Northwind global backup"),
        ("runbook", "upgrade-8.11"),
        ("change_ticket", "CHG-7"),
        ("window_start", "2030-01-01T01:00"),
        ("window_end", "2030-01-01T09:00"),
    ];
    let preview = app.post(&op, "/runs/preview", &fields).await;
    assert_eq!(preview.status(), 200);
    let page = preview.text().await.unwrap();
    assert!(page.contains("id=\"preview\""), "{page}");
    assert!(page.contains("window"));
    assert!(
        app.state.store.runs().await.unwrap().is_empty(),
        "a preview creates nothing"
    );
    let r = app.post(&op, "/runs", &fields).await;
    assert_eq!(r.status(), 303);
    let runs = app.state.store.runs().await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::AwaitingStartApproval);
    assert_eq!(runs[0].change_ticket, "CHG-7");
    let page = app
        .get(&op, r.headers()["location"].to_str().unwrap())
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("awaiting_start_approval"));
}

#[tokio::test]
async fn a_new_run_without_a_ticket_or_with_a_bad_window_is_refused_by_field() {
    let app = spawn_app().await;
    let op = app.login_as("olga", Role::Operator).await;
    app.post(&op, "/datacenters", &[("toml", INVENTORY)]).await;
    let r = app
        .post(
            &op,
            "/runs",
            &[
                ("datacenter", "Northwind global backup"),
                ("runbook", "upgrade-8.11"),
                ("change_ticket", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("change_ticket"));
    let r = app
        .post(
            &op,
            "/runs",
            &[
                ("datacenter", "Northwind global backup"),
                ("runbook", "upgrade-8.11"),
                ("change_ticket", "C"),
                ("window_start", "tomorrow"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("window_start"));
    assert!(app.state.store.runs().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_runbook_catalog_lists_steps_with_their_seed_sections() {
    let app = spawn_app().await;
    let v = app.login_as("vera", Role::Viewer).await;
    let list = app.get(&v, "/runbooks").await.text().await.unwrap();
    assert!(list.contains("upgrade-8.11"));
    let page = app
        .get(&v, "/runbooks/upgrade-8.11")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Seed section"));
    assert!(
        page.contains("Stop Data Center Services"),
        "a seed heading appears"
    );
}

#[tokio::test]
async fn the_audit_page_filters_exports_and_shows_the_chain_result() {
    let app = spawn_app().await;
    let v = app.login_as("vera", Role::Viewer).await;
    app.add_user("olga", Role::Operator).await;
    let run = app.submitted_run("olga").await;
    app.create_run("olga", "DC9", "=cmd|' /C calc'!A0").await;
    let page = app
        .get(&v, &format!("/audit?run={}", run.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("verified"), "{page}");
    assert!(
        page.contains("2 events"),
        "created + submitted of that run only"
    );
    let csv = app
        .get(&v, "/audit/export.csv?person=olga")
        .await
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("id,at_ms,at_utc,run_id"));
    assert_eq!(csv.lines().count(), 1 + 3);
    let jsonl = app
        .get(&v, &format!("/audit/export.jsonl?run={}", run.id))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(jsonl.lines().count(), 2);
    for line in jsonl.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(e["run_id"], run.id.as_str());
    }
    let bad = app.get(&v, "/audit?from=yesterday").await;
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
async fn the_report_names_requester_and_approver_and_is_also_json() {
    let app = spawn_app().await;
    app.login_as("olga", Role::Operator).await;
    let boss = app.login_as("alan", Role::Approver).await;
    let run = app.submitted_run("olga").await;
    app.post(
        &boss,
        &format!("/runs/{}/approve", run.id),
        &[("comment", "approved for tonight")],
    )
    .await;
    let page = app
        .get(&boss, &format!("/runs/{}/report", run.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("olga") && page.contains("alan") && page.contains("approved for tonight"),
        "{page}"
    );
    let json: serde_json::Value = app
        .get(&boss, &format!("/runs/{}/report.json", run.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(json["run"]["requester"], "olga");
    assert_eq!(json["audit_chain_intact"], true);
}

#[tokio::test]
async fn audit_events_read_as_sentences_with_the_run_named_and_comments_searchable() {
    let app = spawn_app().await;
    let v = app.login_as("vera", Role::Viewer).await;
    app.login_as("olga", Role::Operator).await;
    let boss = app.login_as("alan", Role::Approver).await;
    let run = app.submitted_run("olga").await;
    let comment = "CAB approved CHG-1001 for tonight's window, provided the backups verify first";
    app.post(
        &boss,
        &format!("/runs/{}/approve", run.id),
        &[("comment", comment)],
    )
    .await;
    let escaped = comment.replace('\'', "&#39;");

    let page = app
        .get(&v, "/audit?q=backups%20VERIFY")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("1 events"), "{page}");
    assert!(
        page.contains(&format!(
            "alan approved the start of the run: &#39;{escaped}&#39;"
        )),
        "{page}"
    );
    assert!(
        page.contains("<span class=\"ticket\">CHG-1001</span> · Test DC"),
        "the run is named: {page}"
    );
    assert!(!page.contains("{&quot;"), "no raw JSON: {page}");
    let none = app.get(&v, "/audit?q=nothing%20like%20this").await;
    assert!(none.text().await.unwrap().contains("0 events"));
    let long = format!("/audit?q={}", "x".repeat(201));
    assert_eq!(app.get(&v, &long).await.status(), 422);

    // The change record keeps the whole comment.
    let record = app
        .get(&v, &format!("/runs/{}/report", run.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        record.contains(&format!(
            "<strong>alan</strong> approved the start of the run: <q>{escaped}</q>"
        )),
        "{record}"
    );

    // The verifiable export holds the whole chain and verifies as exported.
    let text = app
        .get(&v, "/audit/export.bundle.json?run=ignored")
        .await
        .text()
        .await
        .unwrap();
    let bundle = lockstep::engine::audit_bundle::Bundle::parse(&text).unwrap();
    let all = app.state.store.all_events().await.unwrap();
    assert_eq!(bundle.events.len(), all.len());
    assert_eq!(bundle.exported_by, "vera");
    let verdict = lockstep::engine::audit_bundle::verify(&bundle, None);
    assert_eq!(verdict.problem, None, "{}", verdict.line());
    // Every event carries its signature, checked under the key the export names.
    assert_eq!(verdict.signed as usize, all.len(), "{}", verdict.line());
    assert!(verdict.head_signed, "{}", verdict.line());
    assert!(
        verdict.key_id.is_some() && bundle.signing_key.is_some(),
        "{}",
        verdict.line()
    );
}
