//! TLS facts for a probe's evidence: a dedicated handshake whose verifier records the presented
//! certificate and the trust verdict (without aborting, so the facts are known even for an
//! untrusted or misnamed certificate), then closes without sending a request. The request
//! itself goes through a strictly verifying client.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Serialize;

use super::x509;
use crate::knowledge::certname::{self, NameMatch};

/// What the evidence says about a server's TLS.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsFacts {
    pub protocol: String,
    pub certificate_cn: Option<String>,
    /// The certificate's subject alternative names (DNS names and IP addresses).
    pub sans: Vec<String>,
    pub issuer: String,
    /// RFC 3339.
    pub not_before: Option<String>,
    /// RFC 3339.
    pub not_after: Option<String>,
    pub days_to_expiry: Option<i64>,
    /// The CN alone covers the host (what the guide's wording asks).
    pub cn_matches_host: bool,
    /// A SAN or the CN covers the host (what a TLS client checks: see `knowledge::certname`).
    pub names_host: bool,
    /// The key usage bits set; absent when the certificate does not restrict them.
    pub key_usage: Option<Vec<String>>,
    pub extended_key_usage: Option<Vec<String>>,
    pub self_signed: bool,
    /// The chain verifies against the configured trust anchors for this host name.
    pub trusted: bool,
    pub verify_error: Option<String>,
    /// What is wrong with the certificate itself, in words (the name it lacks, naming the CN and
    /// SANs it has; its expiry; a key not meant for a server), or why it could not be read.
    pub problems: Vec<String>,
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration that verifies strictly against `roots`.
pub fn strict_config(roots: Arc<RootCertStore>) -> Result<ClientConfig, String> {
    ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// The presented end-entity certificate (DER) and whether it verified.
type Seen = (Vec<u8>, Result<(), String>);

#[derive(Debug)]
struct Recording {
    /// `None` when no trust anchors are configured: nothing can verify.
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    seen: Mutex<Option<Seen>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = match &self.inner {
            Some(v) => v
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => Err("no trust anchors are configured for probes".to_string()),
        };
        if let Ok(mut s) = self.seen.lock() {
            *s = Some((end_entity.to_vec(), verdict));
        }
        // Recorded, not enforced: this handshake only gathers facts.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Handshakes with `addr` as `host` and reports what was presented and negotiated.
pub async fn facts(
    host: &str,
    addr: SocketAddr,
    roots: Arc<RootCertStore>,
    within: Duration,
) -> Result<TlsFacts, String> {
    let inner = if roots.is_empty() {
        None
    } else {
        Some(
            WebPkiServerVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| e.to_string())?,
        )
    };
    let recording = Arc::new(Recording {
        inner,
        provider: provider(),
        seen: Mutex::new(None),
    });
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(recording.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| format!("`{host}` is not a valid TLS server name: {e}"))?;
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("could not connect to {addr}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host} failed: {e}"))?;
        let protocol = tls
            .get_ref()
            .1
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_else(|| "unknown".into());
        Ok::<String, String>(protocol)
    };
    let protocol = tokio::time::timeout(within, handshake)
        .await
        .map_err(|_| format!("TLS handshake with {host} took longer than {within:?}"))??;
    let (der, verdict) = recording
        .seen
        .lock()
        .ok()
        .and_then(|s| s.clone())
        .ok_or_else(|| format!("{host} presented no certificate"))?;
    Ok(describe(protocol, host, &der, verdict))
}

/// The facts of the presented certificate `der`, judged for `host` now.
fn describe(protocol: String, host: &str, der: &[u8], verdict: Result<(), String>) -> TlsFacts {
    let now = time::OffsetDateTime::now_utc();
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    };
    let mut facts = TlsFacts {
        protocol,
        certificate_cn: None,
        sans: Vec::new(),
        issuer: String::new(),
        not_before: None,
        not_after: None,
        days_to_expiry: None,
        cn_matches_host: false,
        names_host: false,
        key_usage: None,
        extended_key_usage: None,
        self_signed: false,
        trusted: verdict.is_ok(),
        verify_error: verdict.err(),
        problems: Vec::new(),
    };
    let cert = match x509::read(der) {
        Ok(c) => c,
        Err(e) => {
            facts.problems.push(e);
            return facts;
        }
    };
    let naming = cert.names_host(host);
    // The guide speaks of the CN, but a client that checks only SANs (rustls, this probe's
    // request, browsers) refuses a certificate naming the host in its CN alone: say so, as the
    // request's own error will not.
    let cn_only = match &naming {
        Ok(NameMatch::Cn(_)) => Some(format!(
            "names {host} only in its CN, in no SAN (clients that check only SANs, as the probes do, refuse it: reissue it with {host} as a SAN)"
        )),
        _ => None,
    };
    facts.problems.extend(
        [
            naming.as_ref().err().cloned(),
            cn_only,
            cert.valid_at(now).err(),
            cert.serves_tls().err(),
        ]
        .into_iter()
        .flatten(),
    );
    facts.cn_matches_host = cert
        .subject_cn
        .as_deref()
        .is_some_and(|cn| certname::covers(cn, host));
    facts.names_host = naming.is_ok();
    facts.not_before = rfc3339(cert.not_before);
    facts.not_after = rfc3339(cert.not_after);
    facts.days_to_expiry = Some((cert.not_after - now).whole_days());
    facts.self_signed = cert.self_issued;
    facts.certificate_cn = cert.subject_cn;
    facts.sans = cert.sans;
    facts.issuer = cert.issuer;
    facts.key_usage = cert.key_usage;
    facts.extended_key_usage = cert.extended_key_usage;
    facts
}
