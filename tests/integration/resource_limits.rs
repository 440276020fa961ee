//! No client can take the proxy's time, connections or memory from others: headers that
//! trickle in and idle connections are cut by the header timeout while others are served;
//! at `--max-connections` an idle connection makes room and the source holding the most
//! gets no more; credentials too long to guard are refused at once; stalled uploads are
//! cut and buffered bodies stay within their limit and the shared budget; and a stalled
//! log drops lines instead of stalling requests.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tokenizer::secret::{OpenKey, Secret, b64};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::adversary::{
    AUTH, Adversary, HMAC_KEY, assert_refused_sent, env, exchange, hmac_secret, read_until_close,
};
use crate::support::attack::{self, call, caller_sealed, caller_token, real};
use crate::support::binary::Server;
use crate::support::ca::TestCa;
use crate::support::fleet::admin_get;
use crate::support::raw::RawConn;
use crate::support::upstream::{Echo, Upstream};
use crate::support::{Env, Reply, poll_until};

// === slow and idle clients ===

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

// === connection slots ===

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

/// `n` keep-alive connections from `from`, each having made one request.
async fn hold_connections(e: &Env, from: IpAddr, n: usize, path: &str) -> Vec<RawConn> {
    let sealed = e.seal(&caller_token("slot-holder-token", json!({})));
    let mut conns = Vec::new();
    for _ in 0..n {
        let mut c = RawConn::open_from(from, e.tk.addr).await;
        c.send(
            format!(
                "GET http://api.test{path} HTTP/1.1\r\nHost: api.test\r\nProxy-Tokenizer: {sealed}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        conns.push(c);
    }
    conns
}

/// A newcomer: one request on a connection of its own (a pooled connection the proxy
/// closed to make room would fail the request, as after any keep-alive timeout).
async fn newcomer(e: &Env, sealed: &str, path: &str) -> Reply {
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(e.tk.proxy_url()).unwrap())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    Reply::read(
        client
            .get(format!("http://api.test{path}"))
            .header("proxy-tokenizer", sealed)
            .header("proxy-authorization", format!("Bearer {}", attack::AUTH)),
    )
    .await
}

/// Second outside attack (issue 22), finding 10: idle or busy, the connections of one
/// source never lock out a newcomer from another; the source holding the most is the one
/// refused.
#[tokio::test(flavor = "multi_thread")]
async fn one_client_cannot_hold_every_connection_slot() {
    let e = attack::env(&["--max-connections", "10"]).await;
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let good = e.seal(&real(json!({})));
    // Idle keep-alive connections, kept alive with a cheap request now and then.
    let mut idle = hold_connections(&e, other, 10, "/").await;
    for c in &mut idle {
        assert_eq!(c.read_response(false).await.status, 200);
    }
    for round in 0..3 {
        let got = newcomer(&e, &good, "/").await;
        assert_eq!(got.status, 200, "round {round}: {}", got.body);
    }
    drop(idle);
    poll_until(Duration::from_secs(5), || async {
        e.tk.metric("tokenizer_connections_parked").await == 0.0
    })
    .await
    .expect("the closed idle connections are still parked");
    // Busy connections (a slow upstream) from one source: a newcomer from another
    // source is still served, and the hog's next connection is the one refused.
    let _busy = hold_connections(&e, other, 10, "/fault/slow-headers?ms=15000").await;
    poll_until(Duration::from_secs(5), || async {
        e.upstream
            .seen()
            .iter()
            .filter(|r| r.contains("slow-headers?ms=15000"))
            .count()
            == 10
    })
    .await
    .expect("the ten slow requests never all reached the upstream");
    for round in 0..3 {
        let started = Instant::now();
        let got = newcomer(&e, &good, "/").await;
        assert_eq!(got.status, 200, "round {round}: {}", got.body);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // The newcomers' connections are gone (an idle one left over would rightly be closed
    // to make room for the hog's next connection).
    poll_until(Duration::from_secs(5), || async {
        e.tk.metric("tokenizer_connections_open").await == 10.0
    })
    .await
    .expect("the newcomers' connections are still open");
    // While a newcomer's request is in flight, the source holding the most gets no more.
    let slow = {
        let e = Arc::new(e);
        let good = good.clone();
        let task = {
            let e = e.clone();
            tokio::spawn(async move {
                Ok::<u16, ()>(
                    newcomer(&e, &good, "/fault/slow-headers?ms=1500")
                        .await
                        .status,
                )
            })
        };
        (e, task)
    };
    let (e, slow) = slow;
    poll_until(Duration::from_secs(5), || async {
        e.upstream
            .seen()
            .iter()
            .any(|r| r.contains("slow-headers?ms=1500"))
    })
    .await
    .expect("the newcomer's slow request never reached the upstream");
    let mut hog = RawConn::open_from(other, e.tk.addr).await;
    assert!(
        hog.is_closed().await,
        "the source holding every slot got one more"
    );
    assert_eq!(slow.await.unwrap().unwrap(), 200);
}

// === work a client controls ===

/// First outside attack (issue 13), finding 6: work a client controls. Credentials too
/// long for the reflection guard are refused at once and delay nobody else.
#[tokio::test]
async fn long_credentials_never_stall_the_proxy() {
    let e = attack::env(&[]).await;
    let long = caller_sealed(
        json!({"inject_processor": {"token": "x".repeat(30_000)}}),
        json!({}),
    );
    let longs = [&long];
    let normal_secret = real(json!({}));
    let normals = [&normal_secret];
    let opened = e.tk.metric("tokenizer_secrets_opened_total").await;
    let start = Instant::now();
    let (a, b, normal) = tokio::join!(
        call(&e, "GET", "http://api.test/", &longs, &[], ""),
        call(&e, "GET", "http://api.test/", &longs, &[], ""),
        async {
            // Sent while the long ones are handled: once their secrets are open.
            poll_until(Duration::from_secs(5), || async {
                e.tk.metric("tokenizer_secrets_opened_total").await >= opened + 2.0
            })
            .await
            .expect("the long credentials' secrets were never opened");
            let t = Instant::now();
            (
                call(&e, "GET", "http://api.test/", &normals, &[], "").await,
                t.elapsed(),
            )
        },
    );
    for got in [a, b] {
        assert_eq!(got.status, 400, "{}", got.body);
        assert!(
            got.body.contains("too long for the reflection guard"),
            "{}",
            got.body
        );
    }
    assert_eq!(normal.0.status, 200);
    assert!(normal.1 < Duration::from_secs(2), "{:?}", normal.1);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // The longest credential the guard takes is guarded.
    let token: String = (0..8192)
        .map(|i| char::from(b"abcdefghijkmnpqrstuvwxyz23456789"[i % 31]))
        .collect();
    let max = caller_sealed(
        json!({"inject_processor": {"token": token.clone()}}),
        json!({}),
    );
    let got = call(&e, "GET", "http://api.test/", &[&max], &[], "").await;
    assert_eq!(got.status, 200);
    assert!(!got.body.contains(&token[..4000]));
    // A long placeholder param is refused before it costs anything.
    let body = caller_sealed(
        json!({"inject_body_processor": {"token": "caller-token"}}),
        json!({}),
    );
    let sealed = format!(
        "{}; {}",
        e.seal(&body),
        json!({"placeholder": "p".repeat(20_000)})
    );
    let got = call(&e, "POST", "http://api.test/", &[&sealed], &[], "x").await;
    assert_eq!(got.status, 400, "{}", got.body);
}

// === bodies: buffered within their limit and the budget ===

/// First outside attack (issue 13), finding 7: a stalled upload is cut after the body
/// timeout, and what it buffered counts against the shared budget until then.
#[tokio::test]
async fn stalled_uploads_are_cut_and_buffers_stay_within_the_budget() {
    let e = attack::env(&[
        "--client-body-timeout",
        "1s",
        "--buffered-body-budget",
        "3MiB",
        "--max-buffered-body",
        "2MiB",
    ])
    .await;
    let signer = caller_sealed(
        json!({"inject_hmac_processor": {"key": b64::encode(b"k"), "hash": "sha256",
            "dst": "x-sig"}}),
        json!({}),
    );
    let sealed = e.seal(&signer);
    let len = 2 * 1024 * 1024;
    // The first sends all but the last byte and stalls; the second asks to send as
    // much (and waits for `100 Continue` before sending it).
    let stall = |sealed: String, send_body: bool| async move {
        let mut conn = tokio::net::TcpStream::connect(e.tk.addr).await.unwrap();
        let expect = if send_body {
            ""
        } else {
            "Expect: 100-continue\r\n"
        };
        let head = format!(
            "POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\nProxy-Tokenizer: {sealed}\r\n\
             Content-Length: {len}\r\n{expect}\r\n"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        if send_body {
            conn.write_all(&vec![b'a'; len - 1]).await.unwrap();
        }
        let started = Instant::now();
        let mut out = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut out))
            .await
            .expect("answered")
            .unwrap_or(0);
        (
            String::from_utf8_lossy(&out[..n]).into_owned(),
            started.elapsed(),
        )
    };
    let (stalled, refused) = tokio::join!(stall(sealed.clone(), true), async {
        // Once the first body holds its share of the budget (charged from its length).
        poll_until(Duration::from_secs(10), || async {
            e.tk.metric("tokenizer_buffered_body_bytes").await >= len as f64
        })
        .await
        .expect("the first body was never charged to the budget");
        stall(sealed.clone(), false).await
    });
    // The budget holds the first body: the second is refused at once.
    assert!(refused.0.starts_with("HTTP/1.1 503"), "{refused:?}");
    assert!(refused.1 < Duration::from_millis(900), "{:?}", refused.1);
    // The stalled one was cut after about the body timeout, not held.
    assert!(stalled.0.starts_with("HTTP/1.1 408"), "{stalled:?}");
    assert!(stalled.1 < Duration::from_secs(4), "{:?}", stalled.1);
    // Everything buffered was released, and a normal signed request works.
    assert_eq!(e.tk.metric("tokenizer_buffered_body_bytes").await, 0.0);
    let got = call(&e, "POST", "http://api.test/", &[&signer], &[], "hello").await;
    assert_eq!(got.status, 200, "{}", got.body);
}

fn hmac_hex(msg: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_KEY.as_bytes()).unwrap();
    mac.update(msg);
    hex::encode(mac.finalize().into_bytes())
}

/// A buffering (HMAC) secret with a body over `--max-buffered-body` is 413, whether the
/// length is declared, announced with `Expect: 100-continue` or found while reading.
#[tokio::test]
async fn hmac_body_over_the_limit_is_413() {
    let e = env(&["--max-buffered-body", "1KiB"]).await;
    let sealed = e.seal(&hmac_secret("sha256"));
    let auth = format!("Bearer {AUTH}");
    let (e, sealed, auth) = (&e, sealed.as_str(), auth.as_str());
    let post = move |body: reqwest::Body| async move {
        e.send(
            "POST",
            "/",
            &[sealed],
            &[("proxy-authorization", auth)],
            body,
        )
        .await
    };

    // Content-Length says too much.
    let got = post(vec![b'a'; 4096].into()).await;
    assert_refused_sent("", got.status, &got.body, 413, "too large", &[sealed]);

    // Expect: 100-continue with too large a Content-Length: refused without asking for
    // the body.
    let mut conn = RawConn::open(e.tk.addr).await;
    conn.send(
        format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nProxy-Tokenizer: {sealed}\r\n\
             Proxy-Authorization: Bearer {AUTH}\r\nContent-Length: 4096\r\n\
             Expect: 100-continue\r\n\r\n",
            e.url("/"),
            e.host()
        )
        .as_bytes(),
    )
    .await;
    let resp = conn.read_response(false).await;
    assert_refused_sent("", resp.status, &resp.text(), 413, "too large", &[sealed]);

    // Chunked: the limit is found while reading.
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        (0..8).map(|_| Ok(Bytes::from(vec![b'b'; 512]))).collect();
    let stream = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let got = post(stream).await;
    assert_refused_sent("", got.status, &got.body, 413, "too large", &[sealed]);
    e.upstream_untouched();

    // Under the limit, chunked or not: signed and forwarded unchanged.
    let small = vec![b'c'; 1000];
    let echo = post(small.clone().into()).await.echo();
    assert_eq!(
        echo.header("authorization").unwrap(),
        format!("Bearer {}", hmac_hex(&small))
    );
    assert_eq!(echo.body().as_bytes(), small.as_slice());
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        (0..4).map(|_| Ok(Bytes::from(vec![b'd'; 200]))).collect();
    let echo = post(reqwest::Body::wrap_stream(futures_util::stream::iter(
        chunks,
    )))
    .await
    .echo();
    assert_eq!(
        echo.header("authorization").unwrap(),
        format!("Bearer {}", hmac_hex(&[b'd'; 800]))
    );
    e.still_serves().await;
}

/// Only buffering processors are bounded: an inject secret streams any size through.
#[tokio::test]
async fn streaming_processors_ignore_the_buffer_limit() {
    let e = env(&["--max-buffered-body", "1KiB"]).await;
    let good = e.good();
    let auth = format!("Bearer {AUTH}");
    let got = e
        .send(
            "POST",
            "/",
            &[&good],
            &[("proxy-authorization", &auth)],
            vec![b'a'; 4096],
        )
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(Echo::parse(&got.body).body().len(), 4096);
}

// === the log ===

/// Second outside attack (issue 22), the class (shared state a request can create, size
/// or name): the log buffer.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_log_drops_lines_and_never_stalls_requests() {
    // The log buffer: whatever a caller makes the proxy log, and however slowly the log
    // is read, the buffer stays bounded and requests are answered.
    let ca = TestCa::new();
    let upstream = Upstream::start(&ca, &["127.0.0.1"]).await;
    let open = OpenKey::generate();
    let server = Server::start_trusting(
        &ca,
        &open.to_hex(),
        &["--admin-address", "127.0.0.1:0"],
        &[],
    );
    let admin = server.admin.expect("admin");
    // Every audit line carries this secret, a few KiB once logged.
    let paths: Vec<String> = (0..40)
        .map(|i| format!("/v1/{i:02}/{}/**", "p".repeat(90)))
        .collect();
    let sealed = Secret::from_json(
        caller_token("log-filler-token", json!({"allowed_paths": paths}))
            .to_string()
            .as_bytes(),
    )
    .unwrap()
    .seal(&open.seal_key());
    let url = format!(
        "http://127.0.0.1:{}/v1/00/{}/x",
        upstream.port(),
        "p".repeat(90)
    );
    server.stall_stderr(true);
    let client = server.client();
    let dropped = poll_until(Duration::from_secs(60), || async {
        let batch = (0..64).map(|_| {
            client
                .get(&url)
                .header("proxy-tokenizer", &sealed)
                .timeout(Duration::from_secs(5))
                .send()
        });
        for got in futures_util::future::join_all(batch).await {
            assert_eq!(
                got.expect("answered while the log is stalled").status(),
                200
            );
        }
        let (_, metrics) = admin_get(admin, "/metrics").await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("tokenizer_log_lines_dropped "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|n| *n > 0.0)
    })
    .await;
    assert!(
        dropped.is_some(),
        "no line was dropped: the buffer grew instead?"
    );
    // Still answering at once, the log still stalled.
    let started = Instant::now();
    let got = client
        .get(&url)
        .header("proxy-tokenizer", &sealed)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    server.stall_stderr(false);
}
