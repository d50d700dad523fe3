//! The receiver's side of webhook signing, as a receiver would use it: a signed request verifies,
//! and a tampered body, an old timestamp, the wrong secret and a replayed delivery are refused.

use axum::http::HeaderMap;
use lockstep::notify::sign::{sign, DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use lockstep::notify::{verify_signature, ReplayGuard, SignatureError};

const NOW: i64 = 1_800_000_000;

fn signed(secret: &str, ts: i64, body: &[u8], id: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(TIMESTAMP_HEADER, ts.to_string().parse().unwrap());
    h.insert(
        SIGNATURE_HEADER,
        sign(secret.as_bytes(), ts, body).parse().unwrap(),
    );
    h.insert(DELIVERY_HEADER, id.parse().unwrap());
    h
}

#[test]
fn a_signed_request_verifies_and_yields_its_delivery_id() {
    let h = signed("k", NOW, b"{\"event\":\"run_finished\"}", "d-1");
    assert_eq!(
        verify_signature(b"k", &h, b"{\"event\":\"run_finished\"}", NOW + 3),
        Ok("d-1".into())
    );
}

#[test]
fn a_tampered_body_is_refused() {
    let h = signed("k", NOW, b"{\"status\":\"failed\"}", "d-1");
    assert_eq!(
        verify_signature(b"k", &h, b"{\"status\":\"succeeded\"}", NOW),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn a_timestamp_more_than_five_minutes_old_is_refused() {
    let h = signed("k", NOW - 301, b"x", "d-1");
    assert!(matches!(
        verify_signature(b"k", &h, b"x", NOW),
        Err(SignatureError::Skew { skew: 301, .. })
    ));
    let h = signed("k", NOW - 299, b"x", "d-1");
    assert!(verify_signature(b"k", &h, b"x", NOW).is_ok());
}

#[test]
fn a_timestamp_changed_after_signing_is_refused() {
    let mut h = signed("k", NOW - 10, b"x", "d-1");
    h.insert(TIMESTAMP_HEADER, NOW.to_string().parse().unwrap());
    assert_eq!(
        verify_signature(b"k", &h, b"x", NOW),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn a_replayed_delivery_is_refused_by_the_guard() {
    let h = signed("k", NOW, b"x", "d-9");
    let mut guard = ReplayGuard::default();
    let id = verify_signature(b"k", &h, b"x", NOW).unwrap();
    assert!(guard.check(&id, NOW).is_ok());
    let again = verify_signature(b"k", &h, b"x", NOW + 1).unwrap();
    assert_eq!(
        guard.check(&again, NOW + 1),
        Err(SignatureError::Replay("d-9".into()))
    );
}
