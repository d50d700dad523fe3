//! The README's "What to try first", followed word for word in headless Chromium.
//!
//! The steps are read from the README itself. In each step, every name in bold is looked for on
//! the page of the person the step speaks for ("log in as `operator`", "as `approver`") and used
//! the way a person would: a menu item is clicked, a field is filled, a button is pressed (after
//! filling the required fields of its form), a heading must be on the page. A name the page does
//! not show fails the test, so the README cannot drift from the menu and the labels. The plain
//! words between the names are mirrored here: choosing the `code` values the step names, following
//! the awaiting start to the run, doing each manual task before the gate.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lockstep::web::auth::Role;

use crate::app::{spawn_app_with_driver, TestApp};
use crate::browser::{artifact, log_in};
use crate::webdriver::{Browser, Driver};

const README: &str = include_str!("../../README.md");

/// The numbered steps of the walkthrough, each as one line of text.
fn steps() -> Vec<String> {
    let start = README
        .find("What to try first")
        .expect("the README has its walkthrough");
    let end = start
        + README[start..]
            .find("\n\n![")
            .expect("the walkthrough ends at the screenshot");
    let mut out: Vec<String> = Vec::new();
    for line in README[start..end].lines() {
        let t = line.trim();
        let numbered = t
            .split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if numbered {
            out.push(t.split_once(". ").map(|(_, r)| r).unwrap_or(t).to_string());
        } else if let Some(last) = out.last_mut() {
            if !t.is_empty() {
                last.push(' ');
                last.push_str(t);
            }
        }
    }
    out
}

/// What a step says, in order: the accounts it speaks for and the names in bold.
#[derive(Debug, PartialEq)]
enum Word {
    As(String),
    Name(String),
    Code(String),
}

fn words(step: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut rest = step;
    loop {
        let bold = rest.find("**");
        let code = rest.find('`');
        match (bold, code) {
            (Some(b), c) if c.is_none_or(|c| b < c) => {
                let after = &rest[b + 2..];
                let Some(e) = after.find("**") else { break };
                out.push(Word::Name(after[..e].to_string()));
                rest = &after[e + 2..];
            }
            (_, Some(c)) => {
                let after = &rest[c + 1..];
                let Some(e) = after.find('`') else { break };
                let before = rest[..c].to_lowercase();
                let value = after[..e].to_string();
                if before.ends_with("as ") {
                    out.push(Word::As(value));
                } else {
                    out.push(Word::Code(value));
                }
                rest = &after[e + 1..];
            }
            _ => break,
        }
    }
    out
}

/// Looks for `name` on the page and uses it; returns what it was ("menu", "field", "button",
/// "heading") or "" when the page does not show it. `codes` are values the step names (a select
/// offering one of them gets it).
async fn use_name(b: &Browser, name: &str, codes: &[String]) -> String {
    let found = b
        .script(&format!(
            "var name = {name:?}, codes = {codes:?};
             function shown(e) {{ return !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length); }}
             function fill(form) {{
               if (!form) return;
               form.querySelectorAll('select').forEach(function (s) {{
                 for (var i = 0; i < s.options.length; i++)
                   if (codes.indexOf(s.options[i].value) >= 0) s.value = s.options[i].value;
                 if (s.required && !s.value)
                   for (var j = 0; j < s.options.length; j++)
                     if (s.options[j].value) {{ s.value = s.options[j].value; break; }}
               }});
               form.querySelectorAll('input[required], textarea[required]').forEach(function (i) {{
                 if (!i.value) i.value = 'Walkthrough: checked as the README says';
               }});
             }}
             var links = document.querySelectorAll('nav a');
             for (var i = 0; i < links.length; i++)
               if (links[i].textContent.trim() === name && shown(links[i])) {{ links[i].click(); return 'menu'; }}
             var buttons = document.querySelectorAll('button');
             for (var i = 0; i < buttons.length; i++)
               if (buttons[i].textContent.trim() === name && shown(buttons[i])) {{
                 fill(buttons[i].form); window.__pressed = buttons[i]; buttons[i].click(); return 'button';
               }}
             var labels = document.querySelectorAll('label');
             for (var i = 0; i < labels.length; i++) {{
               var l = labels[i], input = l.querySelector('input, textarea');
               if (input && shown(input) && l.textContent.trim().indexOf(name) === 0) {{
                 input.value = name === 'Change ticket' ? 'CHG-README-1' : 'Walkthrough: done as the instructions say';
                 return 'field';
               }}
             }}
             var heads = document.querySelectorAll('h1, h2, h3');
             for (var i = 0; i < heads.length; i++)
               if (heads[i].textContent.trim().indexOf(name) === 0 && shown(heads[i])) {{
                 heads[i].scrollIntoView(); return 'heading';
               }}
             return '';"
        ))
        .await;
    found.as_str().unwrap_or("").to_string()
}

/// Uses `name`, waiting up to `limit` for the live page to show it.
async fn use_within(b: &Browser, name: &str, codes: &[String], limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let what = use_name(b, name, codes).await;
        if what == "button" {
            // As a person would, wait for the press to take effect (the page or the part that
            // held the button is replaced) before going on.
            let pressed = Instant::now();
            while b
                .script("return !!(window.__pressed && document.contains(window.__pressed));")
                .await
                .as_bool()
                .unwrap_or(false)
            {
                assert!(
                    pressed.elapsed() < limit,
                    "pressing **{name}** changed nothing on the page"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if !what.is_empty() {
            return what;
        }
        if start.elapsed() > limit {
            let url = b.current_url().await;
            b.screenshot(&artifact("walkthrough-missing.png")).await;
            panic!("the README names **{name}**, which {url} does not show (menu item, field, button or heading)");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the page shows a visible button labelled `name` right now.
async fn shows_button(b: &Browser, name: &str) -> bool {
    b.script(&format!(
        "var bs = document.querySelectorAll('button');
         for (var i = 0; i < bs.length; i++)
           if (bs[i].textContent.trim() === {name:?} && bs[i].offsetWidth) return true;
         return false;"
    ))
    .await
    .as_bool()
    .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_can_be_followed_word_for_word() {
    let steps = steps();
    assert_eq!(steps.len(), 4, "{steps:#?}");
    let app: TestApp = spawn_app_with_driver().await;
    app.add_user("operator", Role::Operator).await;
    app.add_user("approver", Role::Approver).await;
    lockstep::web::datacenters::save(
        &app.state.pool,
        include_str!("../../examples/mirrored.toml"),
        "operator",
        app.clock.now(),
    )
    .await
    .unwrap()
    .unwrap();
    let driver = Driver::start().await;
    let mut browsers: BTreeMap<String, Browser> = BTreeMap::new();
    let mut who = String::new();
    let wait = Duration::from_secs(30);
    for (n, step) in steps.iter().enumerate() {
        let said = words(step);
        let codes: Vec<String> = said
            .iter()
            .filter_map(|w| match w {
                Word::Code(c) => Some(c.clone()),
                _ => None,
            })
            .collect();
        // Step 3 speaks of each manual task before the gate: the operator's part is repeated
        // while tasks wait and the gate has not opened yet.
        let mut i = 0;
        let mut tasks_done = 0;
        while i < said.len() {
            match &said[i] {
                Word::As(account) => {
                    who = account.clone();
                    if !browsers.contains_key(&who) {
                        let b = driver.browser().await;
                        b.set_window(1400, 900).await;
                        log_in(&app, &b, &who).await;
                        browsers.insert(who.clone(), b);
                    }
                }
                Word::Code(_) => {}
                Word::Name(name) => {
                    let b = browsers.get(&who).unwrap_or_else(|| {
                        panic!("step {}: nobody is logged in for **{name}**", n + 1)
                    });
                    if n == 2 && name == "Claim task" {
                        // Each manual task, until the gate waits for the approver.
                        let approver = browsers.get("approver").expect("the approver's browser");
                        let start = Instant::now();
                        while !shows_button(b, "Claim task").await {
                            assert!(
                                start.elapsed() < wait,
                                "no manual task waited for the operator"
                            );
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        loop {
                            use_within(b, "Claim task", &codes, wait).await;
                            assert_eq!(use_within(b, "What was done", &codes, wait).await, "field");
                            assert_eq!(use_within(b, "Complete", &codes, wait).await, "button");
                            tasks_done += 1;
                            // The next wait: another task, or the gate.
                            let start = Instant::now();
                            loop {
                                if shows_button(approver, "Approve").await {
                                    break;
                                }
                                if shows_button(b, "Claim task").await {
                                    break;
                                }
                                assert!(
                                    start.elapsed() < wait,
                                    "after a completed task, neither another task nor the gate waited"
                                );
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            if shows_button(approver, "Approve").await || tasks_done >= 5 {
                                break;
                            }
                        }
                        i += 3; // Claim task, What was done, Complete
                        continue;
                    }
                    let what = use_within(b, name, &codes, wait).await;
                    eprintln!("step {}: as {who}, **{name}** is a {what}", n + 1);
                    if n == 1 && name == "Awaiting you" {
                        // "Follow it to the run page".
                        let start = Instant::now();
                        loop {
                            let went = b
                                .script("var a = document.querySelector('#awaiting li.wait a'); if (a) { a.click(); return true; } return false;")
                                .await;
                            if went.as_bool().unwrap_or(false) {
                                break;
                            }
                            assert!(start.elapsed() < wait, "nothing awaited the approver");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        b.wait_for("#run-header", 10).await;
                    }
                }
            }
            i += 1;
        }
        if n == 2 {
            assert!(tasks_done >= 1, "the walkthrough did a manual task");
        }
    }
    // Where the walkthrough ends: the approver on the Audit page, which names both decisions.
    let b = browsers.get("approver").expect("the approver's browser");
    b.wait_for("table", 10).await;
    let audit = b.text("main").await;
    b.screenshot(&artifact("walkthrough-audit.png")).await;
    assert!(
        audit.contains("approver approved the start of the run"),
        "{audit}"
    );
    assert!(audit.contains("approver approved the gate"), "{audit}");
    for (_, b) in browsers {
        b.quit().await;
    }
}

#[test]
fn the_walkthrough_is_read_as_accounts_names_and_values() {
    let w = words("Log in as `operator`, open **New run**, choose `upgrade-8.11`; as `approver` press **Approve**.");
    assert_eq!(
        w,
        [
            Word::As("operator".into()),
            Word::Name("New run".into()),
            Word::Code("upgrade-8.11".into()),
            Word::As("approver".into()),
            Word::Name("Approve".into()),
        ]
    );
}
