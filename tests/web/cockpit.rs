//! The run page as a change-window cockpit, in headless Chromium: what waits for a person shows
//! up live in the approver's attention strip and on their Overview, the pages fit a 400 px
//! screen (what waits first), the dangerous controls ask first, the Gantt chart follows the run
//! without a reload, and times read in the viewer's time zone.

use std::time::{Duration, Instant};

use lockstep::engine::machine::{RunEvent, RunStatus, StepStatus};
use lockstep::engine::Actor;
use lockstep::web::auth::Role;

use crate::app::{spawn_app_with_driver, TestApp};
use crate::browser::{artifact, log_in, run_at_first_gate, wait_live};
use crate::webdriver::{Browser, Driver};

/// Polls `css`'s text until it contains `want`; fails after `limit`.
async fn shows_within(b: &Browser, css: &str, want: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let text = match b.find(css).await {
            Ok(el) => b.text_of(&el).await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(want) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "`{css}` did not show `{want}` within {limit:?}; it shows `{text}`"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A submitted run of the test plan (gate → manual task → gate) waiting for start approval.
async fn submitted(app: &TestApp) -> String {
    let run = app
        .create_run("olga", "DC1", "Run the Setup wizard on DC1")
        .await;
    app.state
        .store
        .apply_run_event(
            &run.id,
            &RunEvent::Submit {
                actor: Actor::new("olga", &[Role::Viewer, Role::Operator]),
            },
            app.clock.now_ms(),
        )
        .await
        .unwrap();
    run.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_that_starts_waiting_reaches_the_approvers_strip_and_overview_within_two_seconds() {
    let app = spawn_app_with_driver().await;
    app.add_user("olga", Role::Operator).await;
    app.add_user("alan", Role::Approver).await;
    let run = submitted(&app).await;
    let driver = Driver::start().await;
    let page = driver.browser().await;
    let overview = driver.browser().await;
    log_in(&app, &page, "alan").await;
    log_in(&app, &overview, "alan").await;
    page.goto(&app.url(&format!("/runs/{run}"))).await;
    wait_live(&page).await;
    overview.goto(&app.url("/")).await;
    wait_live(&overview).await;
    // Before: the start approval is Alan's; no gate is open yet.
    assert!(page.text("#attention").await.contains("Start of the run"));
    assert!(overview.text("#awaiting").await.contains("Start approval"));
    assert!(!page.text("#attention").await.contains("Step gate"));

    // Someone else approves the start; the driver opens the first gate.
    app.state
        .store
        .apply_run_event(
            &run,
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
    while app.state.store.step(&run, "gate").await.unwrap().status != StepStatus::AwaitingApproval {
        assert!(
            Instant::now() < deadline,
            "the driver never opened the gate"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let limit = Duration::from_secs(2);
    let on_page = shows_within(&page, "#attention", "Step gate", limit).await;
    let on_overview = shows_within(&overview, "#awaiting", "Step gate", limit).await;
    eprintln!("gate opened → approver's strip {on_page:?}, Overview {on_overview:?}");
    // Who may act and how long it waited, in words; the run says what it waits for.
    let strip = page.text("#attention").await;
    assert!(
        strip.contains("Who may act: an approver other than olga"),
        "{strip}"
    );
    assert!(strip.contains("waited under a minute"), "{strip}");
    let header = page.text("#run-header").await;
    assert!(
        header.contains("waiting for approval: Step gate"),
        "{header}"
    );
    // The tab title counts what waits for Alan.
    let title = page.script("return document.title").await;
    assert_eq!(
        title.as_str().unwrap_or(""),
        "(1) CHG-1001 · upgrade-8.11 · Test DC · Lockstep"
    );

    // Alan approves right there in the strip; the gate leaves it.
    page.type_into("#attention input[name=comment]", "Backups verified")
        .await;
    page.click("#attention button[value=approve]").await;
    shows_within(&page, "#attention", "Manual task", Duration::from_secs(3)).await;
    assert!(!page.text("#attention").await.contains("Approval gate"));
    page.screenshot(&artifact("cockpit-approver.png")).await;
    page.quit().await;
    overview.quit().await;
}

/// The page is no wider than the window: nothing overflows sideways.
async fn assert_fits(b: &Browser, what: &str) {
    let w = b
        .script("return [document.documentElement.scrollWidth, window.innerWidth]")
        .await;
    let (scroll, inner) = (w[0].as_i64().unwrap_or(0), w[1].as_i64().unwrap_or(0));
    assert!(
        inner > 0 && inner <= 420,
        "{what}: window is {inner} px wide"
    );
    assert!(
        scroll <= inner,
        "{what}: the page is {scroll} px wide in a {inner} px window"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_400_px_nothing_overflows_and_abort_asks_for_confirmation_first() {
    let app = spawn_app_with_driver().await;
    app.add_user("olga", Role::Operator).await;
    let run = run_at_first_gate(&app).await;
    let driver = Driver::start().await;
    let b = driver.browser().await;
    b.set_window(400, 900).await;
    log_in(&app, &b, "olga").await;
    for (path, what) in [
        ("/".to_string(), "Overview"),
        ("/runs".to_string(), "Runs"),
        (format!("/runs/{run}"), "run page"),
        (format!("/runs/{run}/abort"), "abort confirmation"),
        ("/runs/new".to_string(), "New run"),
    ] {
        b.goto(&app.url(&path)).await;
        b.wait_for("main", 5).await;
        assert_fits(&b, what).await;
    }
    // The menu wrapped instead of pushing "Log out" off-screen.
    let logout = b
        .script(
            "var r = document.querySelector('.who button').getBoundingClientRect(); return r.right",
        )
        .await;
    assert!(
        logout.as_f64().unwrap_or(1e9) <= 400.0,
        "Log out at {logout}"
    );

    // Abort is a link to a page saying what will happen; nothing is aborted until confirmed.
    b.goto(&app.url(&format!("/runs/{run}"))).await;
    b.screenshot(&artifact("cockpit-400px.png")).await;
    b.click("#abort-link").await;
    let effects = b.text("#effects").await;
    assert!(effects.contains("cannot be resumed"), "{effects}");
    assert_eq!(
        app.state.store.run(&run).await.unwrap().status,
        RunStatus::Running,
        "following the link aborted nothing"
    );
    b.type_into(
        "#confirm-form input[name=reason]",
        "Change board withdrew the window",
    )
    .await;
    b.click("#confirm").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.state.store.run(&run).await.unwrap().status != RunStatus::Aborted {
        assert!(
            Instant::now() < deadline,
            "the confirmed abort never happened"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    b.quit().await;
}

/// axe-core, pinned and vendored for the tests only (see tests/web/vendor/axe-core-4.10.3/README).
const AXE: &str = include_str!("vendor/axe-core-4.10.3/axe.min.js");

/// The serious and critical accessibility violations axe-core finds on the current page.
async fn axe_violations(b: &Browser) -> Vec<String> {
    b.script(&format!("{AXE}\n;window.__axe = axe; return true;"))
        .await;
    let found = b
        .script_async(
            "var done = arguments[arguments.length - 1];
             window.__axe.run(document, {resultTypes: ['violations']}).then(function (r) {
               done(r.violations
                 .filter(function (v) { return v.impact === 'serious' || v.impact === 'critical'; })
                 .map(function (v) {
                   return v.impact + ' ' + v.id + ' (' + v.nodes.length + '): ' + v.help + ' at '
                     + v.nodes.slice(0, 3).map(function (n) { return n.target.join(' '); }).join(' | ');
                 }));
             }, function (e) { done(['axe failed: ' + e]); });",
        )
        .await;
    found
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_else(|| vec![format!("axe answered {found}")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axe_core_finds_no_serious_or_critical_violation_on_any_page() {
    let app = spawn_app_with_driver().await;
    app.add_user("olga", Role::Operator).await;
    app.add_user("root", Role::Admin).await;
    lockstep::web::datacenters::save(
        &app.state.pool,
        include_str!("../../examples/mirrored.toml"),
        "olga",
        app.clock.now(),
    )
    .await
    .unwrap()
    .unwrap();
    let dc = lockstep::web::datacenters::list(&app.state.pool)
        .await
        .unwrap()[0]
        .name
        .clone();
    let run = run_at_first_gate(&app).await;
    let driver = Driver::start().await;
    let b = driver.browser().await;
    b.goto(&app.url("/login")).await;
    let mut problems = axe_violations(&b)
        .await
        .into_iter()
        .map(|v| format!("/login: {v}"))
        .collect::<Vec<_>>();
    log_in(&app, &b, "root").await;
    let pages = [
        "/".to_string(),
        "/runs".into(),
        "/runs/new".into(),
        format!("/runs/{run}"),
        format!("/runs/{run}?show=waiting"),
        format!("/runs/{run}/abort"),
        format!("/runs/{run}/steps/gate/skip"),
        format!("/runs/{run}/steps/wizard"),
        format!("/runs/{run}/report"),
        "/datacenters".into(),
        format!("/datacenters/{}", dc.replace(' ', "%20")),
        "/runbooks".into(),
        "/runbooks/upgrade-8.11".into(),
        "/audit".into(),
        "/agents".into(),
        "/users".into(),
        "/account".into(),
    ];
    for path in &pages {
        b.goto(&app.url(path)).await;
        b.wait_for("main", 5).await;
        for v in axe_violations(&b).await {
            problems.push(format!("{path}: {v}"));
        }
    }
    // The check can fail: an image without a text alternative is a critical violation.
    b.goto(&app.url("/runs")).await;
    b.script("var i = document.createElement('img'); i.src = '/favicon.ico'; document.querySelector('main').appendChild(i); return true;")
        .await;
    let planted = axe_violations(&b).await;
    assert!(
        planted.iter().any(|v| v.contains("image-alt")),
        "axe did not see a planted violation: {planted:?}"
    );
    b.quit().await;
    assert!(
        problems.is_empty(),
        "axe-core found serious or critical violations:\n{}",
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clustered_upgrade_at_its_first_wait_fits_about_five_screens_with_the_wait_on_the_first()
{
    use lockstep::knowledge::inventory::Inventory;
    use lockstep::knowledge::runbook::Catalog;
    let app = spawn_app_with_driver().await;
    app.add_user("alan", Role::Approver).await;
    let inventory = Inventory::parse(include_str!("../../examples/clustered.toml")).unwrap();
    let catalog = Catalog::builtin().unwrap();
    let runbook = catalog.get("upgrade-8.11").unwrap();
    let mut plan =
        lockstep::knowledge::expand::expand(runbook, &inventory, &Default::default()).unwrap();
    plan.for_simulated_site();
    let steps = plan.steps.len();
    assert!(steps >= 100, "the clustered upgrade has {steps} steps");
    let olga = Actor::new("olga", &[Role::Viewer, Role::Operator]);
    let store = &app.state.store;
    let run = store
        .create_run(
            lockstep::engine::store::NewRun {
                change_ticket: "CHG-2112".into(),
                window_start: None,
                window_end: None,
                plan,
            },
            &olga,
            app.clock.now_ms(),
        )
        .await
        .unwrap()
        .id;
    let now = app.clock.now_ms();
    store
        .apply_run_event(&run, &RunEvent::Submit { actor: olga }, now)
        .await
        .unwrap();
    store
        .apply_run_event(
            &run,
            &RunEvent::ApproveStart {
                actor: Actor::new("boss", &[Role::Approver]),
                comment: "go".into(),
            },
            now,
        )
        .await
        .unwrap();
    app.state.wake();
    // The driver runs every automatic step on the in-memory executor until a person is needed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = store.steps(&run).await.unwrap();
        let waiting = all.iter().any(|s| s.status == StepStatus::AwaitingApproval);
        let busy = all.iter().any(|s| {
            matches!(
                s.status,
                StepStatus::Ready
                    | StepStatus::Dispatched
                    | StepStatus::Running
                    | StepStatus::Verifying
            )
        });
        if waiting && !busy {
            break;
        }
        // Manual tasks before the gate are done by the operator, as in a window.
        for s in all
            .iter()
            .filter(|s| s.status == StepStatus::AwaitingOperator)
        {
            let op = Actor::new("oscar", &[Role::Viewer, Role::Operator]);
            let t = app.clock.now_ms();
            if s.state.claimed_by.is_none() {
                let _ = store
                    .apply_step_event(
                        &run,
                        &s.id,
                        &lockstep::engine::machine::StepEvent::Claim { actor: op.clone() },
                        t,
                    )
                    .await;
            }
            let _ = store
                .apply_step_event(
                    &run,
                    &s.id,
                    &lockstep::engine::machine::StepEvent::Complete {
                        actor: op,
                        note: "done".into(),
                    },
                    t,
                )
                .await;
            app.state.wake();
        }
        assert!(Instant::now() < deadline, "the run never reached a gate");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let driver = Driver::start().await;
    let b = driver.browser().await;
    b.set_window(1400, 900).await;
    log_in(&app, &b, "alan").await;
    b.goto(&app.url(&format!("/runs/{run}"))).await;
    wait_live(&b).await;
    let m = b
        .script(
            "var f = document.querySelector('#attention form.decide button[value=approve]');
             return [document.documentElement.scrollHeight, window.innerHeight,
                     f ? f.getBoundingClientRect().bottom : -1];",
        )
        .await;
    let (height, screen, approve) = (
        m[0].as_f64().unwrap_or(0.0),
        m[1].as_f64().unwrap_or(0.0),
        m[2].as_f64().unwrap_or(-1.0),
    );
    b.screenshot(&artifact("cockpit-clustered-gate.png")).await;
    eprintln!("clustered run of {steps} steps: page {height} px, approve button at {approve} px of {screen}");
    assert!(
        approve > 0.0 && approve <= screen,
        "the gate's Approve is not on the first screen ({approve} px of {screen})"
    );
    assert!(
        height <= 4500.0,
        "the page is {height} px tall (at most ~4,500 px)"
    );
    b.quit().await;
}

/// The class of the Gantt row whose title starts with `label`.
async fn gantt_row_class(b: &Browser, label: &str) -> String {
    let found = b
        .script(&format!(
            "var gs = document.querySelectorAll('#timeline g.bar');
             for (var i = 0; i < gs.length; i++) {{
               var t = gs[i].querySelector('title');
               if (t && t.textContent.indexOf({label:?}) === 0) return gs[i].getAttribute('class');
             }}
             return '';"
        ))
        .await;
    found.as_str().unwrap_or("").to_string()
}

/// `HH:MM` of a UTC `YYYY-MM-DDTHH:MM:SSZ` moved by +05:30 (India has no daylight saving).
fn in_kolkata(datetime: &str) -> String {
    let h: i64 = datetime[11..13].parse().expect("hours");
    let m: i64 = datetime[14..16].parse().expect("minutes");
    let t = (h * 60 + m + 330).rem_euclid(24 * 60);
    format!("{:02}:{:02}", t / 60, t % 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gantt_follows_the_run_without_reload_and_times_read_in_the_viewers_zone() {
    let app = spawn_app_with_driver().await;
    app.add_user("olga", Role::Operator).await;
    let alan = app.login_as("alan", Role::Approver).await;
    let run = run_at_first_gate(&app).await;
    let driver = Driver::start_in_zone("Asia/Kolkata").await;
    let b = driver.browser().await;
    b.set_window(1400, 900).await;
    log_in(&app, &b, "alan").await;
    b.goto(&app.url(&format!("/runs/{run}"))).await;
    wait_live(&b).await;
    let anchor = b.find("#live").await.expect("the live region");
    assert_eq!(gantt_row_class(&b, "Step gate").await, "bar running");
    assert_eq!(gantt_row_class(&b, "Step wizard").await, "bar waiting");
    assert!(b.find("#timeline line.now").await.is_ok(), "a now line");
    b.screenshot(&artifact("cockpit-gantt-before.png")).await;

    // Alan approves the gate; the chart is swapped in by the live stream, not by a reload.
    b.type_into("#attention input[name=comment]", "Backups verified")
        .await;
    b.click("#attention button[value=approve]").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let class = gantt_row_class(&b, "Step gate").await;
        if class == "bar done" || class == "bar late" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gate's bar still reads `{class}`"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(b.text_of(&anchor).await.is_ok(), "the page was reloaded");
    b.screenshot(&artifact("cockpit-gantt-after.png")).await;

    // Times: the server writes UTC; the page shows the viewer's zone and keeps UTC on hover.
    b.goto(&app.url("/audit")).await;
    b.wait_for("td.when time", 5).await;
    let t = b
        .script(
            "var t = document.querySelector('td.when time');
             return [t.getAttribute('datetime'), t.getAttribute('title'), t.textContent];",
        )
        .await;
    let (datetime, title, text) = (
        t[0].as_str().unwrap_or("").to_string(),
        t[1].as_str().unwrap_or("").to_string(),
        t[2].as_str().unwrap_or("").to_string(),
    );
    let raw = app.get(&alan, "/audit").await.text().await.unwrap();
    assert!(
        raw.contains(&format!("<time datetime=\"{datetime}\" title=\"{title}\"")),
        "the script left datetime and the UTC title as the server wrote them: {datetime} / {title}"
    );
    assert!(
        datetime.ends_with('Z') && title.ends_with(" UTC"),
        "{datetime} / {title}"
    );
    assert!(
        text.contains(&in_kolkata(&datetime)) && text.ends_with("GMT+5:30"),
        "{datetime} reads `{text}` in Asia/Kolkata"
    );
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_400_px_the_attention_strip_and_its_approve_come_first() {
    let app = spawn_app_with_driver().await;
    app.add_user("olga", Role::Operator).await;
    app.add_user("alan", Role::Approver).await;
    let run = run_at_first_gate(&app).await;
    let driver = Driver::start().await;
    let b = driver.browser().await;
    b.set_window(400, 900).await;
    log_in(&app, &b, "alan").await;
    b.goto(&app.url(&format!("/runs/{run}"))).await;
    wait_live(&b).await;
    let m = b
        .script(
            "var a = document.getElementById('attention').getBoundingClientRect();
             var h = document.getElementById('run-header').getBoundingClientRect();
             var f = document.querySelector('#attention button[value=approve]');
             return [a.top, h.top, f ? f.getBoundingClientRect().bottom : -1, window.innerHeight];",
        )
        .await;
    let n = |i: usize| m[i].as_f64().unwrap_or(-1.0);
    b.screenshot(&artifact("cockpit-400px-approver.png")).await;
    assert!(
        n(0) < n(1),
        "the strip ({}) is above the header ({})",
        n(0),
        n(1)
    );
    assert!(
        n(2) > 0.0 && n(2) <= n(3),
        "the gate's Approve is on the first screen ({} px of {})",
        n(2),
        n(3)
    );
    assert_fits(&b, "run page of an approver").await;
    b.quit().await;
}
