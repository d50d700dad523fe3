//! The HTTP client `openidconnect` talks to the provider through (discovery, keys, the token
//! exchange): the project's reqwest on rustls — no second TLS stack — with the site's CA file as
//! the roots for an https issuer, no redirect followed, a time limit on every request and a bound
//! on the size of every answer, so a slow or hostile provider can hold neither a task nor memory.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use openidconnect::{HttpRequest, HttpResponse};

use crate::config::oidc::OidcConfig;

/// Per request to the provider.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest provider answer read (metadata, keys, tokens are a few kB).
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Why a request to the provider got no answer: the reason, never the URL's query.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// A reqwest client shaped for the provider.
pub struct Http {
    client: reqwest::Client,
}

impl Http {
    /// Builds the client (roots from `ca_file` when the issuer uses https).
    pub fn new(config: &OidcConfig) -> anyhow::Result<Http> {
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
        Ok(Http {
            client: builder.build()?,
        })
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let url = reqwest::Url::parse(&parts.uri.to_string())
            .map_err(|e| HttpError(format!("not a URL: {e}")))?;
        let resp = self
            .client
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| HttpError(e.without_url().to_string()))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = read_limited(resp).await?;
        let mut answer = HttpResponse::new(body);
        *answer.status_mut() = status;
        *answer.headers_mut() = headers;
        Ok(answer)
    }
}

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

/// The body, refused once it passes [`MAX_ANSWER_BYTES`] (read chunk by chunk, so a provider
/// that never stops sending costs at most that much memory).
async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| HttpError(e.without_url().to_string()))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER_BYTES {
            return Err(HttpError(format!(
                "answer larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
    }
    Ok(body)
}
