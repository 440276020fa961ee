//! Headless Chromium driven over the DevTools protocol (a WebSocket), for tests that
//! must act in the page — type into a form, click, reload — not only dump its DOM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A headless Chromium with one page; killed when dropped.
pub struct Browser {
    child: Child,
    socket: Socket,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Start Chromium (no network beyond loopback, no profile) and open `url`.
    pub async fn open(url: &str) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium is installed (scripts/test installs Debian's chromium)");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        let stderr = child.stderr.take().unwrap();
        let ws = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stderr).lines();
            let found = lines.by_ref().map_while(Result::ok).find_map(|line| {
                line.split_once("DevTools listening on ")
                    .map(|(_, url)| url.trim().to_owned())
            });
            // Keep draining, so Chromium never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            found
        })
        .await
        .unwrap()
        .expect("chromium printed its DevTools address");
        let (socket, _) = tokio_tungstenite::connect_async(ws.as_str()).await.unwrap();
        let mut browser = Self {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = browser
            .call(None, "Target.createTarget", json!({"url": url}))
            .await;
        let target_id = target["targetId"].as_str().unwrap().to_owned();
        let attached = browser
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        browser
    }

    /// Send a command (to the page when `session` is its id) and wait for its result.
    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.socket
            .send(Message::Text(msg.to_string().into()))
            .await
            .unwrap();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(20), self.socket.next())
                .await
                .expect("chromium answered")
                .expect("the DevTools socket is open")
                .unwrap();
            let Message::Text(text) = frame else {
                continue;
            };
            let reply: Value = serde_json::from_str(&text).unwrap();
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// Evaluate `expression` in the page (promises awaited); its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let session = self.session.clone();
        let result = self
            .call(
                Some(&session),
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Evaluate `condition` until it is `true` (within 15 s); while the page loads, a
    /// condition that throws counts as false.
    pub async fn wait_for(&mut self, condition: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let guarded = format!(
            "(() => {{ try {{ return !!({condition}); }} catch (e) {{ return false; }} }})()"
        );
        loop {
            if self.eval(&guarded).await == json!(true) {
                return;
            }
            if Instant::now() >= deadline {
                let html = self
                    .eval("document.documentElement?.outerHTML ?? '(no document)'")
                    .await;
                panic!("never true: {condition}\n{html}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Reload the page.
    pub async fn reload(&mut self) {
        let session = self.session.clone();
        self.call(Some(&session), "Page.reload", json!({})).await;
    }
}
