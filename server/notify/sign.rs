//! Webhook signatures: HMAC-SHA256 over `<timestamp>.<body>` with the shared secret, sent as
//! `X-Lockstep-Timestamp: <unix seconds>` and `X-Lockstep-Signature: v1=<hex>`, plus a unique
//! `X-Lockstep-Delivery` id. A receiver calls [`verify_signature`] (signature and clock skew) and
//! keeps a [`ReplayGuard`] (each delivery id accepted once within the skew window).

use std::collections::HashMap;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const TIMESTAMP_HEADER: &str = "x-lockstep-timestamp";
pub const SIGNATURE_HEADER: &str = "x-lockstep-signature";
pub const DELIVERY_HEADER: &str = "x-lockstep-delivery";
/// A signature older or newer than this (seconds) is refused.
pub const MAX_SKEW_SECS: i64 = 5 * 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing header {0}")]
    Missing(&'static str),
    #[error("header {0} is not valid: {1}")]
    Malformed(&'static str, String),
    #[error("timestamp {ts} is {skew} s away from now; at most {MAX_SKEW_SECS} s allowed")]
    Skew { ts: i64, skew: i64 },
    #[error("signature does not match the body and timestamp")]
    Mismatch,
    #[error("delivery {0} was already accepted (replay)")]
    Replay(String),
}

/// `v1=<hex>` for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// Checks the signature headers against `body` and `now` (unix seconds); returns the delivery
/// id (empty if the sender gave none) for the receiver's replay check.
pub fn verify_signature(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<String, SignatureError> {
    let header = |name: &'static str| -> Result<&str, SignatureError> {
        headers
            .get(name)
            .ok_or(SignatureError::Missing(name))?
            .to_str()
            .map_err(|e| SignatureError::Malformed(name, e.to_string()))
    };
    let ts: i64 = header(TIMESTAMP_HEADER)?
        .trim()
        .parse()
        .map_err(|_| SignatureError::Malformed(TIMESTAMP_HEADER, "expected unix seconds".into()))?;
    let skew = (now - ts).abs();
    if skew > MAX_SKEW_SECS {
        return Err(SignatureError::Skew { ts, skew });
    }
    let given = header(SIGNATURE_HEADER)?;
    let hex_sig = given
        .split(',')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("v1="))
        .ok_or_else(|| SignatureError::Malformed(SIGNATURE_HEADER, "expected v1=<hex>".into()))?;
    let bytes = hex::decode(hex_sig)
        .map_err(|_| SignatureError::Malformed(SIGNATURE_HEADER, "not hexadecimal".into()))?;
    // verify_slice compares in constant time.
    mac(secret, ts, body)
        .verify_slice(&bytes)
        .map_err(|_| SignatureError::Mismatch)?;
    Ok(headers
        .get(DELIVERY_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string())
}

/// Delivery ids seen within the skew window; a second use of one is a replay.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: HashMap<String, i64>,
}

impl ReplayGuard {
    /// Records `id` at `now`; refuses an id already recorded (or an empty one).
    pub fn check(&mut self, id: &str, now: i64) -> Result<(), SignatureError> {
        if id.is_empty() {
            return Err(SignatureError::Missing(DELIVERY_HEADER));
        }
        self.seen.retain(|_, at| now - *at <= 2 * MAX_SKEW_SECS);
        if self.seen.contains_key(id) {
            return Err(SignatureError::Replay(id.to_string()));
        }
        self.seen.insert(id.to_string(), now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ts: i64, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(TIMESTAMP_HEADER, ts.to_string().parse().unwrap());
        h.insert(SIGNATURE_HEADER, sig.parse().unwrap());
        h.insert(DELIVERY_HEADER, "d-1".parse().unwrap());
        h
    }

    #[test]
    fn a_signature_made_with_the_secret_verifies() {
        let sig = sign(b"s3cret", 1_000, b"{\"a\":1}");
        assert_eq!(
            verify_signature(b"s3cret", &headers(1_000, &sig), b"{\"a\":1}", 1_010),
            Ok("d-1".to_string())
        );
    }

    #[test]
    fn the_signature_matches_an_independent_hmac_computation() {
        // RFC 4231 test case 2 shape: key "Jefe", message "what do ya want for nothing?".
        // Here the message is "<ts>.<body>", so split it accordingly.
        let sig = sign(b"Jefe", 0, b"what do ya want for nothing?");
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        m.update(b"0.what do ya want for nothing?");
        assert_eq!(
            sig,
            format!("v1={}", hex::encode(m.finalize().into_bytes()))
        );
    }

    #[test]
    fn a_tampered_body_is_refused() {
        let sig = sign(b"k", 1_000, b"{\"ok\":true}");
        assert_eq!(
            verify_signature(b"k", &headers(1_000, &sig), b"{\"ok\":false}", 1_000),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_wrong_secret_is_refused() {
        let sig = sign(b"k", 1_000, b"x");
        assert_eq!(
            verify_signature(b"other", &headers(1_000, &sig), b"x", 1_000),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_timestamp_older_than_five_minutes_is_refused_even_if_signed() {
        let sig = sign(b"k", 1_000, b"x");
        assert!(matches!(
            verify_signature(b"k", &headers(1_000, &sig), b"x", 1_000 + 301),
            Err(SignatureError::Skew { .. })
        ));
    }

    #[test]
    fn a_replayed_delivery_id_is_refused() {
        let mut g = ReplayGuard::default();
        assert!(g.check("d-1", 100).is_ok());
        assert_eq!(
            g.check("d-1", 101),
            Err(SignatureError::Replay("d-1".into()))
        );
        assert!(g.check("d-2", 101).is_ok());
    }

    #[test]
    fn missing_headers_are_named() {
        assert_eq!(
            verify_signature(b"k", &HeaderMap::new(), b"x", 0),
            Err(SignatureError::Missing(TIMESTAMP_HEADER))
        );
    }
}
