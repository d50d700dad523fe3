//! Talking to the identity provider: discovery (`/.well-known/openid-configuration`), its key
//! set, and the code-for-token exchange. Discovery and keys are fetched on first use and kept for
//! an hour (keys again at once when a token names a key not yet seen), so Lockstep starts, and
//! local accounts work, while the provider is down.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use super::idtoken::Jwks;
use super::SsoError;
use crate::config::oidc::OidcConfig;

/// How long discovery and the key set are trusted before fetching them again.
const CACHE_FOR: Duration = Duration::from_secs(3600);
/// Per request to the provider.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest provider answer read (metadata, keys, tokens are a few kB).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// The parts of the provider's metadata Lockstep uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
}

struct Cached {
    metadata: Metadata,
    jwks: Jwks,
    fetched: Instant,
}

/// The provider as Lockstep sees it: an HTTP client and what it last learned.
pub struct Provider {
    http: reqwest::Client,
    config: OidcConfig,
    cache: Mutex<Option<Cached>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl Provider {
    /// Builds the HTTP client (roots from `ca_file` when the issuer uses https).
    pub fn new(config: OidcConfig) -> anyhow::Result<Provider> {
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("lockstep/", env!("CARGO_PKG_VERSION")));
        if config.issuer.starts_with("https://") {
            let pem = std::fs::read(&config.ca_file)
                .map_err(|e| anyhow::anyhow!("oidc.ca_file {}: {e}", config.ca_file.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| anyhow::anyhow!("oidc.ca_file {}: {e}", config.ca_file.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(Provider {
            http: builder.build()?,
            config,
            cache: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Metadata and keys, from the cache or fetched.
    pub async fn current(&self) -> Result<(Metadata, Jwks), SsoError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref().filter(|c| c.fetched.elapsed() < CACHE_FOR) {
            return Ok((c.metadata.clone(), c.jwks.clone()));
        }
        let metadata = self.discover().await?;
        let jwks = self.fetch_jwks(&metadata).await?;
        *cache = Some(Cached {
            metadata: metadata.clone(),
            jwks: jwks.clone(),
            fetched: Instant::now(),
        });
        Ok((metadata, jwks))
    }

    /// The key set fetched again (the provider rotated its keys).
    pub async fn refresh_jwks(&self) -> Result<Jwks, SsoError> {
        let (metadata, _) = self.current().await?;
        let jwks = self.fetch_jwks(&metadata).await?;
        if let Some(c) = self.cache.lock().await.as_mut() {
            c.jwks = jwks.clone();
        }
        Ok(jwks)
    }

    async fn discover(&self) -> Result<Metadata, SsoError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let metadata: Metadata = self.get_json(&url, "discovery").await?;
        // OpenID Connect Discovery 4.3: the document must name exactly the issuer we asked.
        if metadata.issuer != self.config.issuer {
            return Err(SsoError::ProviderUnusable(format!(
                "its discovery document names the issuer `{}`, but oidc.issuer is `{}`",
                metadata.issuer, self.config.issuer
            )));
        }
        if let Some(methods) = &metadata.code_challenge_methods_supported {
            if !methods.iter().any(|m| m == "S256") {
                return Err(SsoError::ProviderUnusable(
                    "it does not support PKCE with S256".into(),
                ));
            }
        }
        for (name, u) in [
            ("authorization_endpoint", &metadata.authorization_endpoint),
            ("token_endpoint", &metadata.token_endpoint),
            ("jwks_uri", &metadata.jwks_uri),
        ] {
            let ok =
                reqwest::Url::parse(u).is_ok_and(|u| crate::config::oidc::secure_or_loopback(&u));
            if !ok {
                return Err(SsoError::ProviderUnusable(format!(
                    "its {name} `{u}` is not an https URL"
                )));
            }
        }
        Ok(metadata)
    }

    async fn fetch_jwks(&self, metadata: &Metadata) -> Result<Jwks, SsoError> {
        self.get_json(&metadata.jwks_uri, "key set").await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T, SsoError> {
        let down = |e: String| SsoError::ProviderDown {
            issuer: self.config.issuer.clone(),
            cause: format!("{what}: {e}"),
        };
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| down(e.without_url().to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(down(format!("{url} answered {status}")));
        }
        let body = read_limited(resp).await.map_err(down)?;
        serde_json::from_slice(&body).map_err(|e| {
            SsoError::ProviderUnusable(format!("its {what} at {url} is not what OpenID says: {e}"))
        })
    }

    /// Trades the authorization code (and the PKCE verifier) for an ID token.
    pub async fn exchange(
        &self,
        metadata: &Metadata,
        code: &str,
        verifier: &str,
    ) -> Result<String, SsoError> {
        let c = &self.config;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", c.redirect_url.as_str()),
            ("code_verifier", verifier),
        ];
        let mut request = self.http.post(&metadata.token_endpoint);
        match &c.client_secret {
            // client_secret_basic, with both parts form-encoded first (RFC 6749 2.3.1).
            Some(secret) => {
                request = request.basic_auth(form_encode(&c.client_id), Some(form_encode(secret)))
            }
            None => form.push(("client_id", &c.client_id)),
        }
        let resp = request
            .form(&form)
            .send()
            .await
            .map_err(|e| SsoError::ProviderDown {
                issuer: c.issuer.clone(),
                cause: format!("token endpoint: {}", e.without_url()),
            })?;
        let status = resp.status();
        let body = read_limited(resp)
            .await
            .map_err(|e| SsoError::ProviderDown {
                issuer: c.issuer.clone(),
                cause: format!("token endpoint: {e}"),
            })?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorAnswer>(&body) {
                Ok(e) => SsoError::CodeRefused(match e.error_description {
                    Some(d) => format!("{}: {d}", e.error),
                    None => e.error,
                }),
                Err(_) => {
                    SsoError::ProviderUnusable(format!("its token endpoint answered {status}"))
                }
            });
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            SsoError::ProviderUnusable(format!("its token answer is not JSON: {e}"))
        })?;
        answer.id_token.ok_or_else(|| {
            SsoError::ProviderUnusable(
                "its token answer has no id_token (is `openid` among the scopes?)".into(),
            )
        })
    }
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER_BYTES {
            return Err(format!("answer larger than {MAX_ANSWER_BYTES} bytes"));
        }
    }
    Ok(body)
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::form_encode;

    #[test]
    fn form_encoding_escapes_everything_but_unreserved_characters() {
        assert_eq!(form_encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(form_encode("p@ss w:rd/é"), "p%40ss+w%3Ard%2F%C3%A9");
    }
}
