//! The probe runner against the simulator's IIS endpoints over real TLS: each probe's verdict and
//! the evidence the run page shows (status, latency, matched text, TLS facts).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lockstep::engine::executor::{Dispatch, Executor, IdempotencyKey, Outcome};
use lockstep::executors::probe::{ProbeConfig, ProbeExecutor};
use lockstep::knowledge::operation::{Operation, ProbeOperation};
use lockstep_simulator::certs::SimCa;
use lockstep_simulator::iis::{FixedHost, HostSnapshot, WebEndpoint, WebFaults, WebSpec};
use serde_json::Value;

const HOST: &str = "web1.contoso.local";

struct Site {
    ep: WebEndpoint,
    host: Arc<FixedHost>,
    probes: ProbeExecutor,
}

async fn site(trusted: bool, version: &str) -> Site {
    let ca = SimCa::new("Contoso Issuing CA").unwrap();
    let host = Arc::new(FixedHost::default());
    *host.0.lock().unwrap() = HostSnapshot {
        version: Some(version.into()),
        iis_running: true,
        registry: Some("DC1".into()),
    };
    let spec = WebSpec {
        name: "WEB1".into(),
        fqdn: HOST.into(),
        certificate_cn: Some(HOST.into()),
        trusted,
        support_center: true,
        datatransfer: true,
        management_api: true,
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ep = WebEndpoint::start(l, spec, &ca, host.clone()).unwrap();
    let probes = ProbeExecutor::new(ProbeConfig {
        trusted_pem: vec![ca.pem()],
        resolve: BTreeMap::from([(HOST.to_string(), ep.addr)]),
        timeout: Some(Duration::from_secs(10)),
    })
    .unwrap();
    Site { ep, host, probes }
}

fn support_center(expect: &str) -> ProbeOperation {
    ProbeOperation::SupportCenter {
        url: format!("https://{HOST}/SupportCenter/"),
        expect_version: expect.into(),
    }
}

fn status_probe() -> ProbeOperation {
    ProbeOperation::DataTransferStatus {
        url: format!("https://{HOST}/ose/OutflowServiceExtension.dll/status"),
    }
}

fn management_probe() -> ProbeOperation {
    ProbeOperation::ManagementService {
        url: format!("https://{HOST}:443/ManagementAPI/ManagementService.svc"),
    }
}

async fn run(s: &Site, op: ProbeOperation) -> Outcome {
    s.probes.probe(&op, Duration::from_secs(10)).await
}

fn evidence(o: &Outcome) -> &Value {
    match o {
        Outcome::Succeeded { evidence } | Outcome::Failed { evidence, .. } => evidence,
        Outcome::Unknown { reason } => panic!("unknown outcome: {reason}"),
        Outcome::NeedsPerson { reason, .. } => panic!("handed to a person: {reason}"),
    }
}

fn message(o: &Outcome) -> &str {
    match o {
        Outcome::Failed { message, .. } => message,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn the_installed_version_at_the_bottom_of_support_center_passes() {
    let s = site(true, "8.11.0.0").await;
    let o = run(&s, support_center("8.11")).await;
    assert!(matches!(o, Outcome::Succeeded { .. }), "{o:?}");
    let e = evidence(&o);
    assert_eq!(e["status"], 200);
    assert_eq!(e["found_version"], "8.11.0.0");
    assert_eq!(e["matched"], "Version 8.11.0.0");
    assert!(e["latency_ms"].is_u64());
    let tls = &e["tls"];
    assert_eq!(tls["certificate_cn"], HOST);
    assert_eq!(tls["cn_matches_host"], true);
    assert_eq!(tls["trusted"], true);
    assert_eq!(tls["self_signed"], false);
    assert!(
        tls["issuer"]
            .as_str()
            .unwrap()
            .contains("CN=Contoso Issuing CA"),
        "{tls}"
    );
    assert!(
        tls["protocol"].as_str().unwrap().starts_with("TLSv1_"),
        "{tls}"
    );
    assert!(tls["days_to_expiry"].as_i64().unwrap() > 300, "{tls}");
}

#[tokio::test]
async fn an_old_version_fails_and_says_which_it_found() {
    let s = site(true, "8.8.6").await;
    let o = run(&s, support_center("8.11")).await;
    assert_eq!(
        message(&o),
        format!(
            "Support Center at https://{HOST}/SupportCenter/ shows version 8.8.6, expected 8.11"
        )
    );
    assert_eq!(evidence(&o)["found_version"], "8.8.6");
}

#[tokio::test]
async fn a_stale_page_is_caught_even_when_setup_completed() {
    let s = site(true, "8.11").await;
    s.ep.set_faults(WebFaults {
        shown_version: Some("8.8.6".into()),
        ..Default::default()
    });
    let o = run(&s, support_center("8.11")).await;
    assert_eq!(evidence(&o)["found_version"], "8.8.6", "{o:?}");
}

#[tokio::test]
async fn well_formed_status_xml_passes_and_a_truncated_one_fails() {
    let s = site(true, "8.11").await;
    let o = run(&s, status_probe()).await;
    assert!(matches!(o, Outcome::Succeeded { .. }), "{o:?}");
    assert_eq!(evidence(&o)["xml_root"], "OutflowServiceExtension");

    s.ep.set_faults(WebFaults {
        status_not_xml: true,
        ..Default::default()
    });
    let o = run(&s, status_probe()).await;
    assert!(message(&o).contains("is not well-formed XML"), "{o:?}");
    assert!(evidence(&o)["xml_error"].as_str().is_some());
    assert_eq!(evidence(&o)["status"], 200);
}

#[tokio::test]
async fn the_management_page_must_begin_you_have_created_a() {
    let s = site(true, "8.11").await;
    let o = run(&s, management_probe()).await;
    assert_eq!(
        evidence(&o)["matched"],
        "You have created a service.",
        "{o:?}"
    );

    s.ep.set_faults(WebFaults {
        management_text: Some(
            "The server was unable to process the request due to an internal error.".into(),
        ),
        ..Default::default()
    });
    let o = run(&s, management_probe()).await;
    assert!(
        message(&o).contains("begins \"The server was unable"),
        "{o:?}"
    );
    assert_eq!(
        evidence(&o)["first_sentence"],
        "The server was unable to process the request due to an internal error."
    );
}

#[tokio::test]
async fn a_certificate_naming_another_host_fails_with_the_cn_in_evidence() {
    let s = site(true, "8.11").await;
    s.ep.set_faults(WebFaults {
        cert_cn_mismatch: true,
        ..Default::default()
    });
    let o = run(&s, support_center("8.11")).await;
    assert!(matches!(o, Outcome::Failed { .. }), "{o:?}");
    let tls = &evidence(&o)["tls"];
    assert_eq!(tls["certificate_cn"], format!("not-{HOST}"));
    assert_eq!(tls["cn_matches_host"], false);
    assert_eq!(tls["trusted"], false);
    assert!(
        tls["verify_error"]
            .as_str()
            .unwrap()
            .contains("certificate not valid for name"),
        "{tls}"
    );
}

#[tokio::test]
async fn a_self_signed_certificate_is_reported_untrusted() {
    let s = site(false, "8.11").await;
    let o = run(&s, management_probe()).await;
    assert!(matches!(o, Outcome::Failed { .. }), "{o:?}");
    let tls = &evidence(&o)["tls"];
    assert_eq!(tls["self_signed"], true);
    assert_eq!(tls["trusted"], false);
    assert_eq!(tls["cn_matches_host"], true);
    assert_eq!(tls["issuer"], format!("CN={HOST}"));
    assert!(
        tls["verify_error"]
            .as_str()
            .unwrap()
            .contains("UnknownIssuer"),
        "{tls}"
    );
}

#[tokio::test]
async fn a_closed_port_is_connection_refused() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let probes = ProbeExecutor::new(ProbeConfig {
        trusted_pem: vec![],
        resolve: BTreeMap::from([(HOST.to_string(), addr)]),
        timeout: Some(Duration::from_secs(5)),
    })
    .unwrap();
    let o = probes
        .probe(&support_center("8.11"), Duration::from_secs(5))
        .await;
    assert!(
        message(&o)
            .to_ascii_lowercase()
            .contains("connection refused"),
        "{o:?}"
    );
    assert!(evidence(&o)["error"]
        .as_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("refused"));
}

#[tokio::test]
async fn stopped_iis_answers_503_and_the_probe_fails() {
    let s = site(true, "8.11").await;
    s.host.0.lock().unwrap().iis_running = false;
    let o = run(&s, status_probe()).await;
    assert!(
        message(&o).ends_with("answered HTTP 503 Service Unavailable"),
        "{o:?}"
    );
    assert_eq!(evidence(&o)["status"], 503);
}

#[tokio::test]
async fn a_repeated_key_answers_the_recorded_outcome_without_probing_again() {
    let s = site(true, "8.11").await;
    let d = Dispatch {
        key: IdempotencyKey {
            run_id: "r".into(),
            step_id: "verify-sc".into(),
            attempt: 1,
        },
        host: None,
        operation: Operation::Probe(support_center("8.11")),
        timeout_secs: 10,
    };
    let first = s.probes.execute(&d).await;
    assert!(matches!(first, Outcome::Succeeded { .. }));
    s.host.0.lock().unwrap().version = Some("8.8.6".into());
    assert_eq!(s.probes.execute(&d).await, first);
}

#[test]
fn a_trust_anchor_that_is_not_pem_is_refused_by_name() {
    let e = ProbeExecutor::new(ProbeConfig {
        trusted_pem: vec!["hello".into()],
        ..Default::default()
    })
    .err()
    .unwrap();
    assert_eq!(
        e.to_string(),
        "trusted certificate #0 is not a PEM certificate: no CERTIFICATE block found"
    );
}
