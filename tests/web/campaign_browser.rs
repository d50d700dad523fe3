//! In headless Chromium, issue 21's "done when": an operator plans a campaign from the demo's
//! stand-alone Data Center on its page, creates the first stage's run from the campaign page, an
//! approver approves its start and its gates and the operator does its manual tasks on the run
//! page until it succeeds; the campaign page then offers the second stage's run (and only then),
//! with the versions projected after stage 1 beside the ones found — first the record, which the
//! stage did not change, then what the agents report. Screenshots go to `test-artifacts/`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lockstep::engine::machine::{RunStatus, StepStatus};
use lockstep::web::auth::Role;
use lockstep::web::pages::datacenters::urlencode;

use crate::app::{spawn_app_on_simulated_site, TestApp, PASSWORD};
use crate::webdriver::{Browser, Driver};

fn artifact(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("test-artifacts")
        .join(name)
}

async fn log_in(app: &TestApp, b: &Browser, name: &str) {
    b.goto(&app.url("/login")).await;
    b.type_into("input[name=name]", name).await;
    b.type_into("input[name=password]", PASSWORD).await;
    b.click("button[type=submit]").await;
    b.wait_for("header.top .who", 5).await;
}

/// Presses the visible, enabled button labelled `label`, filling its form's empty required
/// fields with `fill` as a person would; false when the page shows no such button.
async fn press(b: &Browser, label: &str, fill: &str) -> bool {
    b.script(&format!(
        "var label = {label:?}, fill = {fill:?};
         var bs = document.querySelectorAll('button');
         for (var i = 0; i < bs.length; i++) {{
           var x = bs[i];
           if (x.textContent.trim() !== label || !x.offsetWidth || x.disabled) continue;
           if (x.form) x.form.querySelectorAll('input[required]').forEach(function (f) {{ if (!f.value) f.value = fill; }});
           x.click(); return true;
         }}
         return false;"
    ))
    .await
    .as_bool()
    .unwrap_or(false)
}

/// The operator (`op`) and the approver (`boss`) work the run on its page until it succeeds:
/// every manual task claimed and completed, every gate approved.
async fn work_until_succeeded(app: &TestApp, op: &Browser, boss: &Browser, run: &str) {
    let url = app.url(&format!("/runs/{run}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut tasks, mut gates) = (0, 0);
    loop {
        let status = app.state.store.run(run).await.unwrap().status;
        if status == RunStatus::Succeeded {
            break;
        }
        assert!(
            matches!(
                status,
                RunStatus::Running | RunStatus::AwaitingStartApproval
            ),
            "the stage's run stopped: {status}"
        );
        if Instant::now() > deadline {
            op.screenshot(&artifact("campaign-stuck-operator.png"))
                .await;
            boss.screenshot(&artifact("campaign-stuck-approver.png"))
                .await;
            let waiting: Vec<String> = app
                .state
                .store
                .step_statuses(run)
                .await
                .unwrap()
                .into_iter()
                .filter(|s| !matches!(s.status, StepStatus::Succeeded | StepStatus::Skipped))
                .map(|s| format!("{} {} {:?}", s.id, s.status, s.last_error))
                .collect();
            panic!(
                "the run did not finish: {tasks} tasks, {gates} gates done; waiting: {waiting:#?}"
            );
        }
        op.goto(&url).await;
        boss.goto(&url).await;
        let acted = if press(op, "Complete", "Done as the instructions say").await {
            tasks += 1;
            true
        } else if press(op, "Claim task", "").await {
            true
        } else if press(boss, "Approve", "Checked, go on").await {
            gates += 1;
            true
        } else {
            false
        };
        // Let the press land (an htmx post) or the driver move, then look again.
        tokio::time::sleep(Duration::from_millis(if acted { 400 } else { 250 })).await;
    }
    eprintln!("stage 1 succeeded after {tasks} manual tasks and {gates} gates");
}

/// The rows of stage `n`'s estate table: (server, projected, actual, class).
async fn estate(b: &Browser, n: usize) -> Vec<(String, String, String, String)> {
    let v = b
        .script(&format!(
            "return Array.from(document.querySelectorAll('#stage-{n} table.estate tbody tr')).map(function (r) {{
               var c = r.querySelectorAll('td');
               return [c[0].textContent.trim(), c[1].textContent.trim(), c[2].textContent.trim(), r.className];
             }});"
        ))
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |i: usize| r[i].as_str().unwrap_or("").to_string();
            (s(0), s(1), s(2), s(3))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaigns_first_stage_runs_to_success_and_the_second_becomes_startable() {
    let app = spawn_app_on_simulated_site().await;
    app.add_user("olga", Role::Operator).await;
    app.add_user("alan", Role::Approver).await;
    let inv = lockstep::web::datacenters::save(
        &app.state.pool,
        include_str!("../../examples/standalone.toml"),
        "olga",
        app.clock.now(),
    )
    .await
    .unwrap()
    .unwrap();
    let driver = Driver::start().await;
    let op = driver.browser().await;
    let boss = driver.browser().await;
    op.set_window(1400, 1000).await;
    boss.set_window(1400, 1000).await;
    log_in(&app, &op, "olga").await;
    log_in(&app, &boss, "alan").await;

    // Olga plans the campaign on the Data Center's page.
    op.goto(&app.url(&format!("/datacenters/{}", urlencode(&inv.name))))
        .await;
    op.click("#campaign-form select[name=connected] option[value='8.11']")
        .await;
    op.click("#campaign-form select[name=windows] option[value='2016']")
        .await;
    op.click("#campaign-form select[name=sql] option[value='2016']")
        .await;
    op.click("#plan-campaign").await;
    op.wait_for("#campaign-header", 10).await;
    let campaign_url = op.current_url().await;
    let id = campaign_url.rsplit('/').next().unwrap().to_string();
    let detail = app.state.store.campaign(&id).await.unwrap();
    assert!(detail.stages.len() >= 2, "{detail:?}");
    let progress = op.text("#campaign-progress").await;
    assert!(
        progress.contains(&format!("0 of {} stages succeeded", detail.stages.len())),
        "{progress}"
    );
    // Each stage says why it is where it is and links the guide's section.
    for s in &detail.stages {
        let card = op.text(&format!("#stage-{}", s.ordinal)).await;
        assert!(card.contains(&s.plan.reason), "{card}");
        assert!(card.contains(&s.plan.section), "{card}");
    }
    // Only the first stage can get a run; the second waits for it.
    assert!(op.find("#stage-1 form.create-stage-run").await.is_ok());
    assert!(op.find("#stage-2 form.create-stage-run").await.is_err());
    assert!(op
        .text("#stage-2")
        .await
        .contains("waits until stage 1 has succeeded"));
    op.screenshot(&artifact("campaign-planned-1400.png")).await;

    // Olga creates stage 1's run; Alan approves its start on the run page.
    op.type_into("#stage-1 input[name=change_ticket]", "CHG-CAMPAIGN-1")
        .await;
    op.click("#stage-1 form.create-stage-run button[type=submit]")
        .await;
    op.wait_for("#run-header", 10).await;
    assert!(op
        .text("#run-header .status")
        .await
        .contains("waiting for start approval"));
    let run = app.state.store.campaign(&id).await.unwrap().stages[0]
        .run_id
        .clone()
        .expect("stage 1 has its run");
    boss.goto(&app.url(&format!("/runs/{run}"))).await;
    boss.type_into("#approve-start-comment", "Window agreed")
        .await;
    boss.click("#approve-start").await;
    work_until_succeeded(&app, &op, &boss, &run).await;

    // Stage 1 succeeded: the campaign page offers stage 2's run.
    op.goto(&campaign_url).await;
    assert!(op
        .text("#stage-1 .runstate")
        .await
        .contains("finished: succeeded"));
    assert!(
        op.find("#stage-2 form.create-stage-run").await.is_ok(),
        "stage 2 is not startable"
    );
    assert!(op.text("#campaign-progress").await.contains("1 of"));
    // The versions projected after stage 1 beside those found: the stored record, which no
    // agent has corrected yet, still differs where the stage changed something.
    let before = estate(&op, 1).await;
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(before.iter().any(|r| r.3 == "differs"), "{before:?}");

    // The agents report what the stage did; the page shows it as found.
    let projected = serde_json::to_value(&detail.stages[0].plan.estate_after).unwrap();
    crate::campaign_facts::report_estate(&app, &projected).await;
    op.goto(&campaign_url).await;
    let after = estate(&op, 1).await;
    for (server, projected, actual, class) in &after {
        assert_eq!(projected, actual, "{server}");
        assert_eq!(class, "same", "{server}");
    }
    op.screenshot(&artifact("campaign-stage1-done-1400.png"))
        .await;
    op.set_window(400, 1000).await;
    op.screenshot(&artifact("campaign-stage1-done-400.png"))
        .await;
    op.set_window(1400, 1000).await;

    // Stage 2's run is created against the estate as found, which is kept as stage 1's "after".
    op.type_into("#stage-2 input[name=change_ticket]", "CHG-CAMPAIGN-2")
        .await;
    op.click("#stage-2 form.create-stage-run button[type=submit]")
        .await;
    op.wait_for("#run-header", 10).await;
    let detail = app.state.store.campaign(&id).await.unwrap();
    assert_eq!(
        detail.stages[1].run_status,
        Some(RunStatus::AwaitingStartApproval)
    );
    assert_eq!(
        detail.stages[0].actual_after.as_ref(),
        Some(&detail.stages[0].plan.estate_after)
    );
    op.goto(&campaign_url).await;
    assert!(op
        .text("#stage-1 table.estate caption")
        .await
        .contains("found when the next stage's run was created"));
    op.quit().await;
    boss.quit().await;
}
