//! The change record (run report) names the run's change ticket, and links it into the
//! change-management system when `notify.ticket_url` is set.

#[path = "web/app.rs"]
mod app;

use lockstep::web::auth::Role;

use app::spawn_app;

#[tokio::test]
async fn the_change_record_links_the_ticket_when_a_template_is_configured() {
    let app = spawn_app().await;
    let olga = app.login_as("olga", Role::Operator).await;
    let run = app.create_run("olga", "DC1", "ok").await;

    let plain = app
        .get(&olga, &format!("/runs/{}/report", run.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        plain.contains("<dd id=\"change-ticket\">CHG-1001</dd>"),
        "{plain}"
    );

    // The same application with a link template.
    let state = app.state.clone().with_ticket_url(Some(
        "https://itsm.corp.example/change?number={ticket}".into(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = lockstep::web::router(state);
    tokio::spawn(async move {
        let _ = lockstep::web::serve(listener, router, None, std::future::pending()).await;
    });
    let linked = app
        .client
        .get(format!("{base}/runs/{}/report", run.id))
        .header("cookie", format!("__Host-lockstep={}", olga.cookie))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        linked.contains(
            "<a href=\"https://itsm.corp.example/change?number&#61;CHG-1001\" rel=\"noreferrer\">CHG-1001</a>"
        ) || linked.contains(
            "<a href=\"https://itsm.corp.example/change?number=CHG-1001\" rel=\"noreferrer\">CHG-1001</a>"
        ),
        "{linked}"
    );
}
