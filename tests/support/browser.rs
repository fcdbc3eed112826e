//! Headless Chromium driven over the Chrome DevTools Protocol: Debian's `chromium` started
//! with a throw-away profile and `--remote-debugging-port=0` (the port read from the
//! profile's `DevToolsActivePort`), one WebSocket to it, and a minimal CDP client: a command
//! is `{id, method, params, sessionId}` and its reply carries the same id; every event that
//! arrives meanwhile is kept, so a test can look for console errors, exceptions and
//! navigations afterwards. The browser's whole process group is killed on drop.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long one CDP command may take.
const REPLY_WITHIN: Duration = Duration::from_secs(20);
/// How long the browser may take to open its DevTools port.
const START_WITHIN: Duration = Duration::from_secs(30);

/// Where Debian installs it (`apt-get install chromium`), else `chromium` on the `PATH`.
fn chromium() -> PathBuf {
    let debian = PathBuf::from("/usr/bin/chromium");
    if debian.exists() {
        return debian;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|candidate| candidate.exists())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "this test needs Chromium: install Debian's `chromium` package \
             (`apt-get install chromium`; .ci/run does it on CI)"
        )
    })
}

/// A running headless Chromium with a CDP connection to it.
pub struct Browser {
    child: Child,
    /// The profile (`--user-data-dir`), removed on drop.
    _profile: tempfile::TempDir,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Every event received so far, in order.
    pub events: Vec<Value>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The renderer, GPU and zygote processes are in the browser's process group.
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    pub async fn launch() -> Browser {
        let binary = chromium();
        let profile = tempfile::tempdir().unwrap();
        let mut command = Command::new(&binary);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Browser {
            socket: connect(profile.path()).await,
            child,
            _profile: profile,
            next_id: 0,
            events: Vec::new(),
        }
    }

    /// Sends a command (to the page `session`, or to the browser) and waits for its reply;
    /// `Err` is CDP's error object.
    pub async fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = session.into();
        }
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("the DevTools socket takes commands");
        let deadline = tokio::time::Instant::now() + REPLY_WITHIN;
        loop {
            let received = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no reply to {method} within {REPLY_WITHIN:?}"))
                .expect("the DevTools socket stays open")
                .expect("a DevTools message");
            let Message::Text(text) = received else {
                continue;
            };
            let value: Value = serde_json::from_str(&text).expect("DevTools sends JSON");
            if value["id"] == id {
                return match value.get("error") {
                    Some(error) => Err(error.clone()),
                    None => Ok(value["result"].clone()),
                };
            }
            if value.get("method").is_some() {
                self.events.push(value);
            }
        }
    }

    /// A new tab attached with a flat session, with the Page, Runtime and Log domains on.
    pub async fn new_page(&mut self) -> String {
        let target = self
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await
            .unwrap();
        let target = target["targetId"].as_str().unwrap().to_string();
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await
            .unwrap();
        let session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            self.call(Some(&session), domain, json!({})).await.unwrap();
        }
        session
    }

    /// Evaluates `expression` in the page (promises awaited); its value, or the exception's
    /// description.
    pub async fn eval(&mut self, session: &str, expression: &str) -> Result<Value, String> {
        let result = self
            .call(
                Some(session),
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await
            .map_err(|e| e.to_string())?;
        if let Some(details) = result.get("exceptionDetails") {
            return Err(details.to_string());
        }
        Ok(result["result"]["value"].clone())
    }

    /// Polls `expression` every 50 ms until it is `true`; panics with `what` after `limit`.
    pub async fn wait_until(
        &mut self,
        session: &str,
        expression: &str,
        limit: Duration,
        what: &str,
    ) {
        let start = Instant::now();
        loop {
            if self.eval(session, expression).await == Ok(Value::Bool(true)) {
                return;
            }
            if start.elapsed() > limit {
                let html = self
                    .eval(session, "document.documentElement.outerHTML")
                    .await
                    .unwrap_or_default();
                panic!(
                    "{what}: not within {limit:?}\nproblems: {:#?}\npage: {html}",
                    self.problems()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens `url` in the page and waits for it to have loaded.
    pub async fn open(&mut self, session: &str, url: &str) {
        let navigated = self
            .call(Some(session), "Page.navigate", json!({ "url": url }))
            .await
            .unwrap();
        assert!(navigated.get("errorText").is_none(), "{navigated}");
        self.wait_until(
            session,
            "document.readyState === 'complete'",
            Duration::from_secs(10),
            "the page loads",
        )
        .await;
    }

    /// Console errors, uncaught exceptions and error log entries seen so far.
    pub fn problems(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| match e["method"].as_str() {
                Some("Runtime.consoleAPICalled") => {
                    matches!(e["params"]["type"].as_str(), Some("error" | "assert"))
                }
                Some("Runtime.exceptionThrown") => true,
                Some("Log.entryAdded") => e["params"]["entry"]["level"] == "error",
                _ => false,
            })
            .map(|e| e.to_string())
            .collect()
    }

    /// Main-frame navigations seen so far (`Page.frameNavigated` of a frame with no parent).
    pub fn navigations(&self) -> usize {
        self.events
            .iter()
            .filter(|e| {
                e["method"] == "Page.frameNavigated"
                    && e["params"]["frame"].get("parentId").is_none()
            })
            .count()
    }
}

/// Waits for `DevToolsActivePort` in the profile (port, then the browser's WebSocket path)
/// and connects to it.
async fn connect(profile: &std::path::Path) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
    let file = profile.join("DevToolsActivePort");
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                let url = format!("ws://127.0.0.1:{}{}", port.trim(), path.trim());
                let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
                    .await
                    .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
                return socket;
            }
        }
        assert!(
            start.elapsed() < START_WITHIN,
            "Chromium did not open its DevTools port within {START_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
