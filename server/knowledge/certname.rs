//! The one rule for whether a name in a certificate (its CN or one of its subject alternative
//! names) covers the host name a client connects to. Preflight applies it to the certificates the
//! agents report bound in IIS; the probes apply it to the certificate a server presents.
//!
//! The guide asks that "the Common Name (CN) of the certificate … match the server's FQDN",
//! because the Management API connects to a DataTransfer node by the name in its OutflowServices
//! URL. A TLS client (the Management API's included) checks that name against the certificate's
//! SANs, so a SAN naming the FQDN satisfies what the guide asks for even when the CN differs.
//!
//! Wildcards follow RFC 6125: `*` is the whole left-most label and stands for exactly one label
//! (`*.contoso.local` covers `dt1.contoso.local`, not `a.b.contoso.local` nor `contoso.local`).
//! A wildcard covering the FQDN is accepted: the URL keeps the FQDN, which the certificate names.
//! What a wildcard cannot be is the name *in* the URL (the `datatransfer-cn-matches-fqdn` rule).

use std::net::IpAddr;

/// Whether `pattern` (a DNS name, possibly `*.domain`, or an IP address) covers `host`
/// (case-insensitive; a trailing dot on either is ignored).
pub fn covers(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.');
    let host = host.trim_end_matches('.');
    if let (Ok(a), Ok(b)) = (pattern.parse::<IpAddr>(), host.parse::<IpAddr>()) {
        return a == b;
    }
    match pattern.strip_prefix("*.") {
        // A wildcard needs at least two labels after it, so `*.local` covers nothing.
        Some(domain) if domain.contains('.') => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(domain)),
        Some(_) => false,
        None => !pattern.is_empty() && pattern.eq_ignore_ascii_case(host),
    }
}

/// Which of a certificate's names covers a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatch {
    /// A subject alternative name (the name TLS clients check).
    San(String),
    /// Only the subject CN (what the guide names; clients that ignore the CN when SANs are
    /// present will still refuse such a certificate if it has SANs).
    Cn(String),
}

/// Whether the certificate with `cn` and `sans` names `host`: by a SAN first, else by the CN.
/// The refusal names the host, the CN and the SANs, so an operator sees what the certificate
/// does name.
pub fn names_host(cn: Option<&str>, sans: &[String], host: &str) -> Result<NameMatch, String> {
    if let Some(san) = sans.iter().find(|s| covers(s, host)) {
        return Ok(NameMatch::San(san.clone()));
    }
    if let Some(cn) = cn.filter(|c| covers(c, host)) {
        return Ok(NameMatch::Cn(cn.to_string()));
    }
    Err(miss(host, cn, sans))
}

/// "names neither `what` in its CN (…) nor in its SANs (…)": the refusal names what the
/// certificate does name, so an operator can tell a wrong certificate from a wrong inventory.
pub fn miss(what: &str, cn: Option<&str>, sans: &[String]) -> String {
    let sans = if sans.is_empty() {
        "none".to_string()
    } else {
        sans.join(", ")
    };
    format!(
        "names neither {what} in its CN ({}) nor in its SANs ({sans})",
        cn.unwrap_or("none")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_covers_exactly_one_label() {
        assert!(covers("*.contoso.local", "dt1.contoso.local"));
        assert!(covers("*.CONTOSO.local", "DT1.contoso.local."));
        assert!(!covers("*.contoso.local", "a.b.contoso.local"));
        assert!(!covers("*.contoso.local", "contoso.local"));
        assert!(!covers("*.local", "contoso.local"), "a wildcard over a TLD");
        assert!(!covers("dt*.contoso.local", "dt1.contoso.local"));
    }

    #[test]
    fn ip_addresses_compare_as_addresses() {
        assert!(covers("10.0.0.5", "10.0.0.5"));
        assert!(covers("::1", "0:0:0:0:0:0:0:1"));
        assert!(!covers("10.0.0.5", "10.0.0.6"));
        assert!(!covers("", ""));
    }

    #[test]
    fn a_san_naming_the_host_wins_over_a_differing_cn() {
        let sans = vec!["dt1.contoso.local".to_string()];
        assert_eq!(
            names_host(Some("DT1"), &sans, "dt1.contoso.local"),
            Ok(NameMatch::San("dt1.contoso.local".into()))
        );
        assert_eq!(
            names_host(Some("dt1.contoso.local"), &[], "dt1.contoso.local"),
            Ok(NameMatch::Cn("dt1.contoso.local".into()))
        );
    }

    #[test]
    fn a_certificate_naming_neither_is_refused_naming_both() {
        let sans = vec!["dt2.contoso.local".to_string(), "10.0.0.9".to_string()];
        let e = names_host(Some("DT2"), &sans, "dt1.contoso.local").unwrap_err();
        assert!(
            e.contains("dt1.contoso.local")
                && e.contains("CN (DT2)")
                && e.contains("dt2.contoso.local, 10.0.0.9"),
            "{e}"
        );
        let e = names_host(None, &[], "dt1.contoso.local").unwrap_err();
        assert!(e.contains("CN (none)") && e.contains("SANs (none)"), "{e}");
    }
}
