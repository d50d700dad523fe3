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

/// What the evidence says about a server's TLS.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsFacts {
    pub protocol: String,
    pub certificate_cn: Option<String>,
    pub issuer: String,
    /// RFC 3339.
    pub not_after: Option<String>,
    pub days_to_expiry: Option<i64>,
    pub cn_matches_host: bool,
    pub self_signed: bool,
    /// The chain verifies against the configured trust anchors for this host name.
    pub trusted: bool,
    pub verify_error: Option<String>,
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
    let parsed = x509::read(&der);
    let now = time::OffsetDateTime::now_utc();
    let cn = parsed.as_ref().and_then(|p| p.subject_cn.clone());
    Ok(TlsFacts {
        protocol,
        cn_matches_host: cn
            .as_deref()
            .map(|c| x509::cn_matches(c, host))
            .unwrap_or(false),
        certificate_cn: cn,
        issuer: parsed
            .as_ref()
            .map(|p| p.issuer.clone())
            .unwrap_or_default(),
        not_after: parsed.as_ref().and_then(|p| p.not_after).and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        }),
        days_to_expiry: parsed
            .as_ref()
            .and_then(|p| p.not_after)
            .map(|t| (t - now).whole_days()),
        self_signed: parsed.as_ref().map(|p| p.self_issued).unwrap_or(false),
        trusted: verdict.is_ok(),
        verify_error: verdict.err(),
    })
}
