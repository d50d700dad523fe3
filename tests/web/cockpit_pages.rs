//! The cockpit's pages without a browser: the attention strip's contents per viewer, the
//! confirmation pages of the dangerous controls, the step filter, the favicon, the Overview's
//! live stream, the Gantt chart and forecast, and the step log in words.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lockstep::engine::machine::{RunEvent, StepStatus};
use lockstep::engine::Actor;
use lockstep::web::auth::Role;

use crate::app::{small_plan, spawn_app, spawn_app_with_driver, TestApp};

/// A run at its first gate (approved to start by someone else; the driver opened the gate).
async fn at_gate(app: &TestApp) -> String {
    let run = app.submitted_run("olga").await;
    app.state
        .store
        .apply_run_event(
            &run.id,
            &RunEvent::ApproveStart {
                actor: Actor::new("boss", &[Role::Approver]),
                comment: "go".into(),
            },
            app.clock.now_ms(),
        )
        .await
        .unwrap();
    app.state.wake();
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.state.store.step(&run.id, "gate").await.unwrap().status
        != StepStatus::AwaitingApproval
    {
        assert!(
            Instant::now() < deadline,
            "the driver never opened the gate"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    run.id
}

fn section<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let end = page[start..]
        .find("</section>")
        .map_or(page.len(), |e| start + e);
    &page[start..end]
}

#[tokio::test]
async fn the_attention_strip_offers_the_gate_to_an_approver_but_not_to_the_requester() {
    let app = spawn_app_with_driver().await;
    let olga = app.login_as("olga", Role::Operator).await;
    let alan = app.login_as("alan", Role::Approver).await;
    let run = at_gate(&app).await;

    let page = app
        .get(&alan, &format!("/runs/{run}"))
        .await
        .text()
        .await
        .unwrap();
    let strip = section(&page, "attention");
    assert!(strip.contains("data-mine=\"1\""), "{strip}");
    assert!(strip.contains("Approval gate:"));
    assert!(strip.contains("Who may act: an approver other than olga"));
    assert!(strip.contains(&format!("action=\"/runs/{run}/steps/gate/approve\"")));
    assert!(page.contains("<title>(1) CHG-1001 · upgrade-8.11 · Test DC · Lockstep</title>"));
    assert!(section(&page, "run-header").contains("waiting for approval: Step gate"));

    let page = app
        .get(&olga, &format!("/runs/{run}"))
        .await
        .text()
        .await
        .unwrap();
    let strip = section(&page, "attention");
    assert!(strip.contains("data-mine=\"0\""), "{strip}");
    assert!(strip.contains("Step gate"), "the requester sees it waiting");
    assert!(
        !strip.contains("/steps/gate/approve"),
        "but gets no approve form"
    );

    // The approver's Overview lists it; the requester's does not.
    let home = app.get(&alan, "/").await.text().await.unwrap();
    assert!(home.contains("Approval gate:</strong>"), "{home}");
    assert!(home.contains(&format!("/runs/{run}#step-0")));
    let home = app.get(&olga, "/").await.text().await.unwrap();
    assert!(home.contains("Nothing awaits you."));
}

#[tokio::test]
async fn dangerous_controls_link_to_a_page_that_says_what_will_happen() {
    let app = spawn_app_with_driver().await;
    let olga = app.login_as("olga", Role::Operator).await;
    let vic = app.login_as("vic", Role::Viewer).await;
    let run = at_gate(&app).await;
    let page = app
        .get(&olga, &format!("/runs/{run}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(&format!("href=\"/runs/{run}/abort\"")));
    assert!(page.contains(&format!("href=\"/runs/{run}/pause\"")));
    assert!(
        !page.contains(&format!("action=\"/runs/{run}/abort\"")),
        "no one-click abort on the run page"
    );
    let confirm = app.get(&olga, &format!("/runs/{run}/abort")).await;
    assert_eq!(confirm.status(), 200);
    let confirm = confirm.text().await.unwrap();
    assert!(confirm.contains("Abort this run?"));
    assert!(confirm.contains("cannot be resumed"));
    assert!(confirm.contains(&format!("action=\"/runs/{run}/abort\"")));
    assert!(confirm.contains("name=\"reason\" required"));
    // Viewers may not, unknown controls do not exist, and the run is untouched by looking.
    assert_eq!(
        app.get(&vic, &format!("/runs/{run}/abort")).await.status(),
        403
    );
    assert_eq!(
        app.get(&olga, &format!("/runs/{run}/explode"))
            .await
            .status(),
        404
    );
    assert_eq!(
        app.get(&olga, &format!("/runs/{run}/steps/gate/approve"))
            .await
            .status(),
        404
    );
    let resume = app
        .get(&olga, &format!("/runs/{run}/undo"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        resume.contains("this control does not apply now"),
        "undo of a running run"
    );
    assert_eq!(
        app.state.store.run(&run).await.unwrap().status.as_str(),
        "running"
    );
}

#[tokio::test]
async fn the_step_filter_keeps_what_waits_and_names_a_bad_choice() {
    let app = spawn_app_with_driver().await;
    let olga = app.login_as("olga", Role::Operator).await;
    let run = at_gate(&app).await;
    let page = app
        .get(&olga, &format!("/runs/{run}?show=waiting"))
        .await
        .text()
        .await
        .unwrap();
    let phases = &page[page.find("id=\"phases\"").unwrap()..];
    assert!(phases.contains("id=\"step-0\""));
    assert!(
        !phases.contains("id=\"step-1\""),
        "the pending task is filtered out"
    );
    assert!(phases.contains("2 steps hidden by the filter."));
    let bad = app
        .get(&olga, &format!("/runs/{run}?show=everything"))
        .await;
    assert_eq!(bad.status(), 422, "a bad filter is a refused input");
    assert!(bad
        .text()
        .await
        .unwrap()
        .contains("show: `everything` is not a filter"));
}

#[tokio::test]
async fn the_favicon_is_an_icon_not_a_404() {
    let app = spawn_app().await;
    let r = reqwest::get(app.url("/favicon.ico")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/x-icon");
    let bytes = r.bytes().await.unwrap();
    assert_eq!(&bytes[..4], &[0, 0, 1, 0], "an ICO header");
}

#[tokio::test]
async fn the_overview_stream_sends_a_gate_as_it_starts_waiting() {
    let app = spawn_app_with_driver().await;
    let alan = app.login_as("alan", Role::Approver).await;
    app.add_user("olga", Role::Operator).await;
    let resp = app.get(&alan, "/overview/events").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    let run = at_gate(&app).await;
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen.contains("Step gate") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, body.next()).await {
            Ok(Some(Ok(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("the stream ended or stalled ({other:?}); got: {seen}"),
        }
    }
    assert!(seen.contains("event: update"));
    assert!(seen.contains("hx-swap-oob=\"true\""));
    assert!(seen.contains(&format!("/runs/{run}#step-0")));
}

#[tokio::test]
async fn a_step_page_shows_its_whole_output_searchable_and_as_a_text_download() {
    let app = spawn_app().await;
    let vic = app.login_as("vic", Role::Viewer).await;
    let run = app.create_run("olga", "DC1", "ok").await;
    let key = lockstep::engine::executor::IdempotencyKey {
        run_id: run.id.clone(),
        step_id: "wizard".into(),
        attempt: 1,
    };
    let now = app.clock.now_ms();
    app.state
        .live
        .step_log()
        .write(
            &key,
            &[
                (
                    now,
                    "Stopped BackupServer (was Running) in 2.1 s".to_string(),
                ),
                (
                    now,
                    "Stopped <IndexServer> (was Running) in 1.4 s".to_string(),
                ),
            ],
            0,
        )
        .await
        .unwrap();
    let page = app
        .get(
            &vic,
            &format!("/runs/{}/steps/wizard?q=backupserver", run.id),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Stopped BackupServer (was Running) in 2.1 s"));
    assert!(
        !page.contains("IndexServer"),
        "the search keeps only matching lines"
    );
    assert!(page.contains("1 of 2 lines contain"));
    let all = app
        .get(&vic, &format!("/runs/{}/steps/wizard", run.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(all.contains("Stopped &#60;IndexServer&#62;"), "escaped");
    let txt = app
        .get(&vic, &format!("/runs/{}/steps/wizard/log.txt", run.id))
        .await;
    assert_eq!(txt.status(), 200);
    assert!(txt.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("wizard.log.txt"));
    let body = txt.text().await.unwrap();
    assert_eq!(body.lines().count(), 3, "{body}");
    assert!(body.contains("attempt 1 Stopped <IndexServer> (was Running) in 1.4 s"));
    assert_eq!(
        app.get(&vic, &format!("/runs/{}/steps/nosuch", run.id))
            .await
            .status(),
        404
    );
}

/// The `<figure id="timeline">` of a page.
fn gantt(page: &str) -> &str {
    let start = page
        .find("id=\"timeline\"")
        .expect("the run page has a Gantt chart");
    let end = page[start..]
        .find("</figure>")
        .map_or(page.len(), |e| start + e);
    &page[start..end]
}

#[tokio::test]
async fn the_gantt_shows_what_ran_a_now_line_the_critical_path_and_the_forecast() {
    let app = spawn_app_with_driver().await;
    let alan = app.login_as("alan", Role::Approver).await;
    let run = at_gate(&app).await;
    let page = app
        .get(&alan, &format!("/runs/{run}"))
        .await
        .text()
        .await
        .unwrap();
    let chart = gantt(&page);
    // The gate has been open since the driver reached it: an actual bar, still running.
    assert!(
        chart.contains("<g class=\"bar running\" data-critical=\"true\">"),
        "{chart}"
    );
    assert_eq!(chart.matches("class=\"actual\"").count(), 1, "{chart}");
    // The two steps after it have forecast bars; a line marks now.
    assert_eq!(chart.matches("class=\"forecast\"").count(), 3, "{chart}");
    assert!(chart.contains("<line class=\"now\""));
    assert!(
        chart.contains("◆ Step gate"),
        "the critical path is marked in words too"
    );
    assert!(chart.contains("<td>yes</td>"), "and in the table");
    let header = section(&page, "run-header");
    assert!(
        header.contains("Forecast finish: <time datetime=\""),
        "{header}"
    );
    assert!(
        header.contains("from now along the critical path"),
        "{header}"
    );
    assert!(!header.contains("Warning:"), "no window, no warning");
}

#[tokio::test]
async fn a_forecast_past_the_windows_end_is_a_warning_and_a_line_on_the_gantt() {
    let app = spawn_app().await;
    let olga = app.login_as("olga", Role::Operator).await;
    let now = app.clock.now_ms();
    // Three steps of 2 min each, and a window that closes in 1 min.
    let run = app
        .state
        .store
        .create_run(
            lockstep::engine::store::NewRun {
                change_ticket: "CHG-77".into(),
                window_start: Some(now - 3_600_000),
                window_end: Some(now + 60_000),
                plan: small_plan("DC1", "ok"),
            },
            &Actor::new("olga", &[Role::Viewer, Role::Operator]),
            now,
        )
        .await
        .unwrap()
        .id;
    let page = app
        .get(&olga, &format!("/runs/{run}"))
        .await
        .text()
        .await
        .unwrap();
    let header = section(&page, "run-header");
    assert!(
        header.contains("<strong>Warning:</strong> the forecast finish passes the window's end"),
        "{header}"
    );
    assert!(header.contains("after the window closes"), "{header}");
    assert!(gantt(&page).contains("<line class=\"window-end\""));
}

#[tokio::test]
async fn cards_show_the_log_in_words_and_the_step_page_keeps_the_technical_lines() {
    let app = spawn_app().await;
    let vic = app.login_as("vic", Role::Viewer).await;
    let run = app.create_run("olga", "DC1", "ok").await;
    let key = lockstep::engine::executor::IdempotencyKey {
        run_id: run.id.clone(),
        step_id: "wizard".into(),
        attempt: 1,
    };
    let now = app.clock.now_ms();
    app.state
        .live
        .step_log()
        .write_marked(
            &key,
            &[
                (now, "agent action abc/wizard@DC1/1 sent".to_string(), true),
                (
                    now,
                    "Stopped BackupServer, IndexServer in 2.1 s".to_string(),
                    false,
                ),
            ],
            0,
        )
        .await
        .unwrap();
    let page = app
        .get(&vic, &format!("/runs/{}", run.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Stopped BackupServer, IndexServer in 2.1 s"));
    assert!(
        !page.contains("agent action abc"),
        "no technical line on the card"
    );
    let step = format!("/runs/{}/steps/wizard", run.id);
    let plain = app.get(&vic, &step).await.text().await.unwrap();
    assert!(plain.contains("Stopped BackupServer"));
    assert!(!plain.contains("agent action abc"));
    assert!(plain.contains("name=\"technical\""), "a way to see them");
    let all = app
        .get(&vic, &format!("{step}?technical=1"))
        .await
        .text()
        .await
        .unwrap();
    assert!(all.contains("<span class=\"tag\">technical</span> agent action abc/wizard@DC1/1 sent"));
    assert!(all.contains("2 of 2 lines"));
    let txt = app
        .get(&vic, &format!("{step}/log.txt"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        txt.contains("attempt 1 [technical] agent action abc/wizard@DC1/1 sent"),
        "{txt}"
    );
    assert!(txt.contains("attempt 1 Stopped BackupServer"), "{txt}");
    let bad = app.get(&vic, &format!("{step}?technical=yes")).await;
    assert_eq!(bad.status(), 422);
    assert!(bad
        .text()
        .await
        .unwrap()
        .contains("technical: `yes` is not a choice"));
}

/// The next `update` frame of an event stream (skipping the watcher list and keep-alives).
async fn next_update(
    body: &mut (impl futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Unpin),
    buf: &mut String,
    with: &str,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if frame.contains("event: update") && frame.contains(with) {
                return frame;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, body.next()).await {
            Ok(Some(Ok(chunk))) => buf.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("the stream ended or stalled ({other:?}); got: {buf}"),
        }
    }
}

#[tokio::test]
async fn the_live_stream_sends_the_whole_gantt_once_then_only_the_parts_that_changed() {
    let app = spawn_app_with_driver().await;
    let alan = app.login_as("alan", Role::Approver).await;
    let olga = app.login_as("olga", Role::Operator).await;
    let run = at_gate(&app).await;
    let page = app
        .get(&alan, &format!("/runs/{run}"))
        .await
        .text()
        .await
        .unwrap();
    let after: i64 = page
        .split("/events?after=")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("the page's stream address");
    let resp = app
        .get(&alan, &format!("/runs/{run}/events?after={after}"))
        .await;
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let comment = |text: &'static str| {
        let (app, olga, run) = (&app, &olga, run.clone());
        async move {
            let r = app
                .post(olga, &format!("/runs/{run}/comments"), &[("text", text)])
                .await;
            assert!(r.status().is_success() || r.status().is_redirection());
        }
    };
    comment("first").await;
    let first = next_update(&mut body, &mut buf, "timeline").await;
    assert!(
        first.contains("<figure class=\"timeline gantt\" id=\"timeline\" hx-swap-oob=\"true\">"),
        "the first update draws the whole chart: {first}"
    );
    comment("second").await;
    let second = next_update(&mut body, &mut buf, "timeline").await;
    assert!(
        second.contains("<div id=\"timeline-top\" hx-swap-oob=\"true\">"),
        "{second}"
    );
    assert!(
        !second.contains("id=\"timeline\" hx-swap-oob"),
        "on the same axis only the parts that changed are sent: {second}"
    );
}
