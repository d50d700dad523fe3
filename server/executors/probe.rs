//! The probe runner: verification probes of Support Center (version at the bottom of the logon
//! page), the DataTransfer API (`…/status` answers well-formed XML) and the Management API
//! (`ManagementService.svc` whose first sentence starts "You have created a", SEED-NOTES 13).
//!
//! Every probe records the HTTP status, the latency, the text it matched and, over HTTPS, the
//! TLS facts (protocol, certificate CN and SANs, issuer, validity, key usage, whether the CN or a
//! SAN names the host, whether the chain is trusted). Requests verify certificates strictly
//! against the configured anchors; the facts come from a separate handshake that records rather
//! than refuses (see [`tls`]). When the request is refused, the failure names what the
//! certificate gets wrong (the host it does not name, with the CN and SANs it does).
//! Probes only read, so a repeated key answers the recorded outcome without probing again.

pub mod pages;
pub mod tls;
pub mod x509;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use serde_json::{json, Value};

use crate::engine::executor::{ActionStatus, Dispatch, Executor, IdempotencyKey, Outcome};
use crate::knowledge::operation::{Operation, ProbeOperation};

/// How probes reach and trust the web servers.
#[derive(Debug, Clone, Default)]
pub struct ProbeConfig {
    /// Trust anchors (the site CA, or certificates the site chose to trust), PEM.
    pub trusted_pem: Vec<String>,
    /// Host name → address, for names DNS does not know (the simulator, a lab). The port is
    /// used when the URL names none.
    pub resolve: BTreeMap<String, SocketAddr>,
    /// Upper bound per probe (the step's own timeout may be shorter).
    pub timeout: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeConfigError {
    #[error("trusted certificate #{index} is not a PEM certificate: {reason}")]
    BadPem { index: usize, reason: String },
}

pub struct ProbeExecutor {
    config: ProbeConfig,
    roots: Arc<RootCertStore>,
    done: Mutex<HashMap<String, Outcome>>,
}

impl ProbeExecutor {
    pub fn new(config: ProbeConfig) -> Result<ProbeExecutor, ProbeConfigError> {
        let mut roots = RootCertStore::empty();
        for (index, pem) in config.trusted_pem.iter().enumerate() {
            let mut any = false;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| ProbeConfigError::BadPem {
                    index,
                    reason: e.to_string(),
                })?;
                roots.add(cert).map_err(|e| ProbeConfigError::BadPem {
                    index,
                    reason: e.to_string(),
                })?;
                any = true;
            }
            if !any {
                return Err(ProbeConfigError::BadPem {
                    index,
                    reason: "no CERTIFICATE block found".into(),
                });
            }
        }
        Ok(ProbeExecutor {
            config,
            roots: Arc::new(roots),
            done: Mutex::new(HashMap::new()),
        })
    }

    /// Runs one probe now (no idempotency bookkeeping).
    pub async fn probe(&self, op: &ProbeOperation, within: Duration) -> Outcome {
        let within = self.config.timeout.map(|t| t.min(within)).unwrap_or(within);
        let (url, kind) = match op {
            ProbeOperation::SupportCenter { url, .. } => (url, "support_center"),
            ProbeOperation::DataTransferStatus { url } => (url, "datatransfer_status"),
            ProbeOperation::ManagementService { url } => (url, "management_service"),
        };
        let mut ev = serde_json::Map::new();
        ev.insert("probe".into(), json!(kind));
        ev.insert("url".into(), json!(url));
        let fail = |message: String, ev: serde_json::Map<String, Value>| Outcome::Failed {
            message,
            evidence: Value::Object(ev),
        };
        let parsed = match reqwest::Url::parse(url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => u,
            Ok(u) => {
                return fail(
                    format!(
                        "probe URL `{url}` has scheme `{}`; expected http or https",
                        u.scheme()
                    ),
                    ev,
                )
            }
            Err(e) => return fail(format!("probe URL `{url}` is not a URL: {e}"), ev),
        };
        let Some(host) = parsed.host_str().map(str::to_string) else {
            return fail(format!("probe URL `{url}` names no host"), ev);
        };
        let https = parsed.scheme() == "https";
        let mut parsed = parsed;
        // An override with a port names the exact socket serving this host (a lab, the
        // simulator): the request goes there whatever port the URL names.
        if let Some(a) = self.override_for(&host).filter(|a| a.port() != 0) {
            let _ = parsed.set_port(Some(a.port()));
            ev.insert("address".into(), json!(a.to_string()));
        }
        let port = parsed
            .port_or_known_default()
            .unwrap_or(if https { 443 } else { 80 });

        // What the certificate itself gets wrong, for the failure message if the strict request
        // refuses it (the TLS library's own words do not name the CN and SANs it saw).
        let mut certificate_problems = String::new();
        if https {
            match self.address(&host, port).await {
                Ok(addr) => match tls::facts(&host, addr, self.roots.clone(), within).await {
                    Ok(f) => {
                        certificate_problems = f.problems.join("; ");
                        ev.insert(
                            "tls".into(),
                            serde_json::to_value(&f).unwrap_or(Value::Null),
                        );
                    }
                    Err(e) => {
                        ev.insert("tls_error".into(), json!(e));
                    }
                },
                Err(e) => {
                    ev.insert("error".into(), json!(e));
                    return fail(format!("{kind} probe of {url}: {e}"), ev);
                }
            }
        }

        let client = match self.client(within) {
            Ok(c) => c,
            Err(e) => return fail(format!("probe client could not be built: {e}"), ev),
        };
        let started = Instant::now();
        let resp = client.get(parsed.clone()).send().await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                ev.insert(
                    "latency_ms".into(),
                    json!(started.elapsed().as_millis() as u64),
                );
                let reason = describe(&e);
                ev.insert("error".into(), json!(reason));
                let why = match certificate_problems.as_str() {
                    "" => String::new(),
                    p => format!(" (the certificate {p})"),
                };
                return fail(format!("{kind} probe of {url} failed: {reason}{why}"), ev);
            }
        };
        let status = resp.status();
        ev.insert("status".into(), json!(status.as_u16()));
        let body = resp.text().await;
        ev.insert(
            "latency_ms".into(),
            json!(started.elapsed().as_millis() as u64),
        );
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                return fail(
                    format!(
                        "{kind} probe of {url}: reading the answer failed: {}",
                        describe(&e)
                    ),
                    ev,
                )
            }
        };
        if !status.is_success() {
            ev.insert(
                "body_start".into(),
                json!(body.chars().take(300).collect::<String>()),
            );
            return fail(format!("{kind} probe of {url} answered HTTP {status}"), ev);
        }
        match op {
            ProbeOperation::SupportCenter { expect_version, .. } => {
                ev.insert("expected_version".into(), json!(expect_version));
                match pages::support_center_version(&body) {
                    Some((found, matched)) => {
                        ev.insert("found_version".into(), json!(found));
                        ev.insert("matched".into(), json!(matched));
                        if pages::same_version(&found, expect_version) {
                            Outcome::Succeeded {
                                evidence: Value::Object(ev),
                            }
                        } else {
                            fail(format!("Support Center at {url} shows version {found}, expected {expect_version}"), ev)
                        }
                    }
                    None => fail(
                        format!("Support Center at {url} shows no version on its logon page"),
                        ev,
                    ),
                }
            }
            ProbeOperation::DataTransferStatus { .. } => match pages::xml_root(&body) {
                Ok(root) => {
                    ev.insert("xml_root".into(), json!(root));
                    ev.insert(
                        "matched".into(),
                        json!(format!("well-formed XML, root <{root}>")),
                    );
                    Outcome::Succeeded {
                        evidence: Value::Object(ev),
                    }
                }
                Err(e) => {
                    ev.insert("xml_error".into(), json!(e));
                    ev.insert(
                        "body_start".into(),
                        json!(body.chars().take(300).collect::<String>()),
                    );
                    fail(
                        format!("DataTransfer status at {url} is not well-formed XML: {e}"),
                        ev,
                    )
                }
            },
            ProbeOperation::ManagementService { .. } => {
                let sentence = pages::first_sentence(&body);
                ev.insert("first_sentence".into(), json!(sentence));
                match sentence {
                    Some(s) if s.starts_with("You have created a") => {
                        ev.insert("matched".into(), json!(s));
                        Outcome::Succeeded { evidence: Value::Object(ev) }
                    }
                    Some(s) => fail(format!("Management API page at {url} begins \"{s}\", not \"You have created a …\""), ev),
                    None => fail(format!("Management API page at {url} has no text"), ev),
                }
            }
        }
    }

    fn override_for(&self, host: &str) -> Option<SocketAddr> {
        self.config
            .resolve
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(host))
            .map(|(_, a)| *a)
    }

    async fn address(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        if let Some(mut a) = self.override_for(host) {
            a.set_port(port);
            return Ok(a);
        }
        tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("could not resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host} resolves to no address"))
    }

    fn client(&self, within: Duration) -> Result<reqwest::Client, String> {
        let tls = tls::strict_config(self.roots.clone())?;
        let mut b = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(within)
            .connect_timeout(within)
            .redirect(reqwest::redirect::Policy::limited(3));
        for (name, addr) in &self.config.resolve {
            // The URL carries the port (rewritten above when the override names one).
            b = b.resolve(name, SocketAddr::new(addr.ip(), 0));
        }
        b.build().map_err(|e| e.to_string())
    }
}

/// reqwest's error with its causes, e.g. "error sending request: … connection refused".
fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[async_trait::async_trait]
impl Executor for ProbeExecutor {
    async fn execute(&self, dispatch: &Dispatch) -> Outcome {
        let key = dispatch.key.as_string();
        if let Some(o) = self.done.lock().ok().and_then(|d| d.get(&key).cloned()) {
            return o;
        }
        let outcome = match &dispatch.operation {
            Operation::Probe(op) => {
                let outcome = self
                    .probe(op, Duration::from_secs(dispatch.timeout_secs.max(1)))
                    .await;
                crate::engine::steplog::line(crate::executors::words::probe(op, &outcome));
                crate::engine::steplog::detail(attempt_line(op, &outcome));
                outcome
            }
            other => Outcome::Failed {
                message: format!(
                    "the probe runner cannot run `{}` operations",
                    op_name(other)
                ),
                evidence: Value::Null,
            },
        };
        if let Ok(mut d) = self.done.lock() {
            d.insert(key, outcome.clone());
        }
        outcome
    }

    async fn status(&self, key: &IdempotencyKey, _host: Option<&str>) -> ActionStatus {
        match self
            .done
            .lock()
            .ok()
            .and_then(|d| d.get(&key.as_string()).cloned())
        {
            Some(outcome) => ActionStatus::Finished { outcome },
            // A probe only reads: running it again is always safe.
            None => ActionStatus::NotFound,
        }
    }
}

/// One probe attempt, as a step log line.
fn attempt_line(op: &ProbeOperation, outcome: &Outcome) -> String {
    let url = match op {
        ProbeOperation::SupportCenter { url, .. }
        | ProbeOperation::DataTransferStatus { url }
        | ProbeOperation::ManagementService { url } => url,
    };
    match outcome {
        Outcome::Succeeded { .. } => format!("probe {url}: as expected"),
        Outcome::Failed { message, .. } => format!("probe {url}: {message}"),
        Outcome::Unknown { reason } => format!("probe {url}: no answer: {reason}"),
        Outcome::NeedsPerson { reason, .. } => format!("probe {url}: handed to a person: {reason}"),
    }
}

fn op_name(op: &Operation) -> String {
    serde_json::to_value(op)
        .ok()
        .and_then(|v| v.get("op").and_then(|o| o.as_str()).map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}
