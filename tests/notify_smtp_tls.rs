//! E-mail through real SMTP servers on loopback that protect themselves the way corporate relays
//! do: Python's aiosmtpd (Debian python3-aiosmtpd) requiring STARTTLS and AUTH, or speaking
//! implicit TLS, or offering neither. The server's certificate comes from a CA the test makes;
//! Lockstep trusts it only through the CA file, as a site's would. Delivered messages are read
//! back from the server's Maildir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lockstep::notify::config::{Email, SmtpAuth, SmtpTls};
use lockstep::notify::smtp::{Mail, Relay};
use lockstep::notify::NotifyKind;

const PYTHON: &str = "/usr/bin/python3";
const USER: &str = "lockstep";
const PASSWORD: &str = "correct horse battery staple";

/// The server: `MODE PORT MAILDIR CERT KEY USER PASSWORD`. `starttls` requires STARTTLS before
/// anything and AUTH before mail; `implicit` speaks TLS from the first byte and requires AUTH;
/// `plain` offers neither.
const SERVER: &str = r#"
import sys, ssl, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

mode, port, maildir, cert, key, user, password = sys.argv[1:8]

def authenticator(server, session, envelope, mechanism, data):
    ok = (isinstance(data, LoginPassword)
          and data.login.decode() == user and data.password.decode() == password)
    # handled=False: aiosmtpd itself answers a refusal (535), as a relay would.
    return AuthResult(success=ok, handled=False)

def context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx

kwargs = {}
if mode == "starttls":
    kwargs = dict(tls_context=context(), require_starttls=True, auth_required=True,
                  auth_require_tls=True, authenticator=authenticator)
elif mode == "implicit":
    kwargs = dict(ssl_context=context(), auth_required=True, auth_require_tls=False,
                  authenticator=authenticator)
controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port), **kwargs)
controller.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA named `ca_name` and a server certificate for 127.0.0.1 (IP SAN) and localhost it
    /// signed.
    fn new(ca_name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, ca_name);
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
                .unwrap();
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "smtp.test");
        let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

struct Server {
    child: Child,
    addr: String,
    maildir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(mode: &str, pki: &Pki) -> Server {
    let probe = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "these tests need aiosmtpd for {PYTHON}: apt-get install python3-aiosmtpd ({probe:?})"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let maildir = tempfile::tempdir().unwrap();
    let child = Command::new(PYTHON)
        .args(["-c", SERVER, mode, &port.to_string()])
        .arg(maildir.path().join("Maildir"))
        .arg(pki.dir.path().join("server.pem"))
        .arg(pki.dir.path().join("server.key"))
        .args([USER, PASSWORD])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    let addr = format!("127.0.0.1:{port}");
    lockstep_testsupport::smtp::wait_listening(&addr);
    Server {
        child,
        addr,
        maildir,
    }
}

fn stored(server: &Server) -> Vec<String> {
    lockstep_testsupport::smtp::maildir_messages(&server.maildir.path().join("Maildir"))
}

fn email(server: &Server, tls: SmtpTls, password: Option<&str>) -> Email {
    Email {
        server: server.addr.clone(),
        tls,
        auth: password.map(|p| SmtpAuth {
            username: USER.into(),
            password: p.into(),
        }),
        from: "lockstep@dc.example".into(),
        to: vec!["upgrades@dc.example".into()],
        events: vec![NotifyKind::RunFinished],
    }
}

async fn send(email: &Email, ca_file: &Path) -> Result<(), String> {
    let relay = Relay::new(email, ca_file, Duration::from_secs(20))?;
    relay
        .send(&Mail {
            from: &email.from,
            to: &email.to,
            subject: "[Lockstep] Run r-1 finished: succeeded",
            body: "Run r-1 finished: succeeded\n.\nA line that was only a dot stays in the body.\n",
        })
        .await
}

fn assert_delivered(server: &Server) {
    let messages = stored(server);
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    assert!(
        m.contains("Subject: [Lockstep] Run r-1 finished: succeeded"),
        "{m}"
    );
    assert!(m.contains("upgrades@dc.example"), "{m}");
    assert!(
        m.contains("\n.\n") || m.contains("\r\n.\r\n"),
        "the dot line: {m}"
    );
}

#[tokio::test]
async fn mail_goes_through_a_relay_requiring_starttls_and_auth() {
    let pki = Pki::new("Test Mail CA");
    let server = start("starttls", &pki);
    send(
        &email(&server, SmtpTls::StartTls, Some(PASSWORD)),
        &pki.ca_file(),
    )
    .await
    .unwrap();
    assert_delivered(&server);
}

#[tokio::test]
async fn mail_goes_through_implicit_tls_with_auth() {
    let pki = Pki::new("Test Mail CA");
    let server = start("implicit", &pki);
    send(
        &email(&server, SmtpTls::Implicit, Some(PASSWORD)),
        &pki.ca_file(),
    )
    .await
    .unwrap();
    assert_delivered(&server);
}

#[tokio::test]
async fn a_wrong_password_is_refused_naming_the_login() {
    let pki = Pki::new("Test Mail CA");
    let server = start("starttls", &pki);
    let e = send(
        &email(&server, SmtpTls::StartTls, Some("wrong")),
        &pki.ca_file(),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains(&format!("refused the login of `{USER}`")) && e.contains("535"),
        "{e}"
    );
    assert!(
        !e.contains("wrong"),
        "the password is never in the error: {e}"
    );
    assert!(stored(&server).is_empty());
}

#[tokio::test]
async fn without_auth_a_relay_that_requires_it_refuses_the_mail() {
    let pki = Pki::new("Test Mail CA");
    let server = start("starttls", &pki);
    let e = send(&email(&server, SmtpTls::StartTls, None), &pki.ca_file())
        .await
        .unwrap_err();
    assert!(e.contains("530"), "{e}");
    assert!(stored(&server).is_empty());
}

#[tokio::test]
async fn a_relay_whose_certificate_the_site_does_not_trust_is_refused() {
    let pki = Pki::new("Test Mail CA");
    let server = start("implicit", &pki);
    let other = Pki::new("Another CA");
    let e = send(
        &email(&server, SmtpTls::Implicit, Some(PASSWORD)),
        &other.ca_file(),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("TLS with SMTP server 127.0.0.1")
            && e.contains("invalid peer certificate: UnknownIssuer"),
        "{e}"
    );
    assert!(stored(&server).is_empty());
}

#[tokio::test]
async fn a_server_offering_neither_starttls_nor_auth_is_refused_unless_plain_relay_is_allowed() {
    let pki = Pki::new("Test Mail CA");
    let server = start("plain", &pki);
    let e = send(&email(&server, SmtpTls::StartTls, None), &pki.ca_file())
        .await
        .unwrap_err();
    assert!(e.contains("STARTTLS is not supported"), "{e}");
    let e = send(
        &email(&server, SmtpTls::StartTls, Some(PASSWORD)),
        &pki.ca_file(),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("STARTTLS"),
        "no password goes out before TLS: {e}"
    );
    assert!(stored(&server).is_empty());
    // `tls = "none"` exists only where the settings allowed it: loopback (or plain_relays) AND
    // allow_plain (see config::notify::email's tests for the refusals).
    send(
        &email(&server, SmtpTls::None, None),
        Path::new("/no/ca/needed"),
    )
    .await
    .unwrap();
    assert_delivered(&server);
}

#[tokio::test]
async fn a_missing_ca_file_is_named_before_anything_is_sent() {
    let pki = Pki::new("Test Mail CA");
    let server = start("starttls", &pki);
    let e = Relay::new(
        &email(&server, SmtpTls::StartTls, Some(PASSWORD)),
        Path::new("/no/such/ca.pem"),
        Duration::from_secs(5),
    )
    .err()
    .unwrap();
    assert!(e.contains("notify.ca_file /no/such/ca.pem"), "{e}");
}
