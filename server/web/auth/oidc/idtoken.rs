//! Checks an ID token with `openidconnect`: its signature against the provider's published keys
//! (RS256, PS256 or ES256 only: `none` and shared-secret algorithms are refused), then issuer,
//! audience and expiry; Lockstep adds what the crate leaves to its caller — the authorized party,
//! a clock leeway on expiry and issue time, `nbf`, a non-empty subject, the nonce compared in
//! constant time. Pure: no IO, the time is an argument. Every refusal says what was wrong; an
//! unknown key is its own case, so the caller can fetch the provider's keys again (rotation).

use openidconnect::core::{
    CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
};
use openidconnect::{
    ClaimsVerificationError, ClientId, IdTokenVerifier, IssuerUrl, Nonce,
    SignatureVerificationError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Clock difference tolerated between Lockstep and the provider, in seconds.
pub const LEEWAY_SECS: i64 = 60;

/// The claims OpenID Connect does not name (`groups`, a custom one): the role rules may read
/// any claim, so none is dropped.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AllClaims {
    #[serde(flatten)]
    pub all: Map<String, Value>,
}

impl openidconnect::AdditionalClaims for AllClaims {}

/// An ID token as the token endpoint answers it (signature not yet checked).
pub type IdToken = openidconnect::IdToken<
    AllClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// The algorithms Lockstep accepts: asymmetric ones a provider publishes keys for.
pub const ALGORITHMS: [CoreJwsSigningAlgorithm; 3] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
];

/// What the token must say.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// Unix seconds.
    pub now: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the ID token is malformed: {0}")]
    Malformed(String),
    #[error(
        "the ID token is signed with `{0}`, which Lockstep does not accept (RS256, PS256 or ES256)"
    )]
    UnsupportedAlgorithm(String),
    /// The provider's key set has no key that fits; a fresh copy of the set may have it.
    #[error("the identity provider published no key `{0}` to check the ID token's signature with")]
    UnknownKey(String),
    #[error("the ID token's signature is not valid for the identity provider's key")]
    BadSignature,
    #[error("the ID token was not issued by the configured issuer: {0}")]
    WrongIssuer(String),
    #[error(
        "the ID token is meant for another application (audience {0}), not for this client id"
    )]
    WrongAudience(String),
    #[error("the ID token expired more than {LEEWAY_SECS} seconds ago by Lockstep's clock; sign in again")]
    Expired,
    #[error("the ID token is dated {0} seconds in the future; check the clocks of Lockstep and the identity provider")]
    FromTheFuture(i64),
    #[error("the ID token does not belong to this sign-in (nonce mismatch); start again")]
    WrongNonce,
    #[error("the ID token lacks the `{0}` claim")]
    MissingClaim(&'static str),
}

/// Parses the compact form of an ID token (what a test or a log holds).
pub fn parse(token: &str) -> Result<IdToken, TokenError> {
    token
        .parse()
        .map_err(|e: serde_json::Error| TokenError::Malformed(e.to_string()))
}

/// The `kid` a token's header names, if any: only to name the missing key in a refusal (the
/// crate picks the key itself and does not expose the header).
pub fn key_id(token: &IdToken) -> Option<String> {
    use base64::Engine as _;
    let compact = token.to_string();
    let header = compact.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    header.get("kid")?.as_str().map(str::to_string)
}

/// Checks signature and claims; returns every claim of the token.
pub fn verify(
    token: &IdToken,
    keys: &CoreJsonWebKeySet,
    want: &Expected<'_>,
) -> Result<Map<String, Value>, TokenError> {
    let issuer = IssuerUrl::new(want.issuer.to_string())
        .map_err(|e| TokenError::Malformed(format!("the configured issuer: {e}")))?;
    let now = want.now;
    // The crate refuses a token once `time_fn() >= exp`: handing it a clock one leeway behind
    // tolerates the same difference between the two clocks as the issue-time check below.
    let lagging = chrono::DateTime::from_timestamp(now - LEEWAY_SECS, 0).ok_or_else(|| {
        TokenError::Malformed(format!("Lockstep's clock ({now}) is out of range"))
    })?;
    let verifier: IdTokenVerifier<'_, CoreJsonWebKey> = IdTokenVerifier::new_public_client(
        ClientId::new(want.client_id.to_string()),
        issuer,
        keys.clone(),
    )
    .set_allowed_algs(ALGORITHMS)
    .set_time_fn(move || lagging);
    let nonce_fits = |got: Option<&Nonce>| {
        let fits =
            got.is_some_and(|n| crate::web::auth::extract::same_secret(n.secret(), want.nonce));
        if fits {
            Ok(())
        } else {
            Err("nonce mismatch".to_string())
        }
    };
    let claims = token
        .claims(&verifier, nonce_fits)
        .map_err(|e| refusal(e, token))?;

    // With several audiences the crate has already refused (none is trusted besides us); an
    // authorized party, when named, must be us too (OpenID Connect Core 3.1.3.7, step 5).
    if let Some(azp) = claims.authorized_party() {
        if azp.as_str() != want.client_id {
            return Err(TokenError::WrongAudience(format!(
                "{} (authorized party {})",
                want.client_id,
                azp.as_str()
            )));
        }
    }
    let ahead = claims.issue_time().timestamp() - now;
    if ahead > LEEWAY_SECS {
        return Err(TokenError::FromTheFuture(ahead));
    }
    // The standard claims (email, preferred_username, …) went into the crate's own fields and
    // the rest into `AllClaims`; written out again, they are every claim of the token.
    let all = match serde_json::to_value(claims) {
        Ok(Value::Object(all)) => all,
        _ => {
            return Err(TokenError::Malformed(
                "its claims are not a JSON object".into(),
            ))
        }
    };
    if let Some(nbf) = all.get("nbf") {
        let nbf = nbf
            .as_f64()
            .ok_or_else(|| TokenError::Malformed("`nbf` is not a number".into()))?
            as i64;
        if nbf > now + LEEWAY_SECS {
            return Err(TokenError::FromTheFuture(nbf - now));
        }
    }
    if claims.subject().is_empty() {
        return Err(TokenError::MissingClaim("sub"));
    }
    Ok(all)
}

/// The crate's refusal in Lockstep's words.
fn refusal(e: ClaimsVerificationError, token: &IdToken) -> TokenError {
    use SignatureVerificationError as S;
    match e {
        ClaimsVerificationError::SignatureVerification(s) => match s {
            S::NoMatchingKey | S::AmbiguousKeyId(_) => TokenError::UnknownKey(
                key_id(token).unwrap_or_else(|| "(the token names none)".into()),
            ),
            S::DisallowedAlg(_) | S::UnsupportedAlg(_) | S::NoSignature => {
                TokenError::UnsupportedAlgorithm(algorithm(token))
            }
            S::CryptoError(_) => TokenError::BadSignature,
            other => TokenError::Malformed(other.to_string()),
        },
        ClaimsVerificationError::InvalidIssuer(m) => TokenError::WrongIssuer(m),
        ClaimsVerificationError::InvalidAudience(m) => TokenError::WrongAudience(m),
        ClaimsVerificationError::Expired(_) => TokenError::Expired,
        ClaimsVerificationError::InvalidNonce(_) => TokenError::WrongNonce,
        other => TokenError::Malformed(other.to_string()),
    }
}

/// The algorithm a token names (`none` when it is unsigned).
fn algorithm(token: &IdToken) -> String {
    token
        .signing_alg()
        .ok()
        .and_then(|alg| serde_json::to_value(alg).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "none".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use openidconnect::core::CoreJsonCurveType;
    use openidconnect::JsonWebKeyId;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::json;

    const NOW: i64 = 1_900_000_000;

    /// An ES256 key of a provider (or of a forger), signing tokens as an attacker could:
    /// any header, any claims.
    struct Signer {
        pair: EcdsaKeyPair,
        kid: &'static str,
    }

    impl Signer {
        fn new(kid: &'static str) -> Signer {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            Signer { pair, kid }
        }
        fn jwk(&self) -> CoreJsonWebKey {
            let p = self.pair.public_key().as_ref();
            CoreJsonWebKey::new_ec(
                p[1..33].to_vec(),
                p[33..65].to_vec(),
                CoreJsonCurveType::P256,
                Some(JsonWebKeyId::new(self.kid.into())),
            )
        }
        fn sign(&self, alg: &str, claims: &Value) -> String {
            let h = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": self.kid}).to_string());
            let p = URL_SAFE_NO_PAD.encode(claims.to_string());
            let input = format!("{h}.{p}");
            let sig = self
                .pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        }
    }

    fn claims() -> Value {
        json!({"iss": "https://idp.example", "aud": "lockstep", "sub": "u1", "nonce": "n-1",
               "iat": NOW - 5, "exp": NOW + 300, "groups": ["dc-admins"],
               "email": "alice@corp.example", "preferred_username": "alice"})
    }

    fn want() -> Expected<'static> {
        Expected {
            issuer: "https://idp.example",
            client_id: "lockstep",
            nonce: "n-1",
            now: NOW,
        }
    }

    fn keys(signers: &[&Signer]) -> CoreJsonWebKeySet {
        CoreJsonWebKeySet::new(signers.iter().map(|s| s.jwk()).collect())
    }

    fn check_token(
        token: &str,
        keys: &CoreJsonWebKeySet,
    ) -> Result<Map<String, Value>, TokenError> {
        verify(&parse(token)?, keys, &want())
    }

    fn check(signer: &Signer, c: &Value) -> Result<Map<String, Value>, TokenError> {
        check_token(&signer.sign("ES256", c), &keys(&[signer]))
    }

    #[test]
    fn a_well_formed_token_signed_by_the_providers_key_is_accepted_with_every_claim() {
        let s = Signer::new("k1");
        let got = check(&s, &claims()).unwrap();
        // The role rules and the account name read these, standard claims or not.
        assert_eq!(got["groups"], json!(["dc-admins"]));
        assert_eq!(got["email"], json!("alice@corp.example"));
        assert_eq!(got["preferred_username"], json!("alice"));
        assert_eq!(got["sub"], json!("u1"));
    }

    #[test]
    fn a_token_signed_by_another_key_with_the_same_id_is_refused() {
        let real = Signer::new("k1");
        let forger = Signer::new("k1");
        let token = forger.sign("ES256", &claims());
        assert_eq!(
            check_token(&token, &keys(&[&real])),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_token_whose_claims_were_edited_after_signing_is_refused() {
        let s = Signer::new("k1");
        let token = s.sign("ES256", &claims());
        let parts: Vec<&str> = token.split('.').collect();
        let mut c = claims();
        c["groups"] = json!(["dc-admins", "everyone-is-admin"]);
        let edited = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(c.to_string()),
            parts[2]
        );
        assert_eq!(
            check_token(&edited, &keys(&[&s])),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn unsigned_and_shared_secret_tokens_are_refused() {
        let s = Signer::new("k1");
        for alg in ["none", "HS256", "RS384"] {
            let token = s.sign(alg, &claims());
            let got = check_token(&token, &keys(&[&s]));
            assert!(
                matches!(&got, Err(TokenError::UnsupportedAlgorithm(a)) if a == alg)
                    || matches!(&got, Err(TokenError::Malformed(_))),
                "{alg}: {got:?}"
            );
        }
    }

    #[test]
    fn an_unknown_key_id_is_reported_so_the_key_set_can_be_fetched_again() {
        let s = Signer::new("rotated");
        let other = Signer::new("k1");
        let token = parse(&s.sign("ES256", &claims())).unwrap();
        assert_eq!(key_id(&token), Some("rotated".into()));
        assert_eq!(
            verify(&token, &keys(&[&other]), &want()),
            Err(TokenError::UnknownKey("rotated".into()))
        );
        // Once the set holds the new key, the same token passes.
        assert!(verify(&token, &keys(&[&other, &s]), &want()).is_ok());
    }

    #[test]
    fn each_claim_check_refuses_with_its_own_reason() {
        let s = Signer::new("k1");
        let with = |k: &str, v: Value| {
            let mut c = claims();
            c[k] = v;
            check(&s, &c).unwrap_err()
        };
        assert!(matches!(
            with("iss", json!("https://evil.example")),
            TokenError::WrongIssuer(_)
        ));
        assert!(matches!(
            with("aud", json!("another-app")),
            TokenError::WrongAudience(_)
        ));
        assert!(matches!(
            with("aud", json!(["lockstep", "another-app"])),
            TokenError::WrongAudience(_)
        ));
        assert!(matches!(
            with("azp", json!("another-app")),
            TokenError::WrongAudience(_)
        ));
        assert_eq!(with("exp", json!(NOW - 61)), TokenError::Expired);
        assert_eq!(
            with("iat", json!(NOW + 600)),
            TokenError::FromTheFuture(600)
        );
        assert_eq!(
            with("nbf", json!(NOW + 600)),
            TokenError::FromTheFuture(600)
        );
        assert_eq!(with("nonce", json!("n-2")), TokenError::WrongNonce);
        assert_eq!(with("sub", json!("")), TokenError::MissingClaim("sub"));
        let mut c = claims();
        c.as_object_mut().unwrap().remove("nonce");
        assert_eq!(check(&s, &c).unwrap_err(), TokenError::WrongNonce);
        c["azp"] = json!("lockstep");
        c["nonce"] = json!("n-1");
        assert!(
            check(&s, &c).is_ok(),
            "an authorized party that is us is fine"
        );
    }

    #[test]
    fn expiry_within_the_clock_leeway_is_tolerated() {
        let s = Signer::new("k1");
        let mut c = claims();
        c["exp"] = json!(NOW - 30);
        assert!(check(&s, &c).is_ok());
        c["iat"] = json!(NOW + 30);
        assert!(check(&s, &c).is_ok());
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let empty = CoreJsonWebKeySet::new(Vec::new());
        for t in ["", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.e30"] {
            assert!(check_token(t, &empty).is_err(), "{t}");
        }
    }
}
