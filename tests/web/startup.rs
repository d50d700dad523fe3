//! The one start-up (`lockstep::startup`): the application built for serve, demo and the tests
//! serves on the port it bound and, when its injected shutdown completes, stops serving and ends
//! every task it started.

use std::sync::Arc;
use std::time::Duration;

use lockstep::engine::journal::JournalExecutor;
use lockstep::engine::Router;
use lockstep::startup::{Application, Options};

#[tokio::test]
async fn the_application_stops_when_its_shutdown_completes_and_ends_every_task_it_started() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Every background part on: driver, chain guard and checkpoints, facts collector.
    let mut options = Options::test(
        Router::all(Arc::new(JournalExecutor::in_memory())),
        std::sync::Arc::new(lockstep::engine::clock::TokioClock::new()),
        true,
    );
    options.collect_facts = true;
    options.guard_chain = true;
    let app = Application::build(crate::app::settings(dir.path()), options)
        .await
        .expect("the app builds");
    assert_ne!(
        app.port(),
        0,
        "port 0 asks for a free port; the bound one is reported"
    );
    let health = format!("{}/healthz", app.url());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));

    let answer = reqwest::get(&health).await.expect("the app answers");
    assert_eq!(answer.status(), 200);
    drop(answer);

    stop.send(()).expect("the app is still running");
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the app and every task it started end within 20 s of the shutdown")
        .expect("the app's task")
        .expect("a clean stop");
    assert!(
        reqwest::get(&health).await.is_err(),
        "nothing listens on the port once the app has stopped"
    );
}
