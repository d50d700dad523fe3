//! Mutual TLS by pinned thumbprint, both ways: certificate generation (rcgen), the SHA-256
//! thumbprint, and rustls verifiers that accept exactly the pinned certificates.
//!
//! Shared by both ends of the wire, so it lives here rather than with either of them: the agent
//! presents its identity and pins the orchestrator's (`lockstep_agent::tls`), the orchestrator
//! presents its own and pins each agent's (`lockstep::executors::agent::identity`).
//!
//! There are no certificate authorities here. The agent trusts the orchestrator's certificate by
//! its thumbprint (at most two pins, so the orchestrator can rotate), and the orchestrator trusts
//! each agent by the thumbprint recorded with `lockstep agent add`. A peer whose certificate is
//! not pinned fails the handshake: no request reaches the application.
//!
//! Protocols are TLS 1.3 and 1.2 only, with ring's default suites (AEAD only: AES-GCM and
//! ChaCha20-Poly1305; no CBC, no 3DES).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::{Digest, Sha256};

/// A SHA-256 certificate thumbprint (of the DER encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Thumbprint(pub [u8; 32]);

impl Thumbprint {
    pub fn of(cert_der: &[u8]) -> Thumbprint {
        Thumbprint(Sha256::digest(cert_der).into())
    }

    /// Accepts 64 hex digits in any case, optionally separated by `:` or spaces.
    pub fn parse(s: &str) -> Result<Thumbprint, String> {
        let cleaned: String = s.chars().filter(|c| *c != ':' && *c != ' ').collect();
        let bytes = hex::decode(&cleaned).map_err(|_| {
            format!("thumbprint `{s}` is not hexadecimal (expected 64 hex digits, a SHA-256)")
        })?;
        let arr: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "thumbprint `{s}` has {} bytes; a SHA-256 thumbprint has 32 (64 hex digits)",
                b.len()
            )
        })?;
        Ok(Thumbprint(arr))
    }
}

impl std::fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode_upper(self.0))
    }
}

impl std::str::FromStr for Thumbprint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Thumbprint::parse(s)
    }
}

/// A certificate and its private key.
#[derive(Debug)]
pub struct Identity {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            cert: self.cert.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// A new ECDSA P-256 key and a self-signed certificate for `common_name`, valid ten years.
    pub fn generate(common_name: &str) -> anyhow::Result<Identity> {
        let key_pair = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec![common_name.to_string()])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&key_pair)?;
        Ok(Identity {
            cert: cert.der().clone(),
            key: PrivateKeyDer::try_from(key_pair.serialize_der())
                .map_err(|e| anyhow::anyhow!("generated key: {e}"))?,
        })
    }

    pub fn thumbprint(&self) -> Thumbprint {
        Thumbprint::of(&self.cert)
    }

    pub fn cert_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.cert)
    }

    pub fn key_pem(&self) -> String {
        pem_encode("PRIVATE KEY", self.key.secret_der())
    }

    /// Writes `<dir>/<stem>.cert.pem` and `<dir>/<stem>.key.pem` (the key readable by owner only).
    pub fn save(&self, dir: &Path, stem: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let key_path = dir.join(format!("{stem}.key.pem"));
        write_private(&key_path, self.key_pem().as_bytes())?;
        std::fs::write(dir.join(format!("{stem}.cert.pem")), self.cert_pem())?;
        Ok(())
    }

    pub fn load(dir: &Path, stem: &str) -> anyhow::Result<Identity> {
        let cert_path = dir.join(format!("{stem}.cert.pem"));
        let key_path = dir.join(format!("{stem}.key.pem"));
        let cert = CertificateDer::from_pem_file(&cert_path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", cert_path.display()))?;
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", key_path.display()))?;
        Ok(Identity { cert, key })
    }

    /// Loads the identity if both files exist, else generates and saves a new one.
    pub fn load_or_generate(dir: &Path, stem: &str, common_name: &str) -> anyhow::Result<Identity> {
        if dir.join(format!("{stem}.cert.pem")).exists() {
            return Identity::load(dir, stem);
        }
        let id = Identity::generate(common_name)?;
        id.save(dir, stem)?;
        Ok(id)
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Writes a file readable by its owner only (0600 on Unix).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        // `mode` applies only when the file is created; an older file is made private too.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)?;
    f.sync_all()
}

/// The crypto provider every Lockstep TLS endpoint uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn pinned(pins: &[Thumbprint], cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    let seen = Thumbprint::of(cert);
    // Compare every pin fully, so timing does not reveal how much of a pin matched.
    let mut ok = false;
    for pin in pins {
        let mut diff = 0u8;
        for (a, b) in pin.0.iter().zip(seen.0.iter()) {
            diff |= a ^ b;
        }
        ok |= diff == 0;
    }
    if ok {
        Ok(())
    } else {
        tracing::warn!(thumbprint = %seen, "refused a peer certificate that is not pinned");
        Err(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ))
    }
}

/// Accepts a client only if its certificate's thumbprint is pinned. Client certificates are
/// mandatory.
#[derive(Debug)]
pub struct PinnedClientVerifier {
    pins: Vec<Thumbprint>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedClientVerifier {
    pub fn new(pins: Vec<Thumbprint>) -> PinnedClientVerifier {
        PinnedClientVerifier {
            pins,
            algorithms: provider().signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for PinnedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        true
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        pinned(&self.pins, end_entity).map(|_| ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Accepts a server only if its certificate's thumbprint is pinned; no public roots, and the
/// name in the URL does not matter (the pin is the identity).
#[derive(Debug)]
pub struct PinnedServerVerifier {
    pins: Vec<Thumbprint>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedServerVerifier {
    pub fn new(pins: Vec<Thumbprint>) -> PinnedServerVerifier {
        PinnedServerVerifier {
            pins,
            algorithms: provider().signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        pinned(&self.pins, end_entity).map(|_| ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Server side: this identity, client certificates required and checked against `client_pins`.
pub fn server_config(
    identity: &Identity,
    client_pins: Vec<Thumbprint>,
) -> anyhow::Result<rustls::ServerConfig> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_client_cert_verifier(Arc::new(PinnedClientVerifier::new(client_pins)))
        .with_single_cert(vec![identity.cert.clone()], identity.key.clone_key())?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Client side: present this identity, accept only a server whose thumbprint is in `server_pins`.
pub fn client_config(
    identity: &Identity,
    server_pins: Vec<Thumbprint>,
) -> anyhow::Result<rustls::ClientConfig> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServerVerifier::new(server_pins)))
        .with_client_auth_cert(vec![identity.cert.clone()], identity.key.clone_key())?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_parse_in_any_case_with_or_without_colons() {
        let id = Identity::generate("dc1").unwrap();
        let t = id.thumbprint();
        let text = t.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(Thumbprint::parse(&text.to_lowercase()).unwrap(), t);
        let colons: Vec<String> = t.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(Thumbprint::parse(&colons.join(":")).unwrap(), t);
    }

    #[test]
    fn malformed_thumbprints_are_refused_with_a_reason() {
        assert!(Thumbprint::parse("xyz")
            .unwrap_err()
            .contains("not hexadecimal"));
        assert!(Thumbprint::parse("abcd").unwrap_err().contains("32"));
    }

    #[test]
    fn a_saved_identity_loads_back_identical() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::generate("orchestrator").unwrap();
        id.save(dir.path(), "client").unwrap();
        let back = Identity::load(dir.path(), "client").unwrap();
        assert_eq!(back.thumbprint(), id.thumbprint());
        assert_eq!(back.key.secret_der(), id.key.secret_der());
    }
}
