//! What a server's certificate says, read with `x509-parser`: subject CN, subject alternative
//! names (DNS and IP), issuer, validity, key usage and extended key usage. Whether those names
//! cover the host is the knowledge layer's rule ([`crate::knowledge::certname`]), shared with
//! preflight.

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use crate::knowledge::certname::{self, NameMatch};

/// Facts read from one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    pub subject_cn: Option<String>,
    /// DNS names and IP addresses from the subject alternative name extension, in order.
    pub sans: Vec<String>,
    /// Issuer as `CN=…, O=…` (the attributes present, CN first).
    pub issuer: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// Issuer and subject are the same name.
    pub self_issued: bool,
    /// The key usage bits set (`Digital Signature`, …); `None` when the extension is absent,
    /// which leaves the key's use unrestricted.
    pub key_usage: Option<Vec<String>>,
    /// The extended key usages (`serverAuth`, …); `None` when the extension is absent.
    pub extended_key_usage: Option<Vec<String>>,
}

/// Reads `der`; the error says what is wrong with it.
pub fn read(der: &[u8]) -> Result<CertFacts, String> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| format!("the certificate cannot be read: {e}"))?;
    let bad =
        |what: &str, e: x509_parser::error::X509Error| format!("its {what} cannot be read: {e}");
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| bad("subject alternative names", e))?
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(san_text)
                .collect()
        })
        .unwrap_or_default();
    let key_usage = cert
        .key_usage()
        .map_err(|e| bad("key usage", e))?
        .map(|ext| {
            ext.value
                .to_string()
                .split(", ")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        });
    let extended_key_usage = cert
        .extended_key_usage()
        .map_err(|e| bad("extended key usage", e))?
        .map(|ext| {
            let u = ext.value;
            let known = [
                (u.any, "any"),
                (u.server_auth, "serverAuth"),
                (u.client_auth, "clientAuth"),
                (u.code_signing, "codeSigning"),
                (u.email_protection, "emailProtection"),
                (u.time_stamping, "timeStamping"),
                (u.ocsp_signing, "OCSPSigning"),
            ];
            known
                .iter()
                .filter(|(set, _)| *set)
                .map(|(_, name)| name.to_string())
                .chain(u.other.iter().map(|oid| oid.to_id_string()))
                .collect()
        });
    let validity = cert.validity();
    Ok(CertFacts {
        subject_cn: first_cn(cert.subject()),
        sans,
        issuer: issuer_text(cert.issuer()),
        not_before: validity.not_before.to_datetime(),
        not_after: validity.not_after.to_datetime(),
        self_issued: cert.issuer().as_raw() == cert.subject().as_raw(),
        key_usage,
        extended_key_usage,
    })
}

fn san_text(name: &GeneralName<'_>) -> Option<String> {
    match name {
        GeneralName::DNSName(dns) => Some(dns.to_string()),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(*bytes)
                .ok()
                .map(|b| std::net::IpAddr::from(b).to_string()),
            16 => <[u8; 16]>::try_from(*bytes)
                .ok()
                .map(|b| std::net::IpAddr::from(b).to_string()),
            _ => None,
        },
        _ => None,
    }
}

fn first_cn(name: &X509Name<'_>) -> Option<String> {
    name.iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(String::from)
}

fn issuer_text(name: &X509Name<'_>) -> String {
    let o = name
        .iter_organization()
        .next()
        .and_then(|a| a.as_str().ok());
    [
        first_cn(name).map(|c| format!("CN={c}")),
        o.map(|o| format!("O={o}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ")
}

impl CertFacts {
    /// Whether the certificate names `host` (by a SAN, else by its CN); the refusal names both.
    pub fn names_host(&self, host: &str) -> Result<NameMatch, String> {
        certname::names_host(self.subject_cn.as_deref(), &self.sans, host)
    }

    /// Whether the certificate is within its validity at `now`.
    pub fn valid_at(&self, now: OffsetDateTime) -> Result<(), String> {
        if now > self.not_after {
            return Err(format!(
                "expired {} days ago",
                (now - self.not_after).whole_days()
            ));
        }
        if now < self.not_before {
            return Err(format!(
                "is not valid before {}",
                self.not_before
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ));
        }
        Ok(())
    }

    /// Whether the key may serve TLS for a server: key usage (when present) allows a digital
    /// signature or key encipherment, and extended key usage (when present) includes
    /// `serverAuth` (or `any`). The refusal says what the certificate allows instead.
    pub fn serves_tls(&self) -> Result<(), String> {
        if let Some(ku) = &self.key_usage {
            if !ku
                .iter()
                .any(|u| u == "Digital Signature" || u == "Key Encipherment")
            {
                return Err(format!(
                    "its key usage ({}) allows neither Digital Signature nor Key Encipherment, which a TLS server needs",
                    ku.join(", ")
                ));
            }
        }
        if let Some(eku) = &self.extended_key_usage {
            if !eku.iter().any(|u| u == "serverAuth" || u == "any") {
                return Err(format!(
                    "its extended key usage ({}) does not include serverAuth",
                    eku.join(", ")
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
