//! `lockstep serve` as a process picks up the enterprise settings from its configuration file
//! and environment: the `[oidc]` table puts the single sign-on button on the login page (and a
//! provider that is not there is reported, while local logins go on), and a metrics token
//! closes `/metrics` to anyone without it.

mod serve_process;

use serve_process::Serve;

/// Starts `lockstep serve` on a free loopback port with `config` as its file.
fn serve(config: &str, env: &[(&str, &str)]) -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lockstep.toml");
    std::fs::write(&file, config).unwrap();
    let mut cmd = serve_process::command(dir.path());
    cmd.arg("--config").arg(&file).envs(env.iter().copied());
    serve_process::start(cmd, dir)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_oidc_table_offers_single_sign_on_and_a_missing_provider_is_reported() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let s = serve(
        &format!(
            "[oidc]\nissuer = \"{issuer}\"\nclient_id = \"lockstep\"\n\
             redirect_url = \"http://127.0.0.1:1/login/sso/callback\"\n\
             button_label = \"Sign in with Contoso\"\n\
             [[oidc.role]]\nvalue = \"dc-admins\"\nrole = \"admin\"\n"
        ),
        &[("LOCKSTEP_OIDC_CLIENT_SECRET", "from the environment")],
    );
    let page = client()
        .get(format!("{}/login", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Sign in with Contoso"), "{page}");
    let sso = client()
        .get(format!("{}/login/sso", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(sso.status(), 502);
    assert!(sso.text().await.unwrap().contains("did not answer"));
}

#[tokio::test]
async fn without_oidc_there_is_no_button_and_no_sso_route() {
    let s = serve("", &[]);
    let page = client()
        .get(format!("{}/login", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("/login/sso"), "{page}");
    let sso = client()
        .get(format!("{}/login/sso", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(sso.status(), 404);
}

#[tokio::test]
async fn a_metrics_token_closes_metrics_to_anyone_without_it() {
    let open = serve("", &[]);
    let r = client()
        .get(format!("{}/metrics", open.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "open on a loopback listener without a token"
    );

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("metrics-token");
    std::fs::write(&token_file, "scrape-me-if-you-can-123\n").unwrap();
    let closed = serve(
        &format!("[metrics]\ntoken_file = \"{}\"\n", token_file.display()),
        &[],
    );
    let url = format!("{}/metrics", closed.base);
    assert_eq!(client().get(&url).send().await.unwrap().status(), 401);
    let r = client()
        .get(&url)
        .bearer_auth("scrape-me-if-you-can-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("# TYPE lockstep_runs gauge"));
}
