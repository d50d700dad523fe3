//! A crawler over the dashboard: signed in as an admin (who may see everything), it starts at `/`
//! and follows every same-origin link, `hx-get`, form `action` and `hx-post` it finds. Every page
//! answered must carry the security headers (CSP without inline script, `X-Frame-Options: DENY`,
//! `nosniff`, a referrer policy, `no-store` on pages); every cookie it is given must be `HttpOnly`,
//! `Secure`, `SameSite=Strict`; and every state-changing URL it found, posted without the CSRF
//! token, must be refused with 403 and leave the audit log and the users table as they were.

#[path = "web/app.rs"]
mod app;

use std::collections::{BTreeSet, VecDeque};

use lockstep::web::auth::{accounts, Role};

use app::spawn_app;

/// Same-origin URLs in attributes that browsers or htmx follow: (is_post, url).
fn links(page: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    for (attr, post) in [
        ("href=\"", false),
        ("hx-get=\"", false),
        ("src=\"", false),
        ("action=\"", true),
        ("hx-post=\"", true),
    ] {
        let mut rest = page;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let Some(end) = rest.find('"') else { break };
            let url = rest[..end].replace("&amp;", "&");
            if url.starts_with('/') && !url.starts_with("//") {
                out.push((post, url.split('#').next().unwrap_or("").to_string()));
            }
        }
    }
    out
}

fn check_headers(url: &str, resp: &reqwest::Response) {
    let h = resp.headers();
    let get = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{url}: no {name} header"))
            .to_string()
    };
    let csp = get("content-security-policy");
    for part in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(part), "{url}: CSP without {part}: {csp}");
    }
    for weak in ["'unsafe-inline'", "'unsafe-eval'", "*"] {
        assert!(!csp.contains(weak), "{url}: CSP allows {weak}: {csp}");
    }
    assert_eq!(get("x-frame-options"), "DENY", "{url}");
    assert_eq!(get("x-content-type-options"), "nosniff", "{url}");
    get("referrer-policy");
    let html = h
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    if html {
        assert!(
            get("cache-control").contains("no-store"),
            "{url}: pages are not cached"
        );
    }
    for cookie in h.get_all("set-cookie") {
        let c = cookie.to_str().unwrap_or_default();
        for flag in ["HttpOnly", "Secure", "SameSite=Strict"] {
            assert!(c.contains(flag), "{url}: cookie without {flag}: {c}");
        }
    }
}

#[tokio::test]
async fn every_page_reached_by_following_links_has_the_security_headers_and_every_post_needs_csrf()
{
    let app = spawn_app().await;
    let admin = app.login_as("ada", Role::Admin).await;
    app.add_user("olga", Role::Operator).await;
    let run = app.submitted_run("olga").await;

    let mut queue: VecDeque<String> =
        VecDeque::from(["/".to_string(), format!("/runs/{}", run.id)]);
    let mut seen = BTreeSet::new();
    let mut posts = BTreeSet::new();
    while let Some(url) = queue.pop_front() {
        if !seen.insert(url.clone()) || seen.len() > 400 {
            continue;
        }
        if url.starts_with("/logout") {
            continue; // a link, but it would end the crawl's session
        }
        let resp = app.get(&admin, &url).await;
        let status = resp.status().as_u16();
        assert!(status < 500, "GET {url}: {status}");
        check_headers(&url, &resp);
        let is_html = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/html"));
        if !is_html || url.contains("/events") {
            continue;
        }
        let page = resp.text().await.unwrap_or_default();
        for (post, link) in links(&page) {
            if post {
                posts.insert(link);
            } else if !seen.contains(&link) {
                queue.push_back(link);
            }
        }
    }
    println!(
        "crawled {} URLs, found {} post targets",
        seen.len(),
        posts.len()
    );
    assert!(seen.len() >= 10, "the crawl reached only {seen:?}");
    assert!(!posts.is_empty(), "no form found");

    let events_before = app.state.store.all_events().await.unwrap().len();
    let users_before = accounts::list_users(&app.state.pool).await.unwrap().len();
    for target in &posts {
        if target == "/login" {
            continue; // before a session exists there is nothing to forge
        }
        let resp = app
            .client
            .post(app.url(target))
            .header("cookie", format!("__Host-lockstep={}", admin.cookie))
            .form(&[
                ("comment", "forged"),
                ("text", "forged"),
                ("name", "mallory"),
                ("role", "admin"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            403,
            "POST {target} without a CSRF token"
        );
        check_headers(target, &resp);
        // A cross-site request with a wrong token is refused too.
        let resp = app
            .client
            .post(app.url(target))
            .header("cookie", format!("__Host-lockstep={}", admin.cookie))
            .header("x-csrf-token", "not-the-token")
            .header("sec-fetch-site", "cross-site")
            .form(&[("comment", "forged")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 403, "cross-site POST {target}");
    }
    assert_eq!(
        app.state.store.all_events().await.unwrap().len(),
        events_before,
        "a forged post wrote an event"
    );
    assert_eq!(
        accounts::list_users(&app.state.pool).await.unwrap().len(),
        users_before,
        "a forged post changed users"
    );
}
