//! The adversarial suite, through the running proxy: destination-guard bypasses, request
//! smuggling, header injection, host pinning, resource limits, upstream faults and
//! process hardening.
//!
//! Every plaintext credential a test seals or sends is listed in [`plaintexts`]; no error
//! body (and, for the tests that run the real binary, no log line) may contain one.
//! The guard test that needs control of name resolution (one name, a public and a
//! private address) runs as root in a network namespace: `tests/e2e/dual_resolution.rs`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenizer::secret::{OpenKey, b64};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::binary::{self, Server};
use crate::support::ca::TestCa;
use crate::support::raw::RawConn;
use crate::support::tokenizer::Tokenizer;
use crate::support::upstream::{Echo, Upstream};
use crate::support::{DeadPort, Env, Reply, bearer, inject, poll_until, seal_for, with};

/// The credential the inject secrets hold.
const TOKEN: &str = "adv-token-9f2c41e7";
/// The caller password the secrets are bound to.
const AUTH: &str = "adv-caller-pw-5b8d";
const HMAC_KEY: &str = "adv-hmac-key-0c3e";
const OAUTH_ACCESS: &str = "adv-oauth-access-77aa";
const OAUTH_REFRESH: &str = "adv-oauth-refresh-88bb";
const CLIENT_SECRET: &str = "adv-client-secret-66cc";

/// Every plaintext secret this file uses, in every form it is written (the HMAC key is
/// sealed in base64).
fn plaintexts() -> Vec<String> {
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
fn assert_no_plaintext(context: &str, text: &str) {
    for secret in plaintexts() {
        assert!(
            !text.contains(&secret),
            "{context}: {secret:?} leaked in {text:?}"
        );
    }
}

/// `status`, and a body that is one short line containing `needle` and no secret.
fn assert_refused(context: &str, got: u16, body: &str, status: u16, needle: &str) {
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
}

/// `Proxy-Tokenizer` and `Proxy-Authorization` lines for `sealed`.
fn auth_lines(sealed: &str) -> String {
    format!("Proxy-Tokenizer: {sealed}\r\nProxy-Authorization: Bearer {AUTH}\r\n")
}

/// Everything the peer sends until it closes (or `quiet` passes without a byte), and
/// how long that took.
struct Transcript {
    bytes: Vec<u8>,
    closed: bool,
    took: Duration,
}

impl Transcript {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Status codes of every response in the transcript.
    fn statuses(&self) -> Vec<u16> {
        self.text()
            .split("HTTP/1.1 ")
            .skip(1)
            .filter_map(|r| r.get(..3)?.parse().ok())
            .collect()
    }
}

async fn read_until_close(stream: &mut TcpStream, quiet: Duration) -> Transcript {
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
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Transcript {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    read_until_close(&mut stream, Duration::from_secs(2)).await
}

/// The status and body of a one-response transcript (`Content-Length` framed).
fn only_response(t: &Transcript) -> (u16, String) {
    let text = t.text();
    assert_eq!(t.statuses().len(), 1, "want one response: {text:?}");
    let status = t.statuses()[0];
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// A plain-text TCP server that records the first bytes of every connection, answers
/// with a bare HTTP 200 and closes.
async fn plaintext_server() -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
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
async fn env(extra: &[&str]) -> Env {
    Env::builder()
        .names(&["127.0.0.1", "api.test", "other.test", "api80.test"])
        .flags(extra)
        .start()
        .await
}

/// What the tests here ask of an [`Env`].
trait Adversary {
    /// Inject `TOKEN` for bearer `AUTH`, anywhere.
    fn good(&self) -> String;

    /// Inject `TOKEN` only for `hosts`.
    fn for_hosts(&self, hosts: &[&str]) -> String;

    /// The requests the upstream has been handed that contain `needle`.
    fn seen_with(&self, needle: &str) -> Vec<String>;

    /// GET `target` through the proxy with `sealed` and `AUTH`.
    async fn authed(&self, target: &str, sealed: &str) -> Reply;

    /// A raw absolute-form GET of `path` with `sealed`, `AUTH` and `extra` header lines.
    fn raw_get(&self, path: &str, sealed: &str, extra: &str) -> String;

    /// A tunnel to `api.test:80`, opened with `sealed` and `AUTH`.
    async fn api_tunnel(&self, sealed: &str) -> RawConn;

    /// A good request still gets the credential.
    async fn still_serves(&self);
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
        assert!(echo.header("x-evil").is_none());
    }
}

// === the destination guard ===

/// A proxy whose guard exempts nothing, and a TLS upstream on 127.0.0.1 that counts
/// connections: a spelling of loopback that slipped past the guard would reach it.
async fn guarded(extra: &[&str]) -> Env {
    Env::builder().guard(true).flags(extra).start().await
}

/// GET `url` through `tk` with a good secret, sent as written (a client library would
/// normalize `127.1` or `[0:0::1]` first); status and body.
async fn get_via(tk: &Tokenizer, url: &str) -> (u16, String) {
    let sealed = tk.seal(&inject(TOKEN, AUTH));
    let authority = url
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .unwrap_or(url);
    let t = exchange(
        tk.addr,
        format!(
            "GET {url} HTTP/1.1\r\nHost: {authority}\r\n{}Connection: close\r\n\r\n",
            auth_lines(&sealed)
        )
        .as_bytes(),
    )
    .await;
    only_response(&t)
}

/// The request for `url` was refused without a dial: by the guard (400 `destination not
/// allowed`), as a host that is neither a DNS name nor an IP literal (400 `bad host`),
/// or because the name does not resolve (502).
fn assert_not_dialled(url: &str, status: u16, body: &str) {
    let ok = match status {
        400 => body.contains("destination not allowed") || body.contains("bad host"),
        502 => body.contains("resolving upstream host"),
        _ => false,
    };
    assert!(ok, "{url}: {status} {body:?}");
    assert_refused(url, status, body, status, "");
    assert!(
        !body.contains("127.0.0.1"),
        "{url}: address echoed: {body:?}"
    );
}

#[tokio::test]
async fn decimal_octal_hex_and_short_ipv4_never_reach_loopback() {
    let g = guarded(&[]).await;
    let (upstream, tk) = (&g.upstream, &g.tk);
    let port = upstream.port();
    for host in [
        "2130706433",
        "017700000001",
        "0x7f000001",
        "0177.0.0.1",
        "0x7f.0.0.1",
        "0x7F.0x0.0x0.0x1",
        "0177.1",
        "0x7f.1",
        "127.1",
        "127.0.1",
        "127.000.000.001",
        "0",
        "0.0.0.0",
        "127.0.0.1.",
        "LOCALHOST",
        "LocalHost",
    ] {
        let url = format!("http://{host}:{port}/");
        let (status, body) = get_via(tk, &url).await;
        assert_not_dialled(&url, status, &body);
    }
    // The spellings that are valid host names still meet the guard, not a resolver
    // failure: the guard ran on what they resolve to.
    for host in ["0.0.0.0", "LOCALHOST"] {
        let (status, body) = get_via(tk, &format!("http://{host}:{port}/")).await;
        assert_refused(host, status, &body, 400, "destination not allowed");
    }
    assert_eq!(
        upstream.connection_count(),
        0,
        "a spelling reached loopback"
    );
}

#[tokio::test]
async fn ipv6_loopback_mapped_compatible_and_zoned_forms_are_refused() {
    let g = guarded(&[]).await;
    let (upstream, tk) = (&g.upstream, &g.tk);
    let port = upstream.port();
    let guard_refuses = [
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
        "[0000:0000:0000:0000:0000:0000:0000:0001]",
        "[::0:1]",
        "[::]",
        "[::ffff:7f00:1]",
        "[::ffff:127.0.0.2]",
        "[::FFFF:127.0.0.1]",
        "[::ffff:0.0.0.0]",
        "[::ffff:a9fe:a9fe]",
        "[::ffff:10.0.0.1]",
        "[::127.0.0.1]",
        "[::7f00:1]",
        "[64:ff9b::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[64:ff9b:1::7f00:1]",
        "[2002:7f00:1::1]",
        "[fe80::1]",
        "[fd00::1]",
    ];
    for host in guard_refuses {
        let (status, body) = get_via(tk, &format!("http://{host}:{port}/")).await;
        assert_refused(host, status, &body, 400, "destination not allowed");
    }
    // Zone ids: percent-encoded (RFC 6874) or raw, on link-local and loopback.
    for host in [
        "[fe80::1%25eth0]",
        "[fe80::1%25lo]",
        "[fe80::1%eth0]",
        "[::1%25lo]",
        "[::ffff:127.0.0.1%25lo]",
    ] {
        let url = format!("http://{host}:{port}/");
        let (status, body) = get_via(tk, &url).await;
        if status == 400 && body.is_empty() {
            // hyper refused the request target itself.
            continue;
        }
        assert_not_dialled(&url, status, &body);
    }
    assert_eq!(upstream.connection_count(), 0, "a form reached loopback");
}

/// `http://host:PORT` with any port but 80 and 443 is dialled on that port, with TLS,
/// and the guard still applies; `:80` means 443.
#[tokio::test]
async fn other_ports_are_dialled_with_tls_and_still_guarded() {
    let e = env(&[]).await;
    let good = e.good();
    // A TLS upstream on an arbitrary port: reached, over TLS, with the credential.
    let mut conn = RawConn::open(e.tk.addr).await;
    conn.send(e.raw_get("/port", &good, "").as_bytes()).await;
    let resp = conn.read_response(false).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echo = Echo::parse(&resp.text());
    assert_eq!(echo.header("host").unwrap(), e.host());
    // `:80` is port 443: the pin for api80.test applies only to 443.
    conn.send(
        format!(
            "GET http://api80.test:80/eighty HTTP/1.1\r\nHost: api80.test:80\r\n{}\r\n",
            auth_lines(&good)
        )
        .as_bytes(),
    )
    .await;
    let resp = conn.read_response(false).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        Echo::parse(&resp.text()).header("host").unwrap(),
        "api80.test"
    );

    // A plain-text server on another port is spoken to in TLS, so it sees a ClientHello,
    // never the request or its credential.
    let (plain, got) = plaintext_server().await;
    let url = format!("http://{plain}/steal");
    let (status, body) = get_via(&e.tk, &url).await;
    assert_refused(&url, status, &body, 502, "bad gateway");
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "one connection attempt");
    assert_eq!(
        &got[0][..2],
        b"\x16\x03",
        "not a TLS handshake: {:?}",
        got[0]
    );
    let text = String::from_utf8_lossy(&got[0]);
    assert!(!text.contains("GET") && !text.contains("steal"), "{text:?}");
    assert_no_plaintext("plain-text upstream", &text);

    // Without the loopback exemption, private destinations are refused on every port,
    // at once: the guard runs before any connect (10.255.255.1 would hang until the
    // connect timeout).
    let g = guarded(&["--upstream-connect-timeout", "5s"]).await;
    let (upstream, tk) = (&g.upstream, &g.tk);
    for host in [
        "10.255.255.1",
        "192.168.0.1",
        "169.254.169.254",
        "127.0.0.1",
        "[::1]",
    ] {
        for port in [22, 25, 81, 3306, 6379, 8080, 9443, 65535, upstream.port()] {
            let url = format!("http://{host}:{port}/");
            let started = Instant::now();
            let (status, body) = get_via(tk, &url).await;
            assert_refused(&url, status, &body, 400, "destination not allowed");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{url}: took {:?}",
                started.elapsed()
            );
        }
    }
    assert_eq!(upstream.connection_count(), 0);
}

/// The proxy's own listener and its admin listener are refused in every spelling, even
/// though loopback is exempt from the built-in list, and in transparent mode too.
#[tokio::test]
async fn the_tokenizer_and_its_admin_listener_are_never_dialled() {
    let e = env(&[
        "--admin-address",
        "127.0.0.1:0",
        "--tokenizer-hostnames",
        "tokenizer.test",
    ])
    .await;
    let admin = e.tk.admin_addr.unwrap();
    // The admin listener is there to be reached.
    let health = reqwest::get(format!("http://{admin}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let good = e.good();
    for port in [e.tk.addr.port(), admin.port()] {
        for host in [
            "127.0.0.1",
            "localhost",
            "LOCALHOST",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "[::127.0.0.1]",
            "[64:ff9b::7f00:1]",
        ] {
            let url = format!("http://{host}:{port}/metrics");
            let (status, body) = get_via(&e.tk, &url).await;
            assert_refused(&url, status, &body, 400, "destination not allowed");
        }
        for host in ["2130706433", "127.1", "0x7f.0.0.1"] {
            let url = format!("http://{host}:{port}/metrics");
            let (status, body) = get_via(&e.tk, &url).await;
            assert_not_dialled(&url, status, &body);
        }
        // Transparent (origin-form) requests whose Host names a listener.
        let mut conn = RawConn::open(e.tk.addr).await;
        for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
            conn.send(
                format!(
                    "GET /metrics HTTP/1.1\r\nHost: {host}\r\n{}\r\n",
                    auth_lines(&good)
                )
                .as_bytes(),
            )
            .await;
            let resp = conn.read_response(false).await;
            assert_refused(
                &host,
                resp.status,
                &resp.text(),
                400,
                "destination not allowed",
            );
        }
    }
    assert!(e.upstream.seen().is_empty());
    e.still_serves().await;
}

// === request smuggling ===

/// A pipelined request that must never reach the upstream unless the proxy and the
/// client agree it is a request of its own.
fn smuggled(e: &Env, tag: &str) -> String {
    e.raw_get(&format!("/fault/echo-framing?{tag}"), &e.good(), "")
}

/// The head of a POST to the framing echo, up to the framing headers in `framing`.
fn front(e: &Env, version: &str, framing: &str) -> String {
    format!(
        "POST {} {version}\r\nHost: {}\r\n{}{framing}",
        e.url("/fault/echo-framing"),
        e.host(),
        auth_lines(&e.good())
    )
}

/// What `/fault/echo-framing` saw of a forwarded request.
fn framing_of(body: &str) -> (Vec<String>, Vec<String>, String, bool) {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    let list = |k: &str| -> Vec<String> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    (
        list("content-length"),
        list("transfer-encoding"),
        v["body"].as_str().unwrap().to_owned(),
        v["complete"].as_bool().unwrap(),
    )
}

/// Content-Length together with Transfer-Encoding, in either order: hyper lets
/// Transfer-Encoding win, drops Content-Length, and closes the connection after the
/// response (RFC 9112 §6.3), so what follows the chunked body is never read as a
/// request. The upstream gets one framing and the chunked body.
#[tokio::test]
async fn content_length_with_transfer_encoding_is_normalized_and_closed() {
    let e = env(&[]).await;
    for (name, framing) in [
        (
            "CL then TE",
            "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
        ),
        (
            "TE then CL",
            "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
        ),
        (
            "CL 0 then TE",
            "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ),
    ] {
        let before = e.upstream.seen().len();
        let mut conn = RawConn::open(e.tk.addr).await;
        let tag = format!("smuggled-{}", before);
        conn.send(
            format!(
                "{}5\r\nhello\r\n0\r\n\r\n{}",
                front(&e, "HTTP/1.1", framing),
                smuggled(&e, &tag)
            )
            .as_bytes(),
        )
        .await;
        let resp = conn.read_response(false).await;
        assert_eq!(resp.status, 200, "{name}: {}", resp.text());
        assert_eq!(resp.header("connection"), Some("close"), "{name}");
        let (cl, te, body, complete) = framing_of(&resp.text());
        assert!(cl.is_empty(), "{name}: Content-Length forwarded: {cl:?}");
        assert_eq!(te, ["chunked"], "{name}");
        assert_eq!((body.as_str(), complete), ("hello", true), "{name}");
        assert!(conn.is_closed().await, "{name}: connection kept open");
        assert_eq!(e.upstream.seen().len(), before + 1, "{name}");
        assert!(
            e.seen_with(&tag).is_empty(),
            "{name}: smuggled request forwarded"
        );
    }
    e.still_serves().await;
}

/// Framing that two parsers could read differently is refused with 400 before anything
/// is forwarded, and the connection is closed, so the request that follows is never
/// read.
#[tokio::test]
async fn ambiguous_framing_is_refused() {
    let e = env(&[]).await;
    let chunked_hello = "5\r\nhello\r\n0\r\n\r\n";
    let cases: Vec<(&str, String)> = vec![
        (
            "CL list",
            front(&e, "HTTP/1.1", "Content-Length: 5, 5\r\n\r\nhello"),
        ),
        (
            "CL twice, different",
            front(
                &e,
                "HTTP/1.1",
                "Content-Length: 5\r\nContent-Length: 50\r\n\r\nhello",
            ),
        ),
        (
            "CL +5",
            front(&e, "HTTP/1.1", "Content-Length: +5\r\n\r\nhello"),
        ),
        (
            "CL hex",
            front(&e, "HTTP/1.1", "Content-Length: 0x5\r\n\r\nhello"),
        ),
        (
            "CL 5 5",
            front(&e, "HTTP/1.1", "Content-Length: 5 5\r\n\r\nhello"),
        ),
        (
            "obs-fold",
            front(
                &e,
                "HTTP/1.1",
                "Content-Length: 5\r\nX-Fold: a\r\n b\r\n\r\nhello",
            ),
        ),
        (
            "obs-fold in TE",
            front(
                &e,
                "HTTP/1.1",
                &format!(
                    "Transfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\n{chunked_hello}"
                ),
            ),
        ),
        (
            "bare CR",
            front(&e, "HTTP/1.1", "X-A: a\rContent-Length: 5\r\n\r\nhello"),
        ),
        (
            "NUL in a value",
            front(
                &e,
                "HTTP/1.1",
                "X-A: a\0b\r\nContent-Length: 5\r\n\r\nhello",
            ),
        ),
        (
            "TE xchunked",
            front(
                &e,
                "HTTP/1.1",
                &format!("Transfer-Encoding: xchunked\r\n\r\n{chunked_hello}"),
            ),
        ),
        (
            "TE chunked then identity",
            front(
                &e,
                "HTTP/1.1",
                &format!(
                    "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n{chunked_hello}"
                ),
            ),
        ),
        (
            "TE chunked, identity",
            front(
                &e,
                "HTTP/1.1",
                &format!("Transfer-Encoding: chunked, identity\r\n\r\n{chunked_hello}"),
            ),
        ),
        (
            "space before colon",
            front(
                &e,
                "HTTP/1.1",
                &format!("Transfer-Encoding : chunked\r\n\r\n{chunked_hello}"),
            ),
        ),
        (
            "TE in HTTP/1.0",
            front(
                &e,
                "HTTP/1.0",
                &format!("Transfer-Encoding: chunked\r\n\r\n{chunked_hello}"),
            ),
        ),
    ];
    for (name, head) in &cases {
        let tag = format!("smuggled-{}", name.replace(' ', "-"));
        let t = exchange(
            e.tk.addr,
            format!("{head}{}", smuggled(&e, &tag)).as_bytes(),
        )
        .await;
        assert_eq!(t.statuses(), [400], "{name}: {:?}", t.text());
        assert!(t.closed, "{name}: connection kept open");
        assert_no_plaintext(name, &t.text());
    }
    assert!(e.upstream.seen().is_empty(), "{:?}", e.upstream.seen());
    e.still_serves().await;
}

/// Forms a strict parser might refuse but hyper reads one way only: they are forwarded
/// with exactly one framing header and the right body, or refused; a request pipelined
/// after them is its own request (client, proxy and upstream agree on the framing).
#[tokio::test]
async fn tolerated_framing_is_forwarded_with_one_framing_or_refused() {
    let e = env(&[]).await;
    let chunked_hello = "5\r\nhello\r\n0\r\n\r\n";
    let bare_lf = front(&e, "HTTP/1.1", "Content-Length: 5\r\n\r\nhello").replace("\r\n", "\n");
    let cases: Vec<(&str, String)> = vec![
        (
            "CL twice, same",
            front(
                &e,
                "HTTP/1.1",
                "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            ),
        ),
        ("bare LF line ends", bare_lf),
        (
            "TE with a tab",
            front(
                &e,
                "HTTP/1.1",
                &format!("Transfer-Encoding:\tchunked\r\n\r\n{chunked_hello}"),
            ),
        ),
        (
            "TE upper case",
            front(
                &e,
                "HTTP/1.1",
                &format!("Transfer-Encoding: CHUNKED\r\n\r\n{chunked_hello}"),
            ),
        ),
        (
            "TE chunked, chunked",
            front(
                &e,
                "HTTP/1.1",
                &format!("Transfer-Encoding: chunked, chunked\r\n\r\n{chunked_hello}"),
            ),
        ),
        (
            "TE gzip line, chunked line",
            front(
                &e,
                "HTTP/1.1",
                &format!(
                    "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_hello}"
                ),
            ),
        ),
        (
            "small chunk extension",
            front(
                &e,
                "HTTP/1.1",
                "Transfer-Encoding: chunked\r\n\r\n5;name=\"v\";x\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        (
            "Content-Length in a trailer",
            front(
                &e,
                "HTTP/1.1",
                "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 99\r\n\r\n",
            ),
        ),
    ];
    for (name, head) in &cases {
        let tag = format!("pipelined-{}", name.replace([' ', ','], "-"));
        let before = e.upstream.seen().len();
        let mut conn = RawConn::open(e.tk.addr).await;
        conn.send(format!("{head}{}", smuggled(&e, &tag)).as_bytes())
            .await;
        let resp = conn.read_response(false).await;
        assert_no_plaintext(name, &resp.text());
        if name.contains("gzip") {
            // hyper undoes only the chunking; the proxy refuses any other coding.
            assert_eq!(resp.status, 400, "{name}: {}", resp.text());
            assert!(
                resp.text().contains("unsupported transfer coding"),
                "{name}"
            );
            // The framing itself is sound (chunked is last), so hyper skips the body and
            // the pipelined request is served on its own; the refused one never went up.
            let next = conn.read_response(false).await;
            assert_eq!(next.status, 200, "{name}: {}", next.text());
            assert_eq!(e.seen_with(&tag).len(), 1, "{name}");
            assert_eq!(e.upstream.seen().len(), before + 1, "{name}");
            continue;
        }
        if resp.status == 400 {
            assert!(conn.is_closed().await, "{name}");
            assert_eq!(e.upstream.seen().len(), before, "{name}");
            continue;
        }
        assert_eq!(resp.status, 200, "{name}: {}", resp.text());
        let (cl, te, body, complete) = framing_of(&resp.text());
        assert_eq!(
            cl.len() + te.len(),
            1,
            "{name}: framing {cl:?} {te:?} forwarded"
        );
        assert!(te.iter().all(|t| t == "chunked"), "{name}: {te:?}");
        assert_eq!((body.as_str(), complete), ("hello", true), "{name}");
        // The pipelined request: one request of its own, with its own credential.
        let next = conn.read_response(false).await;
        assert_eq!(next.status, 200, "{name}: {}", next.text());
        let (_, _, body, _) = framing_of(&next.text());
        assert_eq!(body, "", "{name}");
        assert_eq!(e.seen_with(&tag).len(), 1, "{name}");
        assert_eq!(e.upstream.seen().len(), before + 2, "{name}");
    }
    e.still_serves().await;
}

/// A chunked body that breaks the chunked syntax (an extension over hyper's 16 KiB
/// limit, bare-LF chunk lines, an overflowing or non-hex size, data longer than its
/// size) fails the request; the connection is closed and the request that follows is
/// never read. The client is at fault: 400.
#[tokio::test]
async fn malformed_chunked_bodies_fail_the_request_and_close() {
    let e = env(&[]).await;
    let huge_ext = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(20_000));
    let cases: Vec<(&str, String)> = vec![
        ("chunk extension over the limit", huge_ext),
        ("bare LF chunk lines", "5\nhello\n0\n\n".to_owned()),
        (
            "size overflow",
            "10000000000000005\r\nhello\r\n0\r\n\r\n".to_owned(),
        ),
        ("size not hex", "5x\r\nhello\r\n0\r\n\r\n".to_owned()),
        ("negative size", "-5\r\nhello\r\n0\r\n\r\n".to_owned()),
        (
            "data longer than size",
            "3\r\nhello\r\n0\r\n\r\n".to_owned(),
        ),
    ];
    for (name, body) in &cases {
        let tag = format!("smuggled-{}", name.replace(' ', "-"));
        let t = exchange(
            e.tk.addr,
            format!(
                "{}{body}{}",
                front(&e, "HTTP/1.1", "Transfer-Encoding: chunked\r\n\r\n"),
                smuggled(&e, &tag)
            )
            .as_bytes(),
        )
        .await;
        let statuses = t.statuses();
        assert!(
            statuses.len() <= 1 && statuses.iter().all(|s| *s == 400),
            "{name}: {:?}",
            t.text()
        );
        assert!(t.closed, "{name}: connection kept open: {:?}", t.text());
        assert_no_plaintext(name, &t.text());
        assert!(
            e.seen_with(&tag).is_empty(),
            "{name}: smuggled request forwarded"
        );
    }
    // Nothing the upstream was handed had a complete body.
    assert!(
        e.upstream.seen().iter().all(|r| !r.contains("smuggled")),
        "{:?}",
        e.upstream.seen()
    );
    e.still_serves().await;
}

/// A request refused before its body is read (bad secret: 400; too large to buffer:
/// 413) leaves a body that holds a whole request: hyper discards it (or closes), and it
/// is never read as a request of its own.
#[tokio::test]
async fn early_refusals_never_parse_the_unread_body_as_a_request() {
    let e = env(&["--max-buffered-body", "1KiB"]).await;
    let hmac = e.seal(&json!({
        "inject_hmac_processor": {"key": b64::encode(HMAC_KEY.as_bytes()), "hash": "sha256"},
        "bearer_auth": bearer(AUTH),
    }));
    let inner = smuggled(&e, "smuggled-in-body");
    let padded = format!("{inner}{}", "p".repeat(2000));
    let chunked = format!("{:x}\r\n{padded}\r\n0\r\n\r\n", padded.len());
    let head = |secret: &str, framing: String| {
        format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nProxy-Tokenizer: {secret}\r\n\
             Proxy-Authorization: Bearer {AUTH}\r\n{framing}\r\n",
            e.url("/fault/echo-framing"),
            e.host()
        )
    };
    let cases = [
        (
            "bad secret, Content-Length",
            head("!!!", format!("Content-Length: {}\r\n", inner.len())) + &inner,
            400,
        ),
        (
            "bad secret, chunked",
            head("!!!", "Transfer-Encoding: chunked\r\n".to_owned()) + &chunked,
            400,
        ),
        (
            "too large, Content-Length",
            head(&hmac, format!("Content-Length: {}\r\n", padded.len())) + &padded,
            413,
        ),
        (
            "too large, chunked",
            head(&hmac, "Transfer-Encoding: chunked\r\n".to_owned()) + &chunked,
            413,
        ),
    ];
    for (name, bytes, status) in &cases {
        let mut conn = RawConn::open(e.tk.addr).await;
        conn.send(bytes.as_bytes()).await;
        let resp = conn.read_response(false).await;
        assert_refused(name, resp.status, &resp.text(), *status, "");
        // The same connection still works, and only for the request sent next.
        let good = e.good();
        let _ = conn
            .stream
            .write_all(e.raw_get("/after", &good, "").as_bytes())
            .await;
        let rest = read_until_close(&mut conn.stream, Duration::from_secs(1)).await;
        if !rest.bytes.is_empty() {
            assert_eq!(rest.statuses(), [200], "{name}: {:?}", rest.text());
        } else {
            assert!(rest.closed, "{name}: neither answered nor closed");
        }
        assert!(
            e.seen_with("smuggled").is_empty(),
            "{name}: {:?}",
            e.upstream.seen()
        );
    }
    e.still_serves().await;
}

// === header injection ===

/// CR, LF, NUL and DEL never reach a header: not from a sealed token, fmt or dst, not
/// from request-time params (JSON escapes decode to control characters), and not from
/// nested or OAuth secrets. Each is refused with 400 before anything is forwarded.
#[tokio::test]
async fn control_characters_never_become_header_bytes() {
    let e = env(&[]).await;
    let good = e.good();
    let hmac = json!({"key": b64::encode(HMAC_KEY.as_bytes()), "hash": "sha256"});
    let sealed =
        |secret: Value| e.seal_raw(&with(secret, json!({"bearer_auth": bearer(AUTH)})).to_string());
    let params = |p: Value| format!("{good}; {p}");
    let hmac_secret = sealed(json!({ "inject_hmac_processor": hmac }));
    let mut cases: Vec<(String, String)> = Vec::new();
    for bad in [
        "\n",
        "\r",
        "\0",
        "\x7f",
        "\r\n\r\nGET / HTTP/1.1\r\nX-Evil: 1",
    ] {
        let show = format!("{bad:?}");
        cases.extend([
            (
                format!("token {show}"),
                sealed(json!({"inject_processor": {"token": format!("{TOKEN}{bad}X-Evil: 1")}})),
            ),
            (
                format!("sealed fmt {show}"),
                sealed(json!({"inject_processor": {"token": TOKEN, "fmt": format!("Bearer %s{bad}X-Evil: 1")}})),
            ),
            (
                format!("sealed dst {show}"),
                sealed(json!({"inject_processor": {"token": TOKEN, "dst": format!("X-A{bad}X-Evil")}})),
            ),
            (
                format!("param dst {show}"),
                params(json!({ "dst": format!("X-A{bad}X-Evil") })),
            ),
            (
                format!("param fmt {show}"),
                params(json!({ "fmt": format!("Bearer %s{bad}X-Evil: 1") })),
            ),
            (
                format!("hmac param fmt {show}"),
                format!("{hmac_secret}; {}", json!({ "fmt": format!("Bearer %x{bad}X-Evil: 1") })),
            ),
            (
                format!("oauth access token {show}"),
                sealed(json!({"oauth2_processor": {"token": {
                    "access_token": format!("{OAUTH_ACCESS}{bad}X-Evil: 1"),
                    "refresh_token": OAUTH_REFRESH}}})),
            ),
            (
                format!("nested token {show}"),
                sealed(json!({"multi_processor": [
                    {"inject_processor": {"token": TOKEN, "dst": "X-First"}},
                    {"inject_processor": {"token": format!("{TOKEN}{bad}X-Evil: 1")}},
                ]})),
            ),
        ]);
        let refresh = sealed(json!({"oauth2_processor": {"token": {
            "access_token": OAUTH_ACCESS,
            "refresh_token": format!("{OAUTH_REFRESH}{bad}X-Evil: 1")}}}));
        cases.push((
            format!("oauth refresh token {show}"),
            format!("{refresh}; {}", json!({"st": "refresh"})),
        ));
    }
    // Header names that are not tokens.
    for dst in ["X-A: b", "X A", "X-A\t", "", "X-Ä"] {
        cases.push((format!("param dst {dst:?}"), params(json!({ "dst": dst }))));
    }
    // Sent raw: a client library refuses non-ASCII header values.
    for (name, value) in &cases {
        let t = exchange(
            e.tk.addr,
            e.raw_get("/inject", value, "Connection: close\r\n")
                .as_bytes(),
        )
        .await;
        let (status, body) = only_response(&t);
        if value.bytes().any(|b| b == 0x7f) {
            // JSON does not escape DEL, so the header line itself holds it: hyper
            // refuses the request before the proxy sees it.
            assert_eq!((status, body.as_str()), (400, ""), "{name}");
            continue;
        }
        assert_refused(name, status, &body, 400, "bad request");
        assert!(!body.contains("X-Evil"), "{name}: {body}");
    }
    assert!(e.upstream.seen().is_empty(), "{:?}", e.upstream.seen());

    // Control characters where they are data, not header bytes, are fine: the HMAC
    // message is hashed, and the header carries hex.
    let with_msg = format!("{hmac_secret}; {}", json!({"msg": "a\r\nX-Evil: 1\0"}));
    let got = e.authed("/msg", &with_msg).await;
    assert_eq!(got.status, 200);
    let echo = Echo::parse(&got.body);
    let auth = echo.header("authorization").unwrap();
    let hex = auth.strip_prefix("Bearer ").unwrap();
    assert!(
        hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "{auth}"
    );
    assert!(echo.header("x-evil").is_none());
    e.still_serves().await;
}

// === host pinning ===

/// On a keep-alive connection every request is checked on its own: a secret for
/// api.test does not follow the connection to other.test, and a secret for both does
/// not share a TLS connection across names (each name has its own SNI).
#[tokio::test]
async fn keep_alive_requests_are_validated_one_by_one() {
    let e = env(&[]).await;
    let only_api = e.for_hosts(&["api.test"]);
    let mut conn = RawConn::open(e.tk.addr).await;
    let get = |host: &str, sealed: &str, path: &str| {
        format!(
            "GET http://{host}{path} HTTP/1.1\r\nHost: {host}\r\n{}\r\n",
            auth_lines(sealed)
        )
    };
    conn.send(get("api.test", &only_api, "/one").as_bytes())
        .await;
    assert_eq!(conn.read_response(false).await.status, 200);
    conn.send(get("other.test", &only_api, "/two").as_bytes())
        .await;
    let resp = conn.read_response(false).await;
    assert_refused(
        "other.test",
        resp.status,
        &resp.text(),
        400,
        "secret not valid for other.test",
    );
    // Nor without any secret: the first request's secret is not remembered.
    conn.send(b"GET http://api.test/three HTTP/1.1\r\nHost: api.test\r\n\r\n")
        .await;
    let resp = conn.read_response(false).await;
    assert_refused(
        "no secret",
        resp.status,
        &resp.text(),
        400,
        "missing Proxy-Tokenizer",
    );
    conn.send(get("api.test", &only_api, "/four").as_bytes())
        .await;
    assert_eq!(conn.read_response(false).await.status, 200);
    assert_eq!(e.upstream.seen(), ["GET /one", "GET /four"]);
    assert_eq!(e.upstream.connection_count(), 1);

    let both = e.for_hosts(&["api.test", "other.test"]);
    for (host, path) in [("other.test", "/five"), ("api.test", "/six")] {
        conn.send(get(host, &both, path).as_bytes()).await;
        let resp = conn.read_response(false).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(Echo::parse(&resp.text()).header("host").unwrap(), host);
    }
    // api.test reused its pooled connection; other.test got one of its own.
    assert_eq!(e.upstream.connection_count(), 2);
}

/// Absolute-form URI and Host header disagree: the URI wins. Validators check the URI's
/// authority, the upstream is the URI's, and the upstream sees exactly one Host: the
/// URI's. Userinfo in the authority is refused.
#[tokio::test]
async fn the_request_uri_wins_over_the_host_header() {
    let e = env(&[]).await;
    let only_api = e.for_hosts(&["api.test"]);
    let only_other = e.for_hosts(&["other.test"]);
    let send = |uri: &str, hosts: &[&str], sealed: &str| {
        let mut req = format!("GET {uri} HTTP/1.1\r\n");
        for h in hosts {
            req.push_str(&format!("Host: {h}\r\n"));
        }
        req.push_str(&auth_lines(sealed));
        req.push_str("\r\n");
        req
    };
    let mut conn = RawConn::open(e.tk.addr).await;
    // The Host header names a host the secret is valid for; the URI does not.
    conn.send(send("http://api.test/a", &["other.test"], &only_other).as_bytes())
        .await;
    let resp = conn.read_response(false).await;
    assert_refused(
        "host header",
        resp.status,
        &resp.text(),
        400,
        "secret not valid for api.test",
    );
    // The URI's host is allowed: forwarded there, with its Host only.
    for hosts in [vec!["other.test"], vec!["api.test"]] {
        conn.send(send("http://api.test/b", &hosts, &only_api).as_bytes())
            .await;
        let resp = conn.read_response(false).await;
        assert_eq!(resp.status, 200, "{hosts:?}: {}", resp.text());
        let echo = Echo::parse(&resp.text());
        assert_eq!(echo.header_all("host"), ["api.test"], "{hosts:?}");
    }
    // HTTP/1.1 without a Host, or with two: 400, as RFC 9112 §3.2 (and Go) have it.
    for (hosts, why) in [
        (vec![], "missing Host header"),
        (vec!["other.test", "api.test"], "more than one Host header"),
        (vec!["api.test", "other.test"], "more than one Host header"),
    ] {
        conn.send(send("http://api.test/b", &hosts, &only_api).as_bytes())
            .await;
        let resp = conn.read_response(false).await;
        assert_refused("host count", resp.status, &resp.text(), 400, why);
    }
    // Userinfo would let the string the validators see differ from the host dialled.
    for uri in [
        "http://api.test@other.test/c",
        "http://other.test@api.test/c",
        "http://user:pw@api.test/c",
    ] {
        conn.send(send(uri, &["api.test"], &e.good()).as_bytes())
            .await;
        let resp = conn.read_response(false).await;
        assert_refused(uri, resp.status, &resp.text(), 400, "bad host");
    }
    assert_eq!(e.upstream.seen().len(), 2, "{:?}", e.upstream.seen());
}

/// An exchange secret without host rules may only go to its token_url host. Userinfo
/// once fooled that check (`http://tok.test@evil.tst/…`: the check saw the first 8
/// characters, `tok.test`, while the proxy dialled `evil.tst`) and sent the client secret
/// to the attacker's server; in a tunnel too.
#[tokio::test]
async fn userinfo_cannot_redirect_an_exchange_secret() {
    let ca = TestCa::new();
    let evil = Upstream::start(&ca, &["evil.tst"]).await;
    let tok = Upstream::start(&ca, &["tok.test"]).await;
    let pins = format!("{},{}", evil.pin(&["evil.tst"]), tok.pin(&["tok.test"]));
    let tk = Tokenizer::start(&ca, &["--upstream-resolve", &pins]).await;
    let sealed = tk.seal(&json!({
        "client_credentials_processor": {
            "client_id": "adv-client",
            "client_secret": CLIENT_SECRET,
            "token_url": "https://tok.test/token/cc",
        },
        "bearer_auth": bearer(AUTH),
    }));
    let post = |uri: &str, host: &str| {
        format!(
            "POST {uri} HTTP/1.1\r\nHost: {host}\r\n{}Content-Length: 0\r\n\r\n",
            auth_lines(&sealed)
        )
    };
    let mut conn = RawConn::open(tk.addr).await;
    for uri in [
        "http://tok.test@evil.tst/token/cc",
        "http://tok.test:@evil.tst/token/cc",
        "http://evil.tst/token/cc",
    ] {
        conn.send(post(uri, "evil.tst").as_bytes()).await;
        let resp = conn.read_response(false).await;
        assert_eq!(resp.status, 400, "{uri}: {}", resp.text());
        assert_no_plaintext(uri, &resp.text());
    }
    // In a tunnel to evil.tst, an inner Host with userinfo naming the token host.
    let mut tunnel = RawConn::tunnel(tk.addr, "evil.tst:80", &[]).await.unwrap();
    for host in ["tok.test@evil.tst", "tok.test@evil.tst:80"] {
        tunnel.send(post("/token/cc", host).as_bytes()).await;
        let resp = tunnel.read_response(false).await;
        assert_eq!(resp.status, 400, "{host}: {}", resp.text());
        assert_no_plaintext(host, &resp.text());
    }
    assert!(
        evil.seen().is_empty(),
        "the attacker's server was reached: {:?}",
        evil.received()
    );
    // The token host itself still works.
    conn.send(post("http://tok.test/token/cc", "tok.test").as_bytes())
        .await;
    let resp = conn.read_response(false).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().contains("sealed_token"));
    assert_no_plaintext("exchange", &resp.text());
    assert_eq!(tok.received().len(), 1);
}

/// Inside a CONNECT tunnel every request must name the CONNECT host (the cases with a
/// plainly different Host are in `proxying`): the absolute-form URI wins over the Host
/// header, ports must match, userinfo and nested CONNECTs are refused, and the upstream
/// always sees the tunnel's host.
#[tokio::test]
async fn tunnel_requests_stay_on_the_connect_host() {
    let e = env(&[]).await;
    let sealed = e.for_hosts(&["api.test:80"]);
    let mut conn = e.api_tunnel(&sealed).await;
    // Allowed: the URI names the tunnel host, whatever the Host header says; case and
    // an explicit :80 do not matter.
    for (line, host) in [
        ("GET http://api.test/in-1 HTTP/1.1", "other.test"),
        ("GET /in-2 HTTP/1.1", "API.test"),
        ("GET /in-3 HTTP/1.1", "api.test:80"),
    ] {
        conn.send(format!("{line}\r\nHost: {host}\r\n\r\n").as_bytes())
            .await;
        let resp = conn.read_response(false).await;
        assert_eq!(resp.status, 200, "{line} {host}: {}", resp.text());
        let echo = Echo::parse(&resp.text());
        assert_eq!(echo.header_all("host"), ["api.test"], "{line} {host}");
        assert_eq!(
            echo.header_all("authorization"),
            [format!("Bearer {TOKEN}")]
        );
    }
    // Refused, and the tunnel stays usable.
    for (request, needle) in [
        (
            "GET /x HTTP/1.1\r\nHost: api.test:8080\r\n\r\n".to_owned(),
            "CONNECT authority",
        ),
        (
            "GET /x HTTP/1.1\r\nHost: other.test@api.test\r\n\r\n".to_owned(),
            "CONNECT authority",
        ),
        (
            "GET http://api.test:81/x HTTP/1.1\r\nHost: api.test\r\n\r\n".to_owned(),
            "CONNECT authority",
        ),
        (
            "GET /x HTTP/1.1\r\nHost: api.test.\r\n\r\n".to_owned(),
            "CONNECT authority",
        ),
        (
            format!(
                "CONNECT other.test:80 HTTP/1.1\r\nHost: other.test:80\r\n{}\r\n",
                auth_lines(&sealed)
            ),
            "CONNECT inside a tunnel",
        ),
    ] {
        conn.send(request.as_bytes()).await;
        let resp = conn.read_response(false).await;
        assert_refused(&request, resp.status, &resp.text(), 400, needle);
    }
    conn.send(b"GET /in-4 HTTP/1.1\r\nHost: api.test\r\n\r\n")
        .await;
    assert_eq!(conn.read_response(false).await.status, 200);
    assert_eq!(
        e.upstream.seen(),
        ["GET /in-1", "GET /in-2", "GET /in-3", "GET /in-4"]
    );
}

// === limits ===

/// Headers sent one byte every 300 ms are cut off by `--client-header-timeout 1s`:
/// the connection is closed (hyper answers nothing) about a second after it opened,
/// while other clients are served as usual meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_is_closed_and_others_are_served_meanwhile() {
    let e = env(&["--client-header-timeout", "1s"]).await;
    let addr = e.tk.addr;
    let pad = format!("X-Pad: {}\r\n", "p".repeat(64));
    let head = e.raw_get("/slow", &e.good(), &pad);
    let slow: Vec<_> = (0..3)
        .map(|_| {
            let head = head.clone();
            tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                let started = Instant::now();
                let (mut rd, mut wr) = s.split();
                let writer = async {
                    for b in head.bytes() {
                        if wr.write_all(&[b]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                };
                let reader = async {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 1024];
                    loop {
                        match rd.read(&mut buf).await {
                            Ok(0) | Err(_) => return got,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                };
                tokio::select! {
                    () = writer => panic!("all headers sent, connection still open"),
                    got = reader => (started.elapsed(), got),
                }
            })
        })
        .collect();
    // Meanwhile, other clients.
    let good = e.good();
    let mut served = 0;
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        let started = Instant::now();
        assert_eq!(e.authed("/meanwhile", &good).await.status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(800),
            "{:?}",
            started.elapsed()
        );
        served += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served >= 5, "{served}");
    for s in slow {
        let (took, got) = s.await.unwrap();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(2000),
            "closed after {took:?}"
        );
        assert!(
            got.is_empty(),
            "answered: {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    assert!(e.seen_with("/slow").is_empty());
}

/// What the header timeout does to connections that are idle, observed: it also covers
/// the wait for the next request, so a connection that never sends a byte, a keep-alive
/// connection after its response and an idle CONNECT tunnel are all closed about one
/// timeout after they went quiet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_timeout_also_closes_idle_connections() {
    let e = env(&["--client-header-timeout", "1s"]).await;
    let good = e.good();
    let window = Duration::from_millis(900)..Duration::from_millis(2000);

    let mut silent = TcpStream::connect(e.tk.addr).await.unwrap();
    let t = read_until_close(&mut silent, Duration::from_secs(5)).await;
    assert!(
        t.closed && t.bytes.is_empty() && window.contains(&t.took),
        "silent: {:?}",
        t.took
    );

    let mut kept = RawConn::open(e.tk.addr).await;
    kept.send(e.raw_get("/idle", &good, "").as_bytes()).await;
    assert_eq!(kept.read_response(false).await.status, 200);
    let t = read_until_close(&mut kept.stream, Duration::from_secs(5)).await;
    assert!(
        t.closed && t.bytes.is_empty() && window.contains(&t.took),
        "keep-alive: {:?}",
        t.took
    );

    let mut tunnel = e.api_tunnel(&good).await;
    tunnel
        .send(b"GET /tunnel-idle HTTP/1.1\r\nHost: api.test\r\n\r\n")
        .await;
    assert_eq!(tunnel.read_response(false).await.status, 200);
    let t = read_until_close(&mut tunnel.stream, Duration::from_secs(5)).await;
    assert!(
        t.closed && t.bytes.is_empty() && window.contains(&t.took),
        "tunnel: {:?}",
        t.took
    );
}

/// `--max-connections 5` (issue 22 makes room instead of locking out): with five idle
/// keep-alive connections, a sixth is served and the longest idle of the five is closed;
/// with five busy ones from the same source, a sixth from that source is closed at once
/// without an answer while they keep being served; when one leaves, a new connection is
/// served again.
#[tokio::test]
async fn the_connection_after_max_connections_makes_room_or_is_closed_at_once() {
    let e = env(&["--max-connections", "5"]).await;
    let good = e.good();
    let request = |path: &str| e.raw_get(path, &good, "");
    let mut five = Vec::new();
    for i in 0..5 {
        let mut conn = RawConn::open(e.tk.addr).await;
        conn.send(request(&format!("/first-{i}")).as_bytes()).await;
        assert_eq!(conn.read_response(false).await.status, 200);
        five.push(conn);
    }
    // All five idle: the sixth is served, the first (idle longest) goes.
    let t = exchange(e.tk.addr, request("/sixth").as_bytes()).await;
    assert_eq!(t.statuses(), [200], "sixth: {:?}", t.text());
    assert!(
        five[0].is_closed().await,
        "the longest idle connection stayed"
    );
    for (i, conn) in five.iter_mut().enumerate().skip(1) {
        conn.send(request(&format!("/second-{i}")).as_bytes()).await;
        assert_eq!(conn.read_response(false).await.status, 200);
    }
    drop(five);
    // All five busy (a slow upstream): the sixth is closed at once, unanswered.
    let mut busy = Vec::new();
    for i in 0..5 {
        let mut conn = RawConn::open(e.tk.addr).await;
        conn.send(request(&format!("/fault/slow-headers?ms=2000&i={i}")).as_bytes())
            .await;
        busy.push(conn);
    }
    poll_until(Duration::from_secs(3), || async {
        e.seen_with("/fault/slow-headers").len() == 5
    })
    .await
    .expect("five requests in flight");
    let started = Instant::now();
    let t = exchange(e.tk.addr, request("/seventh").as_bytes()).await;
    assert!(t.closed && t.bytes.is_empty(), "seventh: {:?}", t.text());
    assert!(
        t.took < Duration::from_millis(500),
        "seventh closed after {:?}",
        started.elapsed()
    );
    for conn in &mut busy {
        assert_eq!(conn.read_response(false).await.status, 200);
    }
    assert!(e.seen_with("/seventh").is_empty());
    drop(busy.pop());
    // The slot comes back when the proxy notices the close.
    poll_until(Duration::from_secs(3), || async {
        exchange(e.tk.addr, request("/after").as_bytes())
            .await
            .statuses()
            == [200]
    })
    .await
    .expect("no connection served after one left");
}

/// A request target over hyper's URI limit (64 KiB) is refused before the pipeline; an
/// upstream response with more headers than the client parses (100) is a 502.
#[tokio::test]
async fn oversized_targets_and_upstream_header_floods_are_refused() {
    let e = env(&[]).await;
    let good = e.good();
    let long = format!("/{}", "a".repeat(70_000));
    let t = exchange(e.tk.addr, e.raw_get(&long, &good, "").as_bytes()).await;
    let statuses = t.statuses();
    assert!(
        statuses.len() == 1 && (400..500).contains(&statuses[0]),
        "{statuses:?}"
    );
    assert!(t.closed);
    assert!(e.upstream.seen().is_empty());

    let got = e.authed("/fault/many-headers?n=200", &good).await;
    assert_refused("many headers", got.status, &got.body, 502, "bad gateway");
    e.still_serves().await;
}

// === upstream faults, with the real binary ===

/// `tokenizer serve` as a child with short upstream timeouts, trusting `ca`.
fn binary_server(ca: &TestCa, key: &OpenKey) -> Server {
    Server::start_trusting(
        ca,
        &key.to_hex(),
        &[
            "--upstream-connect-timeout",
            "2s",
            "--upstream-response-timeout",
            "1s",
            "--upstream-read-timeout",
            "1s",
        ],
        &[("RUST_LOG", "debug")],
    )
}

/// One request, its head, and the body bytes that arrived until the proxy closed or the
/// body ended, with the times of the head and of the end.
struct Timed {
    status: u16,
    head: String,
    body: Vec<u8>,
    head_at: Duration,
    end_at: Duration,
    closed: bool,
}

async fn timed_get(addr: SocketAddr, url: &str, sealed: &str) -> Timed {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    s.write_all(
        format!(
            "GET {url} HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
            auth_lines(sealed)
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut bytes = Vec::new();
    let mut head_at = None;
    let mut chunk = [0u8; 8192];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(8), s.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => {
                bytes.extend_from_slice(&chunk[..n]);
                if head_at.is_none() && bytes.windows(4).any(|w| w == b"\r\n\r\n") {
                    head_at = Some(started.elapsed());
                }
            }
            Err(_) => break false,
        }
    };
    let end_at = started.elapsed();
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "{url}: no response head: {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Timed {
        status,
        head,
        body: bytes[split + 4..].to_vec(),
        head_at: head_at.unwrap(),
        end_at,
        closed,
    }
}

/// Refused, not TLS, untrusted certificate, slow response head: 502 or 504 with a clean
/// one-line body, each in about the configured time; the proxy keeps serving, and its
/// log holds no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_are_502_and_slow_heads_504() {
    let ca = TestCa::new();
    let upstream = Upstream::start(&ca, &["127.0.0.1"]).await;
    let stranger = TestCa::new();
    let untrusted =
        Upstream::start_with(stranger.server_config(&["127.0.0.1"], &[b"http/1.1"])).await;
    let (plain, plain_got) = plaintext_server().await;
    let key = OpenKey::generate();
    let server = binary_server(&ca, &key);
    let sealed = seal_for(&key, &inject(TOKEN, AUTH));
    let dead = DeadPort::new();
    let mut bodies = Vec::new();
    for (name, url, status) in [
        ("refused", dead.url("/"), 502),
        ("not TLS", format!("http://{plain}/"), 502),
        (
            "untrusted certificate",
            format!("http://127.0.0.1:{}/", untrusted.port()),
            502,
        ),
        (
            "slow head",
            format!(
                "http://127.0.0.1:{}/fault/slow-headers?ms=4000",
                upstream.port()
            ),
            504,
        ),
    ] {
        let t = timed_get(server.addr, &url, &sealed).await;
        let body = String::from_utf8_lossy(&t.body).into_owned();
        assert_refused(name, t.status, &body, status, "");
        if status == 504 {
            assert!(
                t.head_at >= Duration::from_millis(900) && t.head_at < Duration::from_millis(2500),
                "504 after {:?}",
                t.head_at
            );
            assert!(body.contains("did not answer in time"), "{body}");
        } else {
            assert!(
                t.head_at < Duration::from_secs(2),
                "{name}: {:?}",
                t.head_at
            );
        }
        bodies.push(body);
    }
    assert_eq!(untrusted.connection_count(), 1);
    assert!(
        plain_got
            .lock()
            .unwrap()
            .iter()
            .all(|b| b.starts_with(b"\x16\x03"))
    );
    // A head just inside the limit is not cut.
    let url = format!(
        "http://127.0.0.1:{}/fault/slow-headers?ms=300",
        upstream.port()
    );
    let t = timed_get(server.addr, &url, &sealed).await;
    assert_eq!(t.status, 200, "{}", t.head);
    let stopped = server.stop();
    assert_no_plaintext("log", &stopped.stderr);
    assert!(
        stopped.stderr.contains("REDACTED"),
        "the log names the secrets"
    );
    for b in &bodies {
        assert_no_plaintext("body", b);
    }
}

/// Bodies: a reset mid-body reaches the client as an aborted response; a body that
/// stalls is cut `--upstream-read-timeout` after its last byte; a body that keeps
/// dripping for longer than that in total is not cut. The proxy keeps serving, and its
/// log holds no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_bodies_are_cut_only_when_they_stall() {
    let ca = TestCa::new();
    let upstream = Upstream::start(&ca, &["127.0.0.1"]).await;
    let key = OpenKey::generate();
    let server = binary_server(&ca, &key);
    let sealed = seal_for(&key, &inject(TOKEN, AUTH));
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", upstream.port());

    // Reset after 100 of 1000 promised bytes: the client gets the head (with the
    // promised length) and fewer bytes, then the connection ends.
    let t = timed_get(server.addr, &url("/fault/reset"), &sealed).await;
    assert_eq!(t.status, 200, "{}", t.head);
    assert!(t.head.contains("content-length: 1000"), "{}", t.head);
    assert!(t.closed, "not closed");
    assert!(t.body.len() < 1000, "{} bytes", t.body.len());
    assert!(t.body.iter().all(|b| *b == b'r'));

    // A stall after the first chunk: cut about a second later, without the final chunk.
    let t = timed_get(server.addr, &url("/fault/stall"), &sealed).await;
    assert_eq!(t.status, 200, "{}", t.head);
    let body = String::from_utf8_lossy(&t.body).into_owned();
    assert!(body.contains("begin"), "{body:?}");
    assert!(
        !body.ends_with("0\r\n\r\n"),
        "the stalled body was completed: {body:?}"
    );
    assert!(t.closed);
    let cut_after = t.end_at - t.head_at;
    assert!(
        cut_after >= Duration::from_millis(800) && cut_after < Duration::from_millis(3000),
        "cut {cut_after:?} after the head"
    );

    // Eight chunks 400 ms apart (2.8 s in all, never 1 s without a byte): all arrive.
    let t = timed_get(server.addr, &url("/fault/drip?n=8&ms=400"), &sealed).await;
    assert_eq!(t.status, 200, "{}", t.head);
    let body = String::from_utf8_lossy(&t.body).into_owned();
    for i in 0..8 {
        assert!(body.contains(&format!("drip {i}\n")), "{body:?}");
    }
    assert!(body.ends_with("0\r\n\r\n"), "not completed: {body:?}");
    assert!(t.end_at >= Duration::from_millis(2500), "{:?}", t.end_at);

    let t = timed_get(server.addr, &url("/after"), &sealed).await;
    assert_eq!(t.status, 200);
    assert!(String::from_utf8_lossy(&t.body).contains(TOKEN));
    let stopped = server.stop();
    assert_no_plaintext("log", &stopped.stderr);
}

// === the process ===

/// The real binary makes itself non-dumpable and sets a zero core limit (soft and
/// hard). Non-dumpable shows as /proc/PID files owned by root though the process runs
/// as another user; as root the test runs the binary as nobody to see that.
#[test]
fn the_server_is_not_dumpable_and_has_no_core_limit() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;

    let key = OpenKey::generate();
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    // As nobody, the binary must be where nobody can read it: a copy outside the
    // checkout (which may sit under a 0700 home directory).
    let copy_dir = tempfile::tempdir().unwrap();
    let mut cmd = if root {
        use std::os::unix::fs::PermissionsExt;
        let perms = |mode| std::fs::Permissions::from_mode(mode);
        std::fs::set_permissions(copy_dir.path(), perms(0o755)).unwrap();
        let copy = copy_dir.path().join("tokenizer");
        std::fs::copy(binary::BIN, &copy).unwrap();
        std::fs::set_permissions(&copy, perms(0o755)).unwrap();
        let mut cmd = binary::command_at(&copy);
        cmd.uid(65534).gid(65534);
        cmd
    } else {
        binary::command()
    };
    cmd.arg("serve")
        .args(["--listen-address", "127.0.0.1:0", "--open-key"])
        .arg(&*key.to_hex());
    let server = Server::launch(cmd).unwrap_or_else(|e| panic!("{e}"));
    let pid = server.pid();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..], ["0", "0", "bytes"], "{core}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(uid, 0, "cannot observe dumpability of a root process");
    for file in ["status", "mem", "environ"] {
        let owner = std::fs::metadata(format!("/proc/{pid}/{file}"))
            .unwrap()
            .uid();
        assert_eq!(
            owner, 0,
            "/proc/{pid}/{file} owned by {owner}: the process is dumpable"
        );
    }
    let stopped = server.stop();
    assert!(stopped.status.success(), "{}", stopped.stderr);
    assert!(
        !stopped.stderr.contains("could not disable core dumps"),
        "{}",
        stopped.stderr
    );
}
