//! The identity provider as Lockstep learns it through `openidconnect`: discovery (with the key
//! set) is fetched on first use and kept for an hour, so Lockstep starts, and local accounts work,
//! while the provider is down. When a token names a key not in the set, the provider has rotated
//! its keys: [`Provider::refresh_keys`] fetches the set again — at most once a minute, so tokens
//! naming made-up keys cannot make Lockstep hammer the provider. Also here: the authorization
//! URL and the code-for-token exchange.

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType,
    CoreClientAuthMethod, CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreJsonWebKey,
    CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreSubjectIdentifierType, CoreTokenIntrospectionResponse,
    CoreTokenType,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, DiscoveryError, EmptyExtraTokenFields,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl, JsonWebKeySet, Nonce,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, StandardErrorResponse,
    StandardTokenResponse, TokenResponse as _,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::http::{Http, HttpError};
use super::idtoken::{AllClaims, IdToken};
use super::pending::NewSignIn;
use super::SsoError;
use crate::config::oidc::OidcConfig;

/// How long discovery and the key set are trusted before fetching them again, in seconds.
const CACHE_FOR_SECS: i64 = 3600;
/// The key set is fetched again for an unknown key at most this often, in seconds.
pub const REFRESH_KEYS_AT_MOST_EVERY_SECS: i64 = 60;

/// The one discovery field Lockstep reads beyond OpenID Connect Discovery (RFC 8414's).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PkceMethods {
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
}

impl openidconnect::AdditionalProviderMetadata for PkceMethods {}

/// The provider's discovery document, its key set included.
pub type Metadata = openidconnect::ProviderMetadata<
    PkceMethods,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type TokenAnswer = StandardTokenResponse<
    IdTokenFields<
        AllClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

/// An OpenID client whose ID tokens keep every claim (the role rules may read any).
type Client = openidconnect::Client<
    AllClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenAnswer,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What Lockstep last learned from the provider; times are the app clock's Unix seconds.
#[derive(Default)]
struct Cache {
    metadata: Option<(Metadata, i64)>,
    /// When an unknown key last made Lockstep fetch the key set (the rate limit).
    keys_refreshed_at: Option<i64>,
}

/// The provider as Lockstep sees it: an HTTP client and what it last learned.
pub struct Provider {
    http: Http,
    config: OidcConfig,
    issuer: IssuerUrl,
    cache: Mutex<Cache>,
}

impl Provider {
    pub fn new(config: OidcConfig) -> anyhow::Result<Provider> {
        Ok(Provider {
            http: Http::new(&config)?,
            issuer: IssuerUrl::new(config.issuer.clone())
                .map_err(|e| anyhow::anyhow!("oidc.issuer {}: {e}", config.issuer))?,
            config,
            cache: Mutex::new(Cache::default()),
        })
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Metadata and keys at `now`, from the cache or fetched.
    pub async fn current(&self, now: i64) -> Result<Metadata, SsoError> {
        let mut cache = self.cache.lock().await;
        if let Some((m, at)) = &cache.metadata {
            if (0..CACHE_FOR_SECS).contains(&(now - at)) {
                return Ok(m.clone());
            }
        }
        let metadata = self.discover().await?;
        cache.metadata = Some((metadata.clone(), now));
        Ok(metadata)
    }

    /// The key set after a token named a key not in it: fetched again unless that was done less
    /// than [`REFRESH_KEYS_AT_MOST_EVERY_SECS`] ago, in which case the set as last fetched. The
    /// lock is held over the fetch, so a burst of sign-ins after a rotation fetches once.
    pub async fn refresh_keys(&self, now: i64) -> Result<CoreJsonWebKeySet, SsoError> {
        let mut cache = self.cache.lock().await;
        let recently = cache
            .keys_refreshed_at
            .is_some_and(|at| now - at < REFRESH_KEYS_AT_MOST_EVERY_SECS);
        let Some((metadata, _)) = cache.metadata.as_mut() else {
            drop(cache);
            return Ok(self.current(now).await?.jwks().clone());
        };
        if recently {
            return Ok(metadata.jwks().clone());
        }
        let keys = JsonWebKeySet::fetch_async(metadata.jwks_uri(), &self.http)
            .await
            .map_err(|e| self.discovery_error("key set", e))?;
        *metadata = metadata.clone().set_jwks(keys.clone());
        cache.keys_refreshed_at = Some(now);
        tracing::info!(issuer = %self.config.issuer, keys = keys.keys().len(), "fetched the identity provider's keys again: a token named a key not seen before");
        Ok(keys)
    }

    async fn discover(&self) -> Result<Metadata, SsoError> {
        // The crate checks that the document names exactly the issuer asked (Discovery 4.3).
        let metadata = Metadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| self.discovery_error("discovery", e))?;
        if let Some(methods) = &metadata
            .additional_metadata()
            .code_challenge_methods_supported
        {
            if !methods.iter().any(|m| m == "S256") {
                return Err(SsoError::ProviderUnusable(
                    "it does not support PKCE with S256".into(),
                ));
            }
        }
        let token = metadata.token_endpoint().map(|t| t.url());
        let token = token.ok_or_else(|| {
            SsoError::ProviderUnusable("its discovery document names no token_endpoint".into())
        })?;
        for (name, u) in [
            (
                "authorization_endpoint",
                metadata.authorization_endpoint().url(),
            ),
            ("token_endpoint", token),
            ("jwks_uri", metadata.jwks_uri().url()),
        ] {
            if !crate::config::oidc::secure_or_loopback(u) {
                return Err(SsoError::ProviderUnusable(format!(
                    "its {name} `{u}` is not an https URL"
                )));
            }
        }
        Ok(metadata)
    }

    fn discovery_error(&self, what: &str, e: DiscoveryError<HttpError>) -> SsoError {
        let down = |cause: String| SsoError::ProviderDown {
            issuer: self.config.issuer.clone(),
            cause: format!("{what}: {cause}"),
        };
        match e {
            DiscoveryError::Request(e) => down(e.to_string()),
            DiscoveryError::Response(_, _, message) => down(message),
            DiscoveryError::Parse(e) => {
                SsoError::ProviderUnusable(format!("its {what} is not what OpenID says: {e}"))
            }
            other => SsoError::ProviderUnusable(format!("its {what}: {other}")),
        }
    }

    fn client(&self, metadata: &Metadata) -> Client {
        Client::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            self.config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(RedirectUrl::from_url(self.config.redirect_url.clone()))
    }

    /// Where the browser goes to sign in: the code flow with this sign-in's state, nonce and
    /// PKCE challenge (S256), and the configured scopes (`openid` always first).
    pub fn authorization_url(&self, metadata: &Metadata, sign_in: &NewSignIn) -> reqwest::Url {
        let state = sign_in.state.clone();
        let nonce = sign_in.nonce.clone();
        let scopes = self.config.scopes.iter().filter(|s| *s != "openid");
        let (url, _, _) = self
            .client(metadata)
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .add_scopes(scopes.map(|s| Scope::new(s.clone())))
            .set_pkce_challenge(sign_in.code_challenge.clone())
            .url();
        url
    }

    /// Trades the authorization code (and the PKCE verifier) for an ID token, authenticating
    /// with the client secret by HTTP Basic when there is one (the crate form-encodes both
    /// parts, RFC 6749 2.3.1), else naming the client in the form.
    pub async fn exchange(
        &self,
        metadata: &Metadata,
        code: &str,
        verifier: &str,
    ) -> Result<IdToken, SsoError> {
        let client = self.client(metadata);
        let request = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| SsoError::ProviderUnusable(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()));
        let answer = request
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(refusal) => {
                    SsoError::CodeRefused(refusal.to_string())
                }
                RequestTokenError::Request(e) => SsoError::ProviderDown {
                    issuer: self.config.issuer.clone(),
                    cause: format!("token endpoint: {e}"),
                },
                RequestTokenError::Parse(e, _) => SsoError::ProviderUnusable(format!(
                    "its token answer is not what OpenID says: {e}"
                )),
                RequestTokenError::Other(e) => {
                    SsoError::ProviderUnusable(format!("its token endpoint: {e}"))
                }
            })?;
        answer.id_token().cloned().ok_or_else(|| {
            SsoError::ProviderUnusable(
                "its token answer has no id_token (is `openid` among the scopes?)".into(),
            )
        })
    }
}
