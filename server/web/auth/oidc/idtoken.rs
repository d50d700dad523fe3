//! Checks an ID token (a JWS in compact form) without trusting anything in it first: the
//! signature against the provider's published keys (RS256, PS256, ES256; `none` and shared-secret
//! algorithms are refused), then issuer, audience, authorized party, expiry, issue time, not-before
//! and nonce. Pure: no IO, the time is an argument.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Clock difference tolerated between Lockstep and the provider, in seconds.
pub const LEEWAY_SECS: i64 = 60;

/// One key of the provider's JSON Web Key Set (only the fields a signature check reads).
#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
    #[serde(default)]
    pub crv: Option<String>,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Option<String>,
}

/// The provider's JSON Web Key Set (`jwks_uri`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

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
    #[error("the ID token was issued by `{got}`, not by the configured issuer `{want}`")]
    WrongIssuer { got: String, want: String },
    #[error(
        "the ID token is meant for another application (audience {0}), not for this client id"
    )]
    WrongAudience(String),
    #[error("the ID token expired {0} seconds ago; sign in again")]
    Expired(i64),
    #[error("the ID token is dated {0} seconds in the future; check the clocks of Lockstep and the identity provider")]
    FromTheFuture(i64),
    #[error("the ID token does not belong to this sign-in (nonce mismatch); start again")]
    WrongNonce,
    #[error("the ID token lacks the `{0}` claim")]
    MissingClaim(&'static str),
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// The `kid` a token names (to decide whether the key set needs fetching again).
pub fn key_id(token: &str) -> Result<Option<String>, TokenError> {
    let (header, _, _, _) = split(token)?;
    Ok(header.kid)
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed(format!("{what} is not base64url")))
}

/// Header, claims, signing input, signature.
type Parts<'t> = (Header, Map<String, Value>, &'t str, Vec<u8>);

fn split(token: &str) -> Result<Parts<'_>, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "expected three dot-separated parts".into(),
        ));
    };
    let header: Header = serde_json::from_slice(&b64(h, "the header")?)
        .map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
    let claims: Map<String, Value> = serde_json::from_slice(&b64(p, "the payload")?)
        .map_err(|e| TokenError::Malformed(format!("payload: {e}")))?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    Ok((header, claims, signing_input, b64(s, "the signature")?))
}

fn kty_for(alg: &str) -> Option<&'static str> {
    match alg {
        "RS256" | "PS256" => Some("RSA"),
        "ES256" => Some("EC"),
        _ => None,
    }
}

fn pick_key<'k>(jwks: &'k Jwks, alg: &str, kid: Option<&str>) -> Result<&'k Jwk, TokenError> {
    let kty = kty_for(alg).ok_or_else(|| TokenError::UnsupportedAlgorithm(alg.to_string()))?;
    let fits = |k: &&Jwk| {
        k.kty == kty
            && k.alg.as_deref().is_none_or(|a| a == alg)
            && k.use_.as_deref().is_none_or(|u| u == "sig")
    };
    let mut candidates = jwks.keys.iter().filter(fits);
    match kid {
        Some(kid) => candidates
            .find(|k| k.kid.as_deref() == Some(kid))
            .ok_or_else(|| TokenError::UnknownKey(kid.to_string())),
        None => {
            let first = candidates.next();
            match (first, candidates.next()) {
                (Some(k), None) => Ok(k),
                _ => Err(TokenError::UnknownKey("(the token names none)".into())),
            }
        }
    }
}

fn check_signature(jwk: &Jwk, alg: &str, input: &[u8], sig: &[u8]) -> Result<(), TokenError> {
    let field = |v: &Option<String>, name: &str| -> Result<Vec<u8>, TokenError> {
        let text = v
            .as_deref()
            .ok_or_else(|| TokenError::Malformed(format!("the provider's key lacks `{name}`")))?;
        b64(text, "a key component")
    };
    let ok = match alg {
        "RS256" | "PS256" => {
            let params = if alg == "RS256" {
                &signature::RSA_PKCS1_2048_8192_SHA256
            } else {
                &signature::RSA_PSS_2048_8192_SHA256
            };
            let key = signature::RsaPublicKeyComponents {
                n: field(&jwk.n, "n")?,
                e: field(&jwk.e, "e")?,
            };
            key.verify(params, input, sig).is_ok()
        }
        "ES256" => {
            if jwk.crv.as_deref() != Some("P-256") {
                return Err(TokenError::Malformed(
                    "an ES256 key must be on P-256".into(),
                ));
            }
            let mut point = vec![0x04];
            point.extend(field(&jwk.x, "x")?);
            point.extend(field(&jwk.y, "y")?);
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(input, sig)
                .is_ok()
        }
        other => return Err(TokenError::UnsupportedAlgorithm(other.to_string())),
    };
    if ok {
        Ok(())
    } else {
        Err(TokenError::BadSignature)
    }
}

fn number(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(|f| Some(f as i64))
            .ok_or_else(|| TokenError::Malformed(format!("`{name}` is not a number"))),
    }
}

/// Checks signature and claims; returns the claims.
pub fn verify(
    token: &str,
    jwks: &Jwks,
    want: &Expected<'_>,
) -> Result<Map<String, Value>, TokenError> {
    let (header, claims, input, sig) = split(token)?;
    let key = pick_key(jwks, &header.alg, header.kid.as_deref())?;
    check_signature(key, &header.alg, input.as_bytes(), &sig)?;

    let iss = claims.get("iss").and_then(Value::as_str);
    let iss = iss.ok_or(TokenError::MissingClaim("iss"))?;
    if iss != want.issuer {
        return Err(TokenError::WrongIssuer {
            got: iss.to_string(),
            want: want.issuer.to_string(),
        });
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => return Err(TokenError::MissingClaim("aud")),
    };
    if !audiences.contains(&want.client_id) {
        return Err(TokenError::WrongAudience(audiences.join(", ")));
    }
    // With several audiences, the authorized party must be us (OpenID Connect Core 3.1.3.7).
    let azp = claims.get("azp").and_then(Value::as_str);
    if (audiences.len() > 1 || azp.is_some()) && azp != Some(want.client_id) {
        return Err(TokenError::WrongAudience(format!(
            "{} (authorized party {})",
            audiences.join(", "),
            azp.unwrap_or("missing")
        )));
    }
    let exp = number(&claims, "exp")?.ok_or(TokenError::MissingClaim("exp"))?;
    if want.now > exp + LEEWAY_SECS {
        return Err(TokenError::Expired(want.now - exp));
    }
    let iat = number(&claims, "iat")?.ok_or(TokenError::MissingClaim("iat"))?;
    if iat > want.now + LEEWAY_SECS {
        return Err(TokenError::FromTheFuture(iat - want.now));
    }
    if let Some(nbf) = number(&claims, "nbf")? {
        if nbf > want.now + LEEWAY_SECS {
            return Err(TokenError::FromTheFuture(nbf - want.now));
        }
    }
    let nonce = claims.get("nonce").and_then(Value::as_str);
    if !nonce.is_some_and(|n| crate::web::auth::extract::same_secret(n, want.nonce)) {
        return Err(TokenError::WrongNonce);
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if sub.is_empty() {
        return Err(TokenError::MissingClaim("sub"));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::json;

    const NOW: i64 = 1_900_000_000;

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
        fn jwk(&self) -> Jwk {
            let p = self.pair.public_key().as_ref();
            Jwk {
                kty: "EC".into(),
                kid: Some(self.kid.into()),
                alg: Some("ES256".into()),
                use_: Some("sig".into()),
                n: None,
                e: None,
                crv: Some("P-256".into()),
                x: Some(URL_SAFE_NO_PAD.encode(&p[1..33])),
                y: Some(URL_SAFE_NO_PAD.encode(&p[33..65])),
            }
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
               "iat": NOW - 5, "exp": NOW + 300, "groups": ["dc-admins"]})
    }

    fn want() -> Expected<'static> {
        Expected {
            issuer: "https://idp.example",
            client_id: "lockstep",
            nonce: "n-1",
            now: NOW,
        }
    }

    fn check(signer: &Signer, c: &Value) -> Result<Map<String, Value>, TokenError> {
        let jwks = Jwks {
            keys: vec![signer.jwk()],
        };
        verify(&signer.sign("ES256", c), &jwks, &want())
    }

    #[test]
    fn a_well_formed_token_signed_by_the_providers_key_is_accepted() {
        let s = Signer::new("k1");
        let got = check(&s, &claims()).unwrap();
        assert_eq!(got["groups"], json!(["dc-admins"]));
    }

    #[test]
    fn a_token_signed_by_another_key_with_the_same_id_is_refused() {
        let real = Signer::new("k1");
        let forger = Signer::new("k1");
        let jwks = Jwks {
            keys: vec![real.jwk()],
        };
        let token = forger.sign("ES256", &claims());
        assert_eq!(
            verify(&token, &jwks, &want()),
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
        let jwks = Jwks {
            keys: vec![s.jwk()],
        };
        assert_eq!(
            verify(&edited, &jwks, &want()),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn unsigned_and_shared_secret_tokens_are_refused() {
        let s = Signer::new("k1");
        let jwks = Jwks {
            keys: vec![s.jwk()],
        };
        for alg in ["none", "HS256"] {
            let token = s.sign(alg, &claims());
            assert_eq!(
                verify(&token, &jwks, &want()),
                Err(TokenError::UnsupportedAlgorithm(alg.into()))
            );
        }
    }

    #[test]
    fn an_unknown_key_id_is_reported_so_the_key_set_can_be_fetched_again() {
        let s = Signer::new("rotated");
        let other = Signer::new("k1");
        let jwks = Jwks {
            keys: vec![other.jwk()],
        };
        let token = s.sign("ES256", &claims());
        assert_eq!(key_id(&token), Ok(Some("rotated".into())));
        assert_eq!(
            verify(&token, &jwks, &want()),
            Err(TokenError::UnknownKey("rotated".into()))
        );
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
            TokenError::WrongIssuer { .. }
        ));
        assert!(matches!(
            with("aud", json!("another-app")),
            TokenError::WrongAudience(_)
        ));
        assert!(matches!(
            with("aud", json!(["lockstep", "another-app"])),
            TokenError::WrongAudience(_)
        ));
        assert_eq!(with("exp", json!(NOW - 61)), TokenError::Expired(61));
        assert_eq!(
            with("iat", json!(NOW + 600)),
            TokenError::FromTheFuture(600)
        );
        assert_eq!(with("nonce", json!("n-2")), TokenError::WrongNonce);
        assert_eq!(with("sub", json!("")), TokenError::MissingClaim("sub"));
        let mut c = claims();
        c.as_object_mut().unwrap().remove("nonce");
        assert_eq!(check(&s, &c).unwrap_err(), TokenError::WrongNonce);
    }

    #[test]
    fn expiry_within_the_clock_leeway_is_tolerated() {
        let s = Signer::new("k1");
        let mut c = claims();
        c["exp"] = json!(NOW - 30);
        assert!(check(&s, &c).is_ok());
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let jwks = Jwks::default();
        for t in ["", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.e30"] {
            assert!(verify(t, &jwks, &want()).is_err(), "{t}");
        }
    }
}
