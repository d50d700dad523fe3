//! Answers bound to their question: a pinned agent over real mutual TLS that answers for another
//! action id, with evidence another action produces, or with a huge body is not believed —
//! `AgentClient::drive` ends as outcome unknown with the reason (the executor turns that into a
//! step `outcome_unknown`), never as succeeded.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use lockstep_agent::client::{AgentClient, Driven, MAX_ANSWER_BYTES};
use lockstep_agent::tls::{server_config, Identity};
use lockstep_protocol::{
    Action, ActionId, ActionRequest, ActionState, Evidence, ServiceSelector, StatusResponse,
    PROTOCOL_VERSION,
};
use tokio_rustls::TlsAcceptor;

/// A pinned fake agent answering every start and status with `body`; returns a client for it.
async fn fake_agent(me: &Identity, body: Arc<Vec<u8>>) -> AgentClient {
    let agent = Identity::generate("agent").unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(
        server_config(&agent, vec![me.thumbprint()]).unwrap(),
    ));
    let answer = move || {
        let body = body.clone();
        async move {
            Response::builder()
                .header("content-type", "application/json")
                .body(Body::from(body.as_ref().clone()))
                .unwrap()
        }
    };
    let app = Router::new()
        .route("/v1/actions", post(answer.clone()))
        .route("/v1/actions/status", post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
            });
        }
    });
    AgentClient::new(
        &format!("https://{addr}"),
        me,
        agent.thumbprint(),
        Duration::from_secs(5),
    )
    .unwrap()
}

fn request(id: &str, action: Action) -> ActionRequest {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    ActionRequest::new(ActionId::new(id).unwrap(), action, now, 300)
}

fn answer(id: &str, evidence: Evidence) -> Arc<Vec<u8>> {
    Arc::new(
        serde_json::to_vec(&StatusResponse {
            protocol: PROTOCOL_VERSION,
            id: ActionId::new(id).unwrap(),
            state: ActionState::Succeeded { evidence },
            replayed: false,
            cancellable: false,
            log: Vec::new(),
            log_from: 0,
        })
        .unwrap(),
    )
}

fn stop() -> Action {
    Action::ServicesStop {
        services: ServiceSelector::Connected,
        timeout_secs: 60,
    }
}

/// Drives `req` against the fake; it must end unknown (never finished) with a reason naming `why`.
async fn assert_unknown(client: &AgentClient, req: &ActionRequest, why: &str) {
    match client.drive(req, Duration::from_secs(3)).await {
        Driven::Unknown { reason } => assert!(reason.contains(why), "{reason}"),
        other => panic!("an answer to another question was believed: {other:?}"),
    }
}

#[tokio::test]
async fn a_result_for_another_action_id_leaves_the_action_unknown() {
    let me = Identity::generate("orchestrator").unwrap();
    let client = fake_agent(
        &me,
        answer(
            "run/other@dc1/1",
            Evidence::IisReset {
                output: "ok".into(),
            },
        ),
    )
    .await;
    let req = request("run/reset@dc1/1", Action::IisReset {});
    assert_unknown(
        &client,
        &req,
        "asked about action run/reset@dc1/1, the agent answered about run/other@dc1/1",
    )
    .await;
    // The status path (reconciliation after a crash) is bound to its id too.
    let s = client.status(&req.id, Duration::ZERO, 0).await;
    assert!(s.is_err(), "{s:?}");
}

#[tokio::test]
async fn evidence_of_another_kind_leaves_the_action_unknown() {
    let me = Identity::generate("orchestrator").unwrap();
    let version = Evidence::ProductVersion {
        version: Some("8.11".into()),
        component: None,
    };
    let client = fake_agent(&me, answer("run/stop@dc1/1", version)).await;
    assert_unknown(
        &client,
        &request("run/stop@dc1/1", stop()),
        "services_stop action, which produces services evidence; the agent answered with product_version evidence",
    )
    .await;
}

#[tokio::test]
async fn a_huge_answer_is_not_read_and_leaves_the_action_unknown() {
    let me = Identity::generate("orchestrator").unwrap();
    let mut huge = br#"{"protocol":1,"id":"run/stop@dc1/1","state":"succeeded","x":""#.to_vec();
    huge.resize(MAX_ANSWER_BYTES * 8, b'a');
    huge.extend_from_slice(b"\"}");
    let client = fake_agent(&me, Arc::new(huge)).await;
    assert_unknown(
        &client,
        &request("run/stop@dc1/1", stop()),
        &format!("larger than {MAX_ANSWER_BYTES} bytes"),
    )
    .await;
}
