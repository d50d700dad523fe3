//! HTTPS: the dashboard serves TLS itself with a given certificate (and then sends HSTS); plain
//! HTTP is refused on any address but loopback.

use lockstep::startup::{Application, Options};

#[test]
fn plain_http_is_allowed_only_on_loopback() {
    use lockstep::web::tls::check_plain_http_allowed;
    assert!(check_plain_http_allowed(&"127.0.0.1:8080".parse().unwrap()).is_ok());
    assert!(check_plain_http_allowed(&"[::1]:8080".parse().unwrap()).is_ok());
    let err = check_plain_http_allowed(&"0.0.0.0:8080".parse().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("--tls-cert"), "{err}");
}

#[tokio::test]
async fn the_dashboard_serves_https_with_hsts_when_given_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();

    let mut settings = crate::app::settings(dir.path());
    settings.server.tls = Some(lockstep::config::TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
    });
    let app = Application::build(
        settings,
        Options::test(
            lockstep::engine::Router::new(),
            std::sync::Arc::new(lockstep::engine::clock::TokioClock::new()),
            false,
        ),
    )
    .await
    .unwrap();
    let port = app.port();
    assert!(app.url().starts_with("https://"), "{}", app.url());
    tokio::spawn(app.run_until_stopped(std::future::pending()));

    let root = reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let r = client
        .get(format!("https://localhost:{port}/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    assert!(r.headers().contains_key("content-security-policy"));

    // A client that does not trust the certificate gets no answer at all.
    let untrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(untrusting
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .is_err());

    // A certificate without a usable key is refused with a message.
    std::fs::write(&key, "not a key").unwrap();
    let err = lockstep::web::tls::server_config(&cert, &key)
        .unwrap_err()
        .to_string();
    assert!(err.contains("key"), "{err}");
}
