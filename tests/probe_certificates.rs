//! The probes' certificate facts over real TLS: a small HTTPS server presents certificates made
//! by `rcgen` under a CA the probes trust, and the probe runner reads them — the name the client
//! connects to (the FQDN) found in a SAN, in the CN only, in a wildcard, or nowhere; an expired
//! certificate; one whose key is meant for clients. See `knowledge::certname` for the rule.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lockstep::engine::executor::Outcome;
use lockstep::executors::probe::{ProbeConfig, ProbeExecutor};
use lockstep::knowledge::operation::ProbeOperation;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::Value;
use time::{Duration as Span, OffsetDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FQDN: &str = "dt1.contoso.local";

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "Contoso Issuing CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// Serves `<status/>` over TLS with a leaf signed by `ca`, subject CN `cn` and SANs `sans`,
/// tweaked by `edit`.
async fn serve(
    ca: &Ca,
    cn: &str,
    sans: &[&str],
    edit: impl FnOnce(&mut CertificateParams),
) -> SocketAddr {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = OffsetDateTime::now_utc() - Span::days(30);
    p.not_after = OffsetDateTime::now_utc() + Span::days(365);
    edit(&mut p);
    let leaf = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A refused handshake (the probe's strict client) is the point of some tests.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = "<status/>";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

async fn probe(ca: &Ca, addr: SocketAddr) -> Outcome {
    let probes = ProbeExecutor::new(ProbeConfig {
        trusted_pem: vec![ca.cert.pem()],
        resolve: BTreeMap::from([(FQDN.to_string(), addr)]),
        timeout: Some(Duration::from_secs(10)),
    })
    .unwrap();
    let op = ProbeOperation::DataTransferStatus {
        url: format!("https://{FQDN}/ose/OutflowServiceExtension.dll/status"),
    };
    probes.probe(&op, Duration::from_secs(10)).await
}

fn tls(o: &Outcome) -> &Value {
    match o {
        Outcome::Succeeded { evidence } | Outcome::Failed { evidence, .. } => &evidence["tls"],
        other => panic!("no evidence: {other:?}"),
    }
}

fn failure(o: &Outcome) -> &str {
    match o {
        Outcome::Failed { message, .. } => message,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn problems(o: &Outcome) -> Vec<String> {
    tls(o)["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_certificate_naming_the_fqdn_only_in_a_san_passes_though_its_cn_differs() {
    let ca = ca();
    let addr = serve(&ca, "DT1", &[FQDN], |_| {}).await;
    let o = probe(&ca, addr).await;
    assert!(matches!(o, Outcome::Succeeded { .. }), "{o:?}");
    let t = tls(&o);
    assert_eq!(t["certificate_cn"], "DT1");
    assert_eq!(t["sans"], serde_json::json!([FQDN]));
    assert_eq!(t["cn_matches_host"], false);
    assert_eq!(t["names_host"], true);
    assert_eq!(t["trusted"], true);
    assert_eq!(t["issuer"], "CN=Contoso Issuing CA");
    assert!(problems(&o).is_empty(), "{t}");
}

#[tokio::test]
async fn a_certificate_naming_neither_fails_naming_its_cn_and_its_sans() {
    let ca = ca();
    let addr = serve(&ca, "DT2", &["dt2.contoso.local", "10.0.0.9"], |_| {}).await;
    let o = probe(&ca, addr).await;
    let m = failure(&o);
    assert!(
        m.contains(
            "the certificate names neither dt1.contoso.local in its CN (DT2) nor in its SANs (dt2.contoso.local, 10.0.0.9)"
        ),
        "{m}"
    );
    let t = tls(&o);
    assert_eq!(t["names_host"], false);
    assert_eq!(t["trusted"], false);
}

#[tokio::test]
async fn a_wildcard_san_covering_the_fqdn_passes() {
    let ca = ca();
    let addr = serve(&ca, "Contoso web", &["*.contoso.local"], |_| {}).await;
    let o = probe(&ca, addr).await;
    assert!(matches!(o, Outcome::Succeeded { .. }), "{o:?}");
    assert_eq!(tls(&o)["names_host"], true);
}

#[tokio::test]
async fn a_certificate_naming_the_fqdn_in_its_cn_alone_is_refused_and_the_evidence_says_why() {
    let ca = ca();
    let addr = serve(&ca, FQDN, &[], |_| {}).await;
    let o = probe(&ca, addr).await;
    let m = failure(&o);
    assert!(
        m.contains("names dt1.contoso.local only in its CN, in no SAN"),
        "{m}"
    );
    let t = tls(&o);
    assert_eq!(t["cn_matches_host"], true);
    assert_eq!(t["sans"], serde_json::json!([]));
}

#[tokio::test]
async fn an_expired_certificate_fails_saying_so() {
    let ca = ca();
    let addr = serve(&ca, FQDN, &[FQDN], |p| {
        p.not_before = OffsetDateTime::now_utc() - Span::days(400);
        p.not_after = OffsetDateTime::now_utc() - Span::days(3);
    })
    .await;
    let o = probe(&ca, addr).await;
    let m = failure(&o);
    assert!(m.contains("the certificate expired 3 days ago"), "{m}");
    assert!(tls(&o)["days_to_expiry"].as_i64().unwrap() < 0);
}

#[tokio::test]
async fn a_certificate_for_client_authentication_only_fails_naming_its_usage() {
    let ca = ca();
    let addr = serve(&ca, FQDN, &[FQDN], |p| {
        p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    })
    .await;
    let o = probe(&ca, addr).await;
    let m = failure(&o);
    assert!(
        m.contains("its extended key usage (clientAuth) does not include serverAuth"),
        "{m}"
    );
    assert_eq!(
        tls(&o)["extended_key_usage"],
        serde_json::json!(["clientAuth"])
    );
}
