//! What the tests of hostile and malformed requests share (destination guard, request
//! framing, host pinning, malformed secrets, resource limits, upstream faults): the
//! credentials they seal, so that every refusal, transcript and log can be searched for
//! them; what a refusal must look like; raw exchanges that read until the proxy closes;
//! and a proxy with the reflection guard off (the tests read the injected credential back
//! from the echo upstream).
//!
//! The outside attacker, who seals secrets of its own beside a real one with the
//! reflection guard on, is [`super::attack`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenizer::secret::b64;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::raw::RawConn;
use super::upstream::Echo;
use super::{Env, Reply, bearer, inject, with};

/// The credential the inject secrets hold.
pub const TOKEN: &str = "adv-token-9f2c41e7";
/// The caller password the secrets are bound to.
pub const AUTH: &str = "adv-caller-pw-5b8d";
/// The key of the HMAC secrets (sealed in base64).
pub const HMAC_KEY: &str = "adv-hmac-key-0c3e";
pub const OAUTH_ACCESS: &str = "adv-oauth-access-77aa";
pub const OAUTH_REFRESH: &str = "adv-oauth-refresh-88bb";
pub const CLIENT_SECRET: &str = "adv-client-secret-66cc";

/// What hostile secrets carry besides the credentials: an injected header name and a
/// number where a string belongs. No refusal may quote them.
const NEVER_QUOTED: &[&str] = &["X-Evil", "31337"];

/// Every plaintext secret the tests seal, in every form it is written (the HMAC key is
/// sealed in base64).
pub fn plaintexts() -> Vec<String> {
    let mut all: Vec<String> = [
        TOKEN,
        AUTH,
        HMAC_KEY,
        OAUTH_ACCESS,
        OAUTH_REFRESH,
        CLIENT_SECRET,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    all.push(b64::encode(HMAC_KEY.as_bytes()));
    all
}

/// `text` (an error body, a transcript, a log) holds no registered secret.
pub fn assert_no_plaintext(context: &str, text: &str) {
    for secret in plaintexts() {
        assert!(
            !text.contains(&secret),
            "{context}: {secret:?} leaked in {text:?}"
        );
    }
}

/// `status`, and a body that is one short line containing `needle`, no secret and
/// nothing a hostile secret wrote by hand.
pub fn assert_refused(context: &str, got: u16, body: &str, status: u16, needle: &str) {
    assert_eq!(got, status, "{context}: {body:?}");
    let line = body.strip_suffix('\n').unwrap_or(body);
    assert!(
        !line.is_empty() && !line.contains(['\r', '\n']) && line.len() <= 200,
        "{context}: not one short line: {body:?}"
    );
    assert!(
        body.contains(needle),
        "{context}: want {needle:?} in {body:?}"
    );
    assert_no_plaintext(context, body);
    for quoted in NEVER_QUOTED {
        assert!(!body.contains(quoted), "{context}: {quoted:?} in {body:?}");
    }
}

/// [`assert_refused`], and no value the client sent (a sealed secret, a header; those
/// long enough to tell) comes back in `body`.
pub fn assert_refused_sent(
    context: &str,
    got: u16,
    body: &str,
    status: u16,
    needle: &str,
    sent: &[&str],
) {
    assert_refused(context, got, body, status, needle);
    for s in sent.iter().filter(|s| s.len() >= 16) {
        assert!(!body.contains(*s), "{context}: sent value echoed: {body:?}");
    }
}

/// `Proxy-Tokenizer` and `Proxy-Authorization` lines for `sealed`.
pub fn auth_lines(sealed: &str) -> String {
    format!("Proxy-Tokenizer: {sealed}\r\nProxy-Authorization: Bearer {AUTH}\r\n")
}

/// `sealed` with request-time params.
pub fn with_params(sealed: &str, params: Value) -> String {
    format!("{sealed}; {params}")
}

/// An HMAC secret with `hash`, bound to `AUTH`.
pub fn hmac_secret(hash: &str) -> Value {
    json!({
        "inject_hmac_processor": {"key": b64::encode(HMAC_KEY.as_bytes()), "hash": hash},
        "bearer_auth": bearer(AUTH),
    })
}

/// Everything the peer sends until it closes (or `quiet` passes without a byte), and
/// how long that took.
pub struct Transcript {
    pub bytes: Vec<u8>,
    pub closed: bool,
    pub took: Duration,
}

impl Transcript {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Status codes of every response in the transcript.
    pub fn statuses(&self) -> Vec<u16> {
        self.text()
            .split("HTTP/1.1 ")
            .skip(1)
            .filter_map(|r| r.get(..3)?.parse().ok())
            .collect()
    }
}

pub async fn read_until_close(stream: &mut TcpStream, quiet: Duration) -> Transcript {
    let start = Instant::now();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    let closed = loop {
        match tokio::time::timeout(quiet, stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => bytes.extend_from_slice(&chunk[..n]),
            Err(_) => break false,
        }
    };
    Transcript {
        bytes,
        closed,
        took: start.elapsed(),
    }
}

/// Write `bytes` on a fresh connection (the server may close before taking them all)
/// and read what comes back until it closes or is quiet for two seconds.
pub async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Transcript {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    read_until_close(&mut stream, Duration::from_secs(2)).await
}

/// Write `bytes` on a fresh connection and read until the server closes (within ten
/// seconds of quiet, or fail): the status and the whole transcript, `None` when it
/// closed without answering.
pub async fn answer_then_close(addr: SocketAddr, bytes: &[u8]) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let t = read_until_close(&mut stream, Duration::from_secs(10)).await;
    let text = t.text();
    assert!(t.closed, "server neither answered nor closed: {text:?}");
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text))
}

/// The status and body of a one-response transcript (`Content-Length` framed).
pub fn only_response(t: &Transcript) -> (u16, String) {
    let text = t.text();
    assert_eq!(t.statuses().len(), 1, "want one response: {text:?}");
    let status = t.statuses()[0];
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// The first bytes of each connection a [`plaintext_server`] accepted.
pub type FirstBytes = Arc<Mutex<Vec<Vec<u8>>>>;

/// A plain-text TCP server that records the first bytes of every connection, answers
/// with a bare HTTP 200 and closes.
pub async fn plaintext_server() -> (SocketAddr, FirstBytes) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
                    .await
                    .map_or(0, |r| r.unwrap_or(0));
                sink.lock().unwrap().push(buf[..n].to_vec());
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    (addr, got)
}

/// A proxy (loopback exempt from the guard, plus `extra` flags) and one TLS upstream on
/// 127.0.0.1 that is also `api.test`, `other.test` and `api80.test` (pinned to it).
pub async fn env(extra: &[&str]) -> Env {
    Env::builder()
        .names(&["127.0.0.1", "api.test", "other.test", "api80.test"])
        .flags(extra)
        .start()
        .await
}

/// What the hostile-request tests ask of an [`Env`].
pub trait Adversary {
    /// Inject `TOKEN` for bearer `AUTH`, anywhere.
    fn good(&self) -> String;

    /// Inject `TOKEN` only for `hosts`.
    fn for_hosts(&self, hosts: &[&str]) -> String;

    /// The requests the upstream has been handed that contain `needle`.
    fn seen_with(&self, needle: &str) -> Vec<String>;

    /// GET `target` through the proxy with `sealed` and `AUTH`.
    async fn authed(&self, target: &str, sealed: &str) -> Reply;

    /// GET `url` through the proxy with these `Proxy-Tokenizer` lines and `AUTH`.
    async fn get_url(&self, url: &str, secrets: &[&str]) -> (u16, String);

    /// GET `/` of the upstream with these `Proxy-Tokenizer` lines and `AUTH`.
    async fn get_with(&self, secrets: &[&str]) -> (u16, String) {
        self.get_url("/", secrets).await
    }

    /// `secrets` are refused with `status` and a clean line containing `needle` that
    /// quotes none of them.
    async fn refused(&self, secrets: &[&str], status: u16, needle: &str) {
        let (got, body) = self.get_with(secrets).await;
        assert_refused_sent("", got, &body, status, needle, secrets);
    }

    /// Each of `values`, alone, is refused with `status` and a body containing `needle`.
    async fn each_refused(&self, values: &[&str], status: u16, needle: &str) {
        for value in values {
            self.refused(&[value], status, needle).await;
        }
    }

    /// A raw absolute-form GET of `path` with `sealed`, `AUTH` and `extra` header lines.
    fn raw_get(&self, path: &str, sealed: &str, extra: &str) -> String;

    /// A tunnel to `api.test:80`, opened with `sealed` and `AUTH`.
    async fn api_tunnel(&self, sealed: &str) -> RawConn;

    /// A good request still gets the credential, for the host it named, and nothing
    /// injected.
    async fn still_serves(&self);

    /// Nothing refused so far reached the upstream.
    fn upstream_untouched(&self);

    /// Nothing refused reached the upstream, and a valid request still goes through.
    async fn unharmed(&self) {
        self.upstream_untouched();
        self.still_serves().await;
    }
}

impl Adversary for Env {
    fn good(&self) -> String {
        self.seal(&inject(TOKEN, AUTH))
    }

    fn for_hosts(&self, hosts: &[&str]) -> String {
        self.seal(&with(
            inject(TOKEN, AUTH),
            json!({ "allowed_hosts": hosts }),
        ))
    }

    fn seen_with(&self, needle: &str) -> Vec<String> {
        self.upstream
            .seen()
            .into_iter()
            .filter(|r| r.contains(needle))
            .collect()
    }

    async fn authed(&self, target: &str, sealed: &str) -> Reply {
        let auth = format!("Bearer {AUTH}");
        self.get(target, &[sealed], &[("proxy-authorization", &auth)])
            .await
    }

    async fn get_url(&self, url: &str, secrets: &[&str]) -> (u16, String) {
        let auth = format!("Bearer {AUTH}");
        let got = self
            .get(url, secrets, &[("proxy-authorization", &auth)])
            .await;
        (got.status, got.body)
    }

    fn raw_get(&self, path: &str, sealed: &str, extra: &str) -> String {
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\n{}{extra}\r\n",
            self.url(path),
            self.host(),
            auth_lines(sealed)
        )
    }

    async fn api_tunnel(&self, sealed: &str) -> RawConn {
        let auth = format!("Bearer {AUTH}");
        self.tunnel("api.test:80", &[sealed], &[("proxy-authorization", &auth)])
            .await
            .expect("a tunnel")
    }

    async fn still_serves(&self) {
        let mut conn = RawConn::open(self.tk.addr).await;
        let good = self.good();
        conn.send(self.raw_get("/still-serves", &good, "").as_bytes())
            .await;
        let resp = conn.read_response(false).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        let echo = Echo::parse(&resp.text());
        assert_eq!(
            echo.header_all("authorization"),
            [format!("Bearer {TOKEN}")]
        );
        assert_eq!(echo.header("host").unwrap(), self.host());
        assert!(echo.header("x-evil").is_none());
    }

    fn upstream_untouched(&self) {
        assert_eq!(
            self.upstream.connection_count(),
            0,
            "a refused request reached the upstream"
        );
    }
}
