//! Just enough X.509 (DER) reading to report what a server presented: subject CN, issuer,
//! expiry. A bounds-checked walk over the TBSCertificate; anything unexpected is `None`.

use time::OffsetDateTime;

/// Facts read from one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    pub subject_cn: Option<String>,
    /// Issuer as `CN=…, O=…` (the attributes present, CN first).
    pub issuer: String,
    pub not_after: Option<OffsetDateTime>,
    /// Issuer and subject are the same name.
    pub self_issued: bool,
}

/// One TLV: (tag, content, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7F) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_O: &[u8] = &[0x55, 0x04, 0x0A];

fn string_value(tag: u8, v: &[u8]) -> Option<String> {
    match tag {
        0x0C | 0x13 | 0x16 | 0x14 => Some(String::from_utf8_lossy(v).into_owned()),
        0x1E => {
            let units: Vec<u16> = v
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// (CN, O) of a Name.
fn name_attrs(mut name: &[u8]) -> (Option<String>, Option<String>) {
    let (mut cn, mut o) = (None, None);
    while let Some((0x31, set, rest)) = tlv(name) {
        name = rest;
        let mut set = set;
        while let Some((0x30, atv, r)) = tlv(set) {
            set = r;
            if let Some((0x06, oid, r2)) = tlv(atv) {
                if let Some((tag, v, _)) = tlv(r2) {
                    if oid == OID_CN {
                        cn = string_value(tag, v);
                    } else if oid == OID_O {
                        o = string_value(tag, v);
                    }
                }
            }
        }
    }
    (cn, o)
}

fn parse_time(tag: u8, v: &[u8]) -> Option<OffsetDateTime> {
    let s = std::str::from_utf8(v).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 if s.len() >= 10 => {
            let yy: i32 = s.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, s.get(2..)?)
        }
        0x18 if s.len() >= 12 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    let num = |a: usize| -> Option<u8> { rest.get(a..a + 2)?.parse().ok() };
    let month = time::Month::try_from(num(0)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, num(2)?).ok()?;
    let t = time::Time::from_hms(num(4)?, num(6)?, num(8).unwrap_or(0)).ok()?;
    Some(date.with_time(t).assume_utc())
}

pub fn read(der: &[u8]) -> Option<CertFacts> {
    let (0x30, cert, _) = tlv(der)? else {
        return None;
    };
    let (0x30, tbs, _) = tlv(cert)? else {
        return None;
    };
    let mut t = tbs;
    let (tag, _, rest) = tlv(t)?;
    if tag == 0xA0 {
        t = rest; // explicit version
    }
    let (_, _, t) = tlv(t)?; // serial
    let (_, _, t) = tlv(t)?; // signature algorithm
    let (0x30, issuer, t) = tlv(t)? else {
        return None;
    };
    let (0x30, validity, t) = tlv(t)? else {
        return None;
    };
    let (0x30, subject, _) = tlv(t)? else {
        return None;
    };
    let (_, _, v) = tlv(validity)?;
    let not_after = tlv(v).and_then(|(tag, v, _)| parse_time(tag, v));
    let (icn, io) = name_attrs(issuer);
    let (scn, _) = name_attrs(subject);
    let issuer_text = [icn.map(|c| format!("CN={c}")), io.map(|o| format!("O={o}"))]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
    Some(CertFacts {
        subject_cn: scn,
        issuer: issuer_text,
        not_after,
        self_issued: issuer == subject,
    })
}

/// Whether a certificate CN names `host` (case-insensitive; `*.` matches one label).
pub fn cn_matches(cn: &str, host: &str) -> bool {
    let (cn, host) = (cn.to_ascii_lowercase(), host.to_ascii_lowercase());
    match cn.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .map(|(l, rest)| !l.is_empty() && rest == suffix)
            .unwrap_or(false),
        None => cn == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_read_from_a_generated_certificate() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Site CA");
        ca.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Contoso");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["dt1.contoso.local".into()]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "dt1.contoso.local");
        p.not_after = time::macros::datetime!(2031-02-03 04:05:06 UTC);
        let leaf = p.signed_by(&key, &ca, &ca_key).unwrap();
        let f = read(leaf.der()).unwrap();
        assert_eq!(f.subject_cn.as_deref(), Some("dt1.contoso.local"));
        assert_eq!(f.issuer, "CN=Site CA, O=Contoso");
        assert_eq!(
            f.not_after,
            Some(time::macros::datetime!(2031-02-03 04:05:06 UTC))
        );
        assert!(!f.self_issued);
        assert!(read(ca.der()).unwrap().self_issued);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(read(&[0x30, 0x82, 0xFF]), None);
        assert_eq!(read(&[]), None);
    }

    #[test]
    fn wildcards_match_one_label() {
        assert!(cn_matches("*.contoso.local", "dt1.contoso.local"));
        assert!(!cn_matches("*.contoso.local", "a.b.contoso.local"));
        assert!(cn_matches("DT1.contoso.local", "dt1.CONTOSO.local"));
    }
}
