//! Certificates made by `rcgen` the way a site's CA (or a careless one) would make them, read
//! back and judged: SAN-only, CN-only, wildcard, IP, expired, and keys not meant for a server.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use time::macros::datetime;

use super::*;

const FQDN: &str = "dt1.contoso.local";

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "Site CA");
    p.distinguished_name
        .push(DnType::OrganizationName, "Contoso");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A leaf signed by `ca` with subject CN `cn` (if any) and SANs `sans`, tweaked by `edit`.
fn leaf(
    ca: &Ca,
    cn: Option<&str>,
    sans: &[&str],
    edit: impl FnOnce(&mut CertificateParams),
) -> CertFacts {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    // rcgen names every subject "rcgen self signed cert" unless told otherwise.
    p.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        p.distinguished_name.push(DnType::CommonName, cn);
    }
    p.not_before = datetime!(2025-01-01 00:00 UTC);
    p.not_after = datetime!(2031-02-03 04:05:06 UTC);
    edit(&mut p);
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    read(cert.der()).unwrap()
}

const NOW: OffsetDateTime = datetime!(2026-12-06 12:00 UTC);

#[test]
fn facts_are_read_from_a_generated_certificate() {
    let ca = ca();
    let f = leaf(&ca, Some(FQDN), &[FQDN, "10.0.0.5", "::1"], |_| {});
    assert_eq!(f.subject_cn.as_deref(), Some(FQDN));
    assert_eq!(f.sans, vec![FQDN, "10.0.0.5", "::1"]);
    assert_eq!(f.issuer, "CN=Site CA, O=Contoso");
    assert_eq!(f.not_before, datetime!(2025-01-01 00:00 UTC));
    assert_eq!(f.not_after, datetime!(2031-02-03 04:05:06 UTC));
    assert!(!f.self_issued);
    assert!(read(ca.cert.der()).unwrap().self_issued);
    assert_eq!(f.valid_at(NOW), Ok(()));
}

#[test]
fn a_san_naming_the_fqdn_passes_though_the_cn_differs() {
    let f = leaf(&ca(), Some("DT1"), &[FQDN], |_| {});
    assert_eq!(f.names_host(FQDN), Ok(NameMatch::San(FQDN.into())));
}

#[test]
fn a_san_only_certificate_without_any_cn_names_its_host() {
    let f = leaf(&ca(), None, &[FQDN], |_| {});
    assert_eq!(f.subject_cn, None);
    assert_eq!(f.names_host(FQDN), Ok(NameMatch::San(FQDN.into())));
}

#[test]
fn a_cn_only_certificate_names_its_host_by_the_cn() {
    let f = leaf(&ca(), Some(FQDN), &[], |_| {});
    assert!(f.sans.is_empty());
    assert_eq!(f.names_host(FQDN), Ok(NameMatch::Cn(FQDN.into())));
}

#[test]
fn a_certificate_naming_neither_fails_naming_its_cn_and_its_sans() {
    let f = leaf(
        &ca(),
        Some("DT2"),
        &["dt2.contoso.local", "10.0.0.9"],
        |_| {},
    );
    let e = f.names_host(FQDN).unwrap_err();
    assert!(
        e.contains(FQDN) && e.contains("CN (DT2)") && e.contains("dt2.contoso.local, 10.0.0.9"),
        "{e}"
    );
}

#[test]
fn a_wildcard_san_covers_one_label_of_the_fqdn() {
    let f = leaf(&ca(), Some("Contoso web"), &["*.contoso.local"], |_| {});
    assert_eq!(
        f.names_host(FQDN),
        Ok(NameMatch::San("*.contoso.local".into()))
    );
    assert!(f.names_host("a.dt1.contoso.local").is_err());
}

#[test]
fn an_ip_san_names_an_ip_host() {
    let f = leaf(&ca(), None, &["10.0.0.5"], |_| {});
    assert_eq!(
        f.names_host("10.0.0.5"),
        Ok(NameMatch::San("10.0.0.5".into()))
    );
    assert!(f.names_host("10.0.0.6").is_err());
}

#[test]
fn an_expired_certificate_says_how_long_ago() {
    let f = leaf(&ca(), Some(FQDN), &[FQDN], |p| {
        p.not_after = datetime!(2026-12-01 12:00 UTC);
    });
    assert_eq!(f.valid_at(NOW), Err("expired 5 days ago".into()));
    let f = leaf(&ca(), Some(FQDN), &[FQDN], |p| {
        p.not_before = datetime!(2027-01-01 00:00 UTC);
    });
    assert!(f
        .valid_at(NOW)
        .unwrap_err()
        .contains("not valid before 2027-01-01"));
}

#[test]
fn a_key_for_signing_certificates_only_cannot_serve_tls() {
    let f = leaf(&ca(), Some(FQDN), &[FQDN], |p| {
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    });
    assert_eq!(
        f.key_usage.as_deref(),
        Some(&["Key Cert Sign".to_string(), "CRL Sign".to_string()][..])
    );
    let e = f.serves_tls().unwrap_err();
    assert!(e.contains("Key Cert Sign, CRL Sign"), "{e}");
}

#[test]
fn a_client_authentication_certificate_cannot_serve_tls() {
    let f = leaf(&ca(), Some(FQDN), &[FQDN], |p| {
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    });
    let e = f.serves_tls().unwrap_err();
    assert!(
        e.contains("(clientAuth)") && e.contains("serverAuth"),
        "{e}"
    );
    let ok = leaf(&ca(), Some(FQDN), &[FQDN], |p| {
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    });
    assert_eq!(ok.serves_tls(), Ok(()));
    assert_eq!(
        ok.extended_key_usage.as_deref(),
        Some(&["serverAuth".to_string()][..])
    );
}

#[test]
fn garbage_is_not_a_certificate() {
    assert!(read(&[0x30, 0x82, 0xFF]).is_err());
    assert!(read(&[]).unwrap_err().contains("cannot be read"));
}
