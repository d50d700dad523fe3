//! Accounts, sessions, CSRF and security headers.

use lockstep::web::auth::{accounts, Role};

use crate::app::{session_from, spawn_app, PASSWORD};

fn set_cookies(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn login_sets_a_host_only_secure_httponly_strict_cookie() {
    let app = spawn_app().await;
    app.add_user("ann", Role::Viewer).await;
    let resp = app
        .client
        .post(app.url("/login"))
        .form(&[("name", "ann"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let cookie = set_cookies(&resp)
        .into_iter()
        .find(|c| c.starts_with("__Host-lockstep="))
        .expect("session cookie");
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    let id = session_from(&resp).unwrap();
    assert!(id.len() >= 43, "session id has at least 256 bits: {id}");
}

#[tokio::test]
async fn a_wrong_password_is_refused_without_a_session() {
    let app = spawn_app().await;
    app.add_user("ann", Role::Viewer).await;
    let resp = app
        .client
        .post(app.url("/login"))
        .form(&[("name", "ann"), ("password", "wrong password!")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(session_from(&resp).is_none());
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("wrong account name or password"));
}

#[tokio::test]
async fn login_never_keeps_a_session_id_the_browser_brought() {
    let app = spawn_app().await;
    let first = app.login_as("ann", Role::Viewer).await;
    // A planted (or earlier) id is presented at login: the answer is a different id, and the
    // presented one no longer works.
    let resp = app
        .client
        .post(app.url("/login"))
        .header("cookie", format!("__Host-lockstep={}", first.cookie))
        .form(&[("name", "ann"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let second = session_from(&resp).expect("new session");
    assert_ne!(second, first.cookie);
    assert_eq!(
        app.get(&first, "/runs").await.status(),
        303,
        "old id must be dead"
    );
    assert_eq!(app.get_as(&second, "/runs").await.status(), 200);
}

#[tokio::test]
async fn logout_ends_the_session_on_the_server() {
    let app = spawn_app().await;
    let s = app.login_as("ann", Role::Viewer).await;
    let resp = app.post(&s, "/logout", &[]).await;
    assert_eq!(resp.status(), 303);
    assert!(set_cookies(&resp).iter().any(|c| c.contains("Max-Age=0")));
    let again = app.get(&s, "/runs").await;
    assert_eq!(again.status(), 303);
    assert_eq!(again.headers()["location"], "/login");
}

#[tokio::test]
async fn logout_is_not_possible_with_a_get() {
    let app = spawn_app().await;
    let s = app.login_as("ann", Role::Viewer).await;
    assert_eq!(app.get(&s, "/logout").await.status(), 405);
    assert_eq!(
        app.get(&s, "/runs").await.status(),
        200,
        "session still alive"
    );
}

#[tokio::test]
async fn a_state_change_without_the_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.login_as("root", Role::Admin).await;
    let no_token = app
        .client
        .post(app.url("/users"))
        .header("cookie", format!("__Host-lockstep={}", admin.cookie))
        .form(&[
            ("name", "mallory"),
            ("role", "admin"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 403);
    let wrong_token = app
        .client
        .post(app.url("/users"))
        .header("cookie", format!("__Host-lockstep={}", admin.cookie))
        .header("x-csrf-token", "not-the-token")
        .form(&[
            ("name", "mallory"),
            ("role", "admin"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_token.status(), 403);
    assert!(accounts::find_user(&app.state.pool, "mallory")
        .await
        .unwrap()
        .is_none());
    // With the token (form field, as without JavaScript) the same request works.
    let ok = app
        .post(
            &admin,
            "/users",
            &[
                ("name", "mallory"),
                ("role", "viewer"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(ok.status(), 303);
    assert!(accounts::find_user(&app.state.pool, "mallory")
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_cross_origin_post_is_refused_even_with_the_token() {
    let app = spawn_app().await;
    let admin = app.login_as("root", Role::Admin).await;
    let resp = app
        .client
        .post(app.url("/users"))
        .header("cookie", format!("__Host-lockstep={}", admin.cookie))
        .header("origin", "https://evil.example")
        .header("x-csrf-token", &admin.csrf)
        .form(&[
            ("name", "mallory"),
            ("role", "viewer"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(accounts::find_user(&app.state.pool, "mallory")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn an_idle_session_ends_and_so_does_an_old_one() {
    let app = spawn_app().await;
    let s = app.login_as("ann", Role::Viewer).await;
    app.clock.advance(1700);
    assert_eq!(
        app.get(&s, "/runs").await.status(),
        200,
        "active within the idle limit"
    );
    app.clock.advance(1801);
    assert_eq!(app.get(&s, "/runs").await.status(), 303, "idle too long");

    let t = app.login("ann").await;
    for _ in 0..30 {
        app.clock.advance(1500);
        if app.get(&t, "/runs").await.status() != 200 {
            break;
        }
    }
    let lived = app.clock.now();
    assert_eq!(
        app.get(&t, "/runs").await.status(),
        303,
        "absolute limit reached by {lived}"
    );
}

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_and_tokens() {
    let app = spawn_app().await;
    let admin = app.login_as("root", Role::Admin).await;
    let bob = app.login_as("bob", Role::Operator).await;
    let user = accounts::find_user(&app.state.pool, "bob")
        .await
        .unwrap()
        .unwrap();
    let token = accounts::create_token(&app.state.pool, user.id, "ci", app.clock.now())
        .await
        .unwrap();
    let api = |t: String| app.client.get(app.url("/api/v1/me")).bearer_auth(t).send();
    assert_eq!(api(token.clone()).await.unwrap().status(), 200);
    assert_eq!(
        app.post(&admin, "/users/bob/disable", &[]).await.status(),
        303
    );
    assert_eq!(app.get(&bob, "/runs").await.status(), 303);
    assert_eq!(
        accounts::session_count(&app.state.pool, user.id)
            .await
            .unwrap(),
        0
    );
    assert_eq!(api(token).await.unwrap().status(), 401);
    let relogin = app
        .client
        .post(app.url("/login"))
        .form(&[("name", "bob"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(relogin.status(), 401);
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled_even_with_the_right_password_after() {
    let app = spawn_app().await;
    app.add_user("ann", Role::Viewer).await;
    for _ in 0..5 {
        let r = app
            .client
            .post(app.url("/login"))
            .form(&[("name", "ann"), ("password", "guess guess")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = app
        .client
        .post(app.url("/login"))
        .form(&[("name", "ann"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(session_from(&r).is_none());
    app.clock.advance(901);
    let r = app
        .client
        .post(app.url("/login"))
        .form(&[("name", "ann"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn a_common_or_short_password_is_refused_when_adding_a_user() {
    let app = spawn_app().await;
    let admin = app.login_as("root", Role::Admin).await;
    for (pw, says) in [("password123", "commonly chosen"), ("short", "too short")] {
        let r = app
            .post(
                &admin,
                "/users",
                &[("name", "carl"), ("role", "viewer"), ("password", pw)],
            )
            .await;
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains(says));
    }
    assert!(accounts::find_user(&app.state.pool, "carl")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn security_headers_are_on_pages_errors_404s_and_static_files() {
    let app = spawn_app().await;
    let s = app.login_as("ann", Role::Viewer).await;
    for (path, status) in [
        ("/runs", 200),
        ("/no/such/page", 404),
        ("/users", 403),
        ("/static/app.css", 200),
        ("/login", 303),
        ("/api/v1/nothing", 404),
    ] {
        let r = app.get(&s, path).await;
        assert_eq!(r.status(), status, "{path}");
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(
            h.get("strict-transport-security").is_none(),
            "no HSTS over plain HTTP"
        );
    }
}

#[tokio::test]
async fn pages_have_no_inline_script_or_style() {
    let app = spawn_app().await;
    let s = app.login_as("ann", Role::Admin).await;
    for path in ["/", "/runs", "/users", "/account", "/login"] {
        let body = app.get(&s, path).await.text().await.unwrap();
        for bad in ["<script>", "style=", "onclick", "onload", "javascript:"] {
            assert!(!body.contains(bad), "{path} contains {bad}");
        }
    }
}

#[tokio::test]
async fn an_htmx_request_without_a_session_is_told_to_go_to_the_login_page() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/runs"))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["hx-redirect"], "/login");
}
