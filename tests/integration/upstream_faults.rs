//! What the upstream does wrong reaches the client as a clean error, in about the
//! configured time, and the proxy keeps serving: refused, not TLS, an untrusted or wrong
//! certificate (502); a response head too slow (504); a reset mid-body (an aborted
//! response); a body that stalls is cut after `--upstream-read-timeout`, one that keeps
//! dripping is not. No error body and no log line holds a secret.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokenizer::secret::OpenKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::adversary::{
    AUTH, Adversary, TOKEN, assert_no_plaintext, assert_refused, assert_refused_sent, auth_lines,
    env, plaintext_server,
};
use crate::support::binary::Server;
use crate::support::ca::TestCa;
use crate::support::upstream::Upstream;
use crate::support::{DeadPort, inject, seal_for};

// === with the proxy in-process ===

/// Nothing listens where the upstream should: 502.
#[tokio::test]
async fn unreachable_upstream_is_502() {
    let e = env(&[]).await;
    let good = e.good();
    let dead = DeadPort::new();
    let url = dead.url("/");
    let (status, body) = e.get_url(&url, &[&good]).await;
    assert_refused_sent("", status, &body, 502, "bad gateway", &[&good]);
    e.still_serves().await;
}

/// The upstream's certificate names another host: 502, after one connection.
#[tokio::test]
async fn upstream_certificate_for_another_name_is_502() {
    let e = env(&[]).await;
    let wrong = Upstream::start_with(e.ca.server_config(&["other.test"], &[b"http/1.1"])).await;
    let good = e.good();
    let url = format!("http://127.0.0.1:{}/", wrong.port());
    let (status, body) = e.get_url(&url, &[&good]).await;
    assert_refused_sent("", status, &body, 502, "bad gateway", &[&good]);
    assert_eq!(wrong.connection_count(), 1);
    e.still_serves().await;
}

// === with the real binary ===

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
