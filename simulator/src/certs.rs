//! Certificates for the simulated IIS endpoints: a simulator CA that probes can be told to
//! trust (the inventory's `trusted-ca` issuer), CA-signed server certificates, and self-signed
//! ones (`self-signed`).

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

#[derive(Debug, thiserror::Error)]
#[error("certificate generation failed: {0}")]
pub struct CertError(String);

impl From<rcgen::Error> for CertError {
    fn from(e: rcgen::Error) -> Self {
        CertError(e.to_string())
    }
}

/// A server certificate and its key, ready for rustls.
pub struct ServerCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// The leaf certificate, PEM (what a site would import to trust a self-signed one).
    pub leaf_pem: String,
}

impl Clone for ServerCert {
    fn clone(&self) -> Self {
        ServerCert {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            leaf_pem: self.leaf_pem.clone(),
        }
    }
}

/// The simulated site CA.
pub struct SimCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn validity(p: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(365);
}

impl SimCa {
    pub fn new(name: &str) -> Result<SimCa, CertError> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, name);
        p.distinguished_name
            .push(DnType::OrganizationName, "Lockstep simulated Data Center");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut p);
        let cert = p.self_signed(&key)?;
        Ok(SimCa { cert, key })
    }

    /// The CA certificate, PEM: what a probe is told to trust.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A server certificate with subject CN `cn` and `cn` as its DNS name, signed by this CA.
    pub fn issue(&self, cn: &str) -> Result<ServerCert, CertError> {
        let key = KeyPair::generate()?;
        let cert = leaf_params(cn)?.signed_by(&key, &self.cert, &self.key)?;
        Ok(ServerCert {
            chain: vec![cert.der().clone(), self.der()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            leaf_pem: cert.pem(),
        })
    }
}

fn leaf_params(cn: &str) -> Result<CertificateParams, CertError> {
    let mut p = CertificateParams::new(vec![cn.to_string()])?;
    p.distinguished_name.push(DnType::CommonName, cn);
    validity(&mut p);
    Ok(p)
}

/// A self-signed server certificate for `cn` (IIS's "Create Self-Signed Certificate").
pub fn self_signed(cn: &str) -> Result<ServerCert, CertError> {
    let key = KeyPair::generate()?;
    let cert = leaf_params(cn)?.self_signed(&key)?;
    Ok(ServerCert {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        leaf_pem: cert.pem(),
    })
}

/// A rustls server configuration (TLS 1.2 and 1.3, ring) presenting `cert`.
pub fn server_config(cert: &ServerCert) -> Result<rustls::ServerConfig, CertError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| CertError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), cert.key.clone_key())
        .map_err(|e| CertError(e.to_string()))
}
