//! A small W3C WebDriver client over reqwest, driving headless Chromium through chromedriver
//! (Debian packages `chromium` and `chromium-driver`, installed by `scripts/test`). Each
//! [`Browser`] is its own chromedriver session with a fresh profile, so two of them are two
//! people with separate cookies.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver, stopped on drop.
pub struct Driver {
    child: Child,
    pub url: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Driver {
    /// Starts chromedriver; fails with a message naming the package when it is missing.
    pub async fn start() -> Driver {
        Driver::start_with_zone(None).await
    }

    /// Starts chromedriver whose browsers live in the time zone `tz` (an IANA name such as
    /// `Asia/Kolkata`, passed as `TZ`), to see what a viewer elsewhere sees.
    pub async fn start_in_zone(tz: &str) -> Driver {
        Driver::start_with_zone(Some(tz)).await
    }

    async fn start_with_zone(tz: Option<&str>) -> Driver {
        for (bin, pkg) in [
            ("chromedriver", "chromium-driver"),
            ("chromium", "chromium"),
        ] {
            let found = Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {bin}"))
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(
                found,
                "`{bin}` is not installed: install the Debian package `{pkg}` (scripts/test does)"
            );
        }
        let port = free_port();
        let mut command = Command::new("chromedriver");
        command
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(tz) = tz {
            command.env("TZ", tz);
        }
        let child = command.spawn().expect("chromedriver starts");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = driver
                .http
                .get(format!("{}/status", driver.url))
                .send()
                .await
            {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    /// A new headless browser with a fresh profile.
    pub async fn browser(&self) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,1600".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let r: Value = self
            .http
            .post(format!("{}/session", self.url))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("json");
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        Browser {
            base: format!("{}/session/{id}", self.url),
            http: self.http.clone(),
            _profile: profile,
        }
    }
}

pub struct Browser {
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

#[derive(Clone, Debug)]
pub struct Element(pub String);

impl Browser {
    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{}", self.base, path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .await
            .expect("webdriver request")
            .json()
            .await
            .expect("webdriver json");
        v["value"].clone()
    }

    async fn try_cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let v = self.cmd(method, path, body).await;
        match v.get("error").and_then(|e| e.as_str()) {
            Some(e) => Err(format!("{e}: {}", v["message"].as_str().unwrap_or(""))),
            None => Ok(v),
        }
    }

    pub async fn goto(&self, url: &str) {
        self.try_cmd(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await
            .expect("navigate");
    }

    pub async fn current_url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub async fn find(&self, css: &str) -> Result<Element, String> {
        let v = self
            .try_cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        Ok(Element(
            v[ELEMENT].as_str().ok_or("no element id")?.to_string(),
        ))
    }

    /// Waits up to `secs` for `css` to appear.
    pub async fn wait_for(&self, css: &str, secs: u64) -> Element {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            match self.find(css).await {
                Ok(e) => return e,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "`{css}` never appeared: {e}\npage: {}",
                    self.source().await
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.wait_for(css, 5).await;
        self.try_cmd(
            reqwest::Method::POST,
            &format!("/element/{}/value", e.0),
            Some(json!({"text": text})),
        )
        .await
        .expect("type");
    }

    pub async fn click(&self, css: &str) {
        let e = self.wait_for(css, 5).await;
        self.try_cmd(
            reqwest::Method::POST,
            &format!("/element/{}/click", e.0),
            Some(json!({})),
        )
        .await
        .expect("click");
    }

    /// The element's text; an error if it went stale (the page was replaced).
    pub async fn text_of(&self, e: &Element) -> Result<String, String> {
        self.try_cmd(
            reqwest::Method::GET,
            &format!("/element/{}/text", e.0),
            None,
        )
        .await
        .map(|v| v.as_str().unwrap_or("").to_string())
    }

    pub async fn text(&self, css: &str) -> String {
        let e = self.wait_for(css, 5).await;
        self.text_of(&e).await.unwrap_or_default()
    }

    pub async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub async fn screenshot(&self, path: &std::path::Path) {
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 png"))
            .expect("png");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("artifact dir");
        }
        std::fs::write(path, png).expect("screenshot written");
    }

    /// Resizes the browser window (the page's layout viewport follows).
    pub async fn set_window(&self, width: u32, height: u32) {
        self.try_cmd(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await
        .expect("window resized");
    }

    /// Runs `js` (a function body; `return` gives the value) in the page.
    pub async fn script(&self, js: &str) -> Value {
        self.try_cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Runs `js` asynchronously: it calls `arguments[arguments.length - 1](value)` when done.
    pub async fn script_async(&self, js: &str) -> Value {
        self.try_cmd(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({"script": js, "args": []})),
        )
        .await
        .unwrap_or_else(|e| panic!("async script failed: {e}"))
    }

    pub async fn quit(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}
