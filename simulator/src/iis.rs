//! The IIS side of a simulated server: Support Center's logon page (installed version at the
//! bottom), the DataTransfer API status XML and the Management API's WCF service page, served
//! over HTTPS with the server's certificate and over plain HTTP on the same port (the first
//! byte tells a TLS ClientHello from an HTTP request).
//!
//! What the pages say comes from the host's state on every request, so completing Setup on the
//! simulated host changes the version, stopping W3SVC makes IIS answer 503, and a redirect of
//! `RegistryConnect` changes the Registry the applications report.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::certs::{self, CertError, ServerCert, SimCa};

/// What a server's IIS hosts and how its certificate looks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebSpec {
    pub name: String,
    pub fqdn: String,
    /// Certificate common name; `None` serves plain HTTP only.
    pub certificate_cn: Option<String>,
    /// Signed by the simulator CA (`trusted-ca`) rather than self-signed.
    pub trusted: bool,
    pub support_center: bool,
    pub datatransfer: bool,
    pub management_api: bool,
}

/// Faults injectable into one server's web endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebFaults {
    /// Support Center shows this version whatever is installed (a stale deployment).
    pub shown_version: Option<String>,
    /// The DataTransfer status answers a truncated, non-well-formed document.
    pub status_not_xml: bool,
    /// The Management API page says this instead of "You have created a service.".
    pub management_text: Option<String>,
    /// The certificate presented names another host.
    pub cert_cn_mismatch: bool,
}

/// What the pages need to know about the host, read on every request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostSnapshot {
    pub version: Option<String>,
    pub iis_running: bool,
    /// The Registry server the web applications use (`RegistryConnect`).
    pub registry: Option<String>,
}

pub trait HostView: Send + Sync + 'static {
    fn snapshot(&self) -> Result<HostSnapshot, String>;
}

/// The keys the seed gives for `RegistryConnect` (SEED-NOTES 1).
pub const REGISTRY_CONNECT_KEYS: [&str; 3] = [
    r"HKLM\SOFTWARE\Wow6432Node\SupportCenter",
    r"HKLM\SOFTWARE\Connected\WoW6432Node\SupportCenter",
    r"HKLM\SOFTWARE\Wow6432Node\Connected\SupportCenter",
];

impl HostView for lockstep_agent::backend::simulated::SimulatedHost {
    fn snapshot(&self) -> Result<HostSnapshot, String> {
        let s = self.read().map_err(|e| e.to_string())?;
        let iis_running = s
            .services
            .get("W3SVC")
            .map(|svc| svc.state == lockstep_protocol::evidence::ServiceRunState::Running)
            .unwrap_or(false);
        let registry = REGISTRY_CONNECT_KEYS.iter().find_map(|k| {
            s.registry_value(k, "RegistryConnect")
                .map(|v| registry_server(v))
        });
        Ok(HostSnapshot {
            version: s.product_version.clone(),
            iis_running,
            registry,
        })
    }
}

/// The server a `RegistryConnect` value names: its `SERVER=` part (it is an ODBC connection
/// string), or the whole value when it has none.
pub fn registry_server(value: &str) -> String {
    value
        .split(';')
        .find_map(|part| {
            let (k, v) = part.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("server")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| value.trim().to_string())
}

/// A host whose state is set directly (tests, and servers without an agent).
#[derive(Default)]
pub struct FixedHost(pub Mutex<HostSnapshot>);

impl HostView for FixedHost {
    fn snapshot(&self) -> Result<HostSnapshot, String> {
        self.0
            .lock()
            .map(|s| s.clone())
            .map_err(|_| "host state lock poisoned".to_string())
    }
}

struct Site {
    spec: WebSpec,
    host: Arc<dyn HostView>,
    faults: RwLock<WebFaults>,
    tls: RwLock<Option<Arc<rustls::ServerConfig>>>,
    /// The honest certificate, and one naming another host (for the mismatch fault).
    good: Option<Arc<rustls::ServerConfig>>,
    wrong: Option<Arc<rustls::ServerConfig>>,
    /// The honest leaf certificate, PEM and DER.
    leaf_pem: Option<String>,
    leaf_der: Option<Vec<u8>>,
}

/// A running web endpoint. Dropping it closes the port (probes then see connection refused).
pub struct WebEndpoint {
    pub addr: SocketAddr,
    site: Arc<Site>,
    task: JoinHandle<()>,
}

impl Drop for WebEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn make_cert(spec: &WebSpec, cn: &str, ca: &SimCa) -> Result<ServerCert, CertError> {
    if spec.trusted {
        ca.issue(cn)
    } else {
        certs::self_signed(cn)
    }
}

impl WebEndpoint {
    pub fn start(
        listener: TcpListener,
        spec: WebSpec,
        ca: &SimCa,
        host: Arc<dyn HostView>,
    ) -> anyhow::Result<WebEndpoint> {
        let addr = listener.local_addr()?;
        let (good, wrong, leaf_pem, leaf_der) = match &spec.certificate_cn {
            Some(cn) => {
                let cert = make_cert(&spec, cn, ca)?;
                let good = certs::server_config(&cert)?;
                let other = format!("not-{}", spec.fqdn);
                let wrong = certs::server_config(&make_cert(&spec, &other, ca)?)?;
                let der = cert.chain.first().map(|c| c.to_vec());
                (
                    Some(Arc::new(good)),
                    Some(Arc::new(wrong)),
                    Some(cert.leaf_pem),
                    der,
                )
            }
            None => (None, None, None, None),
        };
        let site = Arc::new(Site {
            spec,
            host,
            faults: RwLock::new(WebFaults::default()),
            tls: RwLock::new(good.clone()),
            good,
            wrong,
            leaf_pem,
            leaf_der,
        });
        let s = site.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => { conns.spawn(serve(stream, s.clone())); }
                        Err(e) => tracing::warn!(error = %e, "web accept failed"),
                    },
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(WebEndpoint { addr, site, task })
    }

    /// The certificate presented (without faults), PEM; `None` without HTTPS.
    pub fn certificate_pem(&self) -> Option<&str> {
        self.site.leaf_pem.as_deref()
    }

    /// The certificate presented (without faults), DER.
    pub fn certificate_der(&self) -> Option<&[u8]> {
        self.site.leaf_der.as_deref()
    }

    pub fn spec(&self) -> &WebSpec {
        &self.site.spec
    }

    pub fn faults(&self) -> WebFaults {
        self.site
            .faults
            .read()
            .map(|f| f.clone())
            .unwrap_or_default()
    }

    pub fn set_faults(&self, f: WebFaults) {
        let cfg = if f.cert_cn_mismatch {
            self.site.wrong.clone()
        } else {
            self.site.good.clone()
        };
        if let Ok(mut t) = self.site.tls.write() {
            *t = cfg;
        }
        if let Ok(mut w) = self.site.faults.write() {
            *w = f;
        }
    }
}

async fn serve(stream: TcpStream, site: Arc<Site>) {
    let app = Router::new().fallback(page).with_state(site.clone());
    let svc = TowerToHyperService::new(app);
    let mut first = [0u8; 1];
    let is_tls = matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16);
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if is_tls {
        let Some(cfg) = site.tls.read().ok().and_then(|t| t.clone()) else {
            return; // no certificate bound: IIS has no HTTPS binding here
        };
        match tokio_rustls::TlsAcceptor::from(cfg).accept(stream).await {
            Ok(tls) => {
                let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
            }
            Err(e) => tracing::debug!(error = %e, "TLS handshake with a probe failed"),
        }
    } else {
        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
    }
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn page(State(site): State<Arc<Site>>, uri: Uri) -> Response {
    let snap = match site.host.snapshot() {
        Ok(s) => s,
        Err(e) => {
            return html(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("<h1>Server Error</h1><p>{}</p>", escape(&e)),
            )
        }
    };
    if !snap.iis_running {
        return html(
            StatusCode::SERVICE_UNAVAILABLE,
            "<h1>Service Unavailable</h1><hr><p>HTTP Error 503. The service is unavailable.</p>"
                .into(),
        );
    }
    let faults = site.faults.read().map(|f| f.clone()).unwrap_or_default();
    let path = uri.path().to_ascii_lowercase();
    let path = path.trim_end_matches('/');
    let spec = &site.spec;
    let version = snap
        .version
        .clone()
        .unwrap_or_else(|| "(not installed)".into());
    let registry = snap.registry.clone().unwrap_or_default();
    match path {
        "/supportcenter" | "/supportcenter/logon.aspx" | "/supportcenter/default.aspx" if spec.support_center => {
            let shown = faults.shown_version.unwrap_or(version);
            html(
                StatusCode::OK,
                format!(
                    "<!DOCTYPE html>\n<html><head><title>Support Center - Log On</title></head>\n<body>\n\
                     <form method=\"post\" action=\"logon.aspx\">\n<h1>Support Center</h1>\n\
                     <label>User name <input name=\"UserName\"></label>\n\
                     <label>Password <input type=\"password\" name=\"Password\"></label>\n\
                     <button type=\"submit\">Log On</button>\n</form>\n\
                     <div id=\"footer\">Connected Backup Support Center on {} &middot; Registry {} &middot; Version {}</div>\n\
                     </body></html>\n",
                    escape(&spec.name),
                    escape(&registry),
                    escape(&shown)
                ),
            )
        }
        "/ose/outflowserviceextension.dll/status" if spec.datatransfer => {
            let body = if faults.status_not_xml {
                "<OutflowServiceExtension><Status>Running</Status><Version>".to_string()
            } else {
                format!(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<OutflowServiceExtension>\
                     <Status>Running</Status><Server>{}</Server><Version>{}</Version><Registry>{}</Registry>\
                     </OutflowServiceExtension>\n",
                    escape(&spec.name),
                    escape(&version),
                    escape(&registry)
                )
            };
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
        }
        "/managementapi/managementservice.svc" if spec.management_api => {
            let intro = faults.management_text.unwrap_or_else(|| "You have created a service.".into());
            html(
                StatusCode::OK,
                format!(
                    "<HTML><HEAD><TITLE>ManagementService Service</TITLE></HEAD><BODY>\
                     <DIV id=\"content\"><P class=\"heading1\">ManagementService Service</P><BR/>\
                     <P class=\"intro\">{}<P class=\"intro\">To test this service, you will need to create a client \
                     and use it to call the service.</P></DIV></BODY></HTML>",
                    escape(&intro)
                ),
            )
        }
        _ => html(
            StatusCode::NOT_FOUND,
            "<h2>404 - File or directory not found.</h2><p>The resource you are looking for might have been removed.</p>"
                .into(),
        ),
    }
}
