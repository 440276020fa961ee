//! Graceful shutdown of the real binary: on SIGTERM, `tokenizer serve` and `tokenizer
//! sideproxy` stop accepting at once (new connections are refused, `/readyz` answers
//! 503), close idle keep-alive connections, let in-flight requests, streams included,
//! finish, and exit 0; with `--shutdown-timeout`, they exit 0 at the deadline even if a
//! stream is still going.
//!
//! The upstream's `/stream` route sends `first\n`, then holds `second\n` until the test
//! releases it (or 20 s pass), so a stream is in flight for exactly as long as a test
//! wants.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ::tokenizer::secret::OpenKey;
use serde_json::json;

use crate::support::binary::{self, Server, Stopped};
use crate::support::ca::TestCa;
use crate::support::upstream::Upstream;
use crate::support::{inject, poll_until, seal_for, with};

/// The caller password the sealed secret is bound to.
const PROXY_PW: &str = "shutdown-caller-pw";
/// The credential the tokenizer injects.
const REAL_KEY: &str = "shutdown-real-key";
/// The whole body of the upstream's `/stream` route.
const STREAM_BODY: &str = "first\nsecond\n";

/// An inject secret bound to `PROXY_PW`, allowed for `api.test`, sealed for `key`.
fn sealed_for(key: &OpenKey) -> String {
    seal_for(
        key,
        &with(
            inject(REAL_KEY, PROXY_PW),
            json!({"allowed_hosts": ["api.test"]}),
        ),
    )
}

/// SIGTERM to `pid`, without waiting.
fn sigterm(pid: u32) -> Instant {
    let pid = libc::pid_t::try_from(pid).expect("pid fits");
    // SAFETY: kill(2) takes two integers; the pid is our own child's.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill -TERM {pid}");
    Instant::now()
}

/// Wait for the exit that `sigterm` asked for. `Server::stop_within` sends SIGTERM once
/// more, which a process that is already shutting down ignores; the time is measured from
/// `sent`, the first signal.
fn wait_exit(server: Server, sent: Instant, limit: Duration) -> (Stopped, Duration) {
    let stopped = server.stop_within(limit);
    (stopped, sent.elapsed())
}

/// Until `limit`, connect to `addr` every 10 ms; how long it took to be refused.
fn refused_within(addr: SocketAddr, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Some(start.elapsed()),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    None
}

/// `GET /readyz` on the admin listener: (status, body).
fn readyz(admin: SocketAddr) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&admin, Duration::from_secs(2)).expect("admin up");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("readyz answer");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

/// A keep-alive connection that has had one answered request and is now idle: after
/// SIGTERM the server must close it (EOF) at once instead of waiting for the deadline.
struct IdleConn(TcpStream);

impl IdleConn {
    /// Send `request` (which must ask for a `Content-Length` response), read the answer.
    fn open(addr: SocketAddr, request: &[u8]) -> Self {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).expect("response");
            assert!(n > 0, "closed before the response: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .expect("content-length");
                if body.len() >= len {
                    return Self(s);
                }
            }
        }
    }

    /// How long until the server closed it, up to `limit`.
    fn closed_within(&mut self, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        self.0.set_read_timeout(Some(limit)).unwrap();
        let mut b = [0u8; 64];
        match self.0.read(&mut b) {
            Ok(0) => Some(start.elapsed()),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Some(start.elapsed()),
            Ok(n) => panic!("unexpected bytes on an idle connection: {:?}", &b[..n]),
            Err(_) => None,
        }
    }
}

/// A streamed response: what has arrived so far.
struct Stream {
    resp: reqwest::Response,
    got: Vec<u8>,
}

impl Stream {
    /// Send `req` and wait for the head and the first part of the body (`first\n`).
    async fn start(req: reqwest::RequestBuilder) -> Self {
        let resp = req.send().await.expect("stream response");
        assert_eq!(resp.status(), 200, "stream status");
        let mut s = Self {
            resp,
            got: Vec::new(),
        };
        while !s.got.starts_with(b"first\n") {
            let chunk = tokio::time::timeout(Duration::from_secs(10), s.resp.chunk())
                .await
                .expect("first part within 10 s")
                .expect("stream body");
            s.got
                .extend_from_slice(&chunk.expect("body ended before its first part"));
        }
        s
    }

    /// Read to the end: the whole body, or what arrived before an error.
    async fn finish(mut self) -> Result<String, String> {
        loop {
            match tokio::time::timeout(Duration::from_secs(30), self.resp.chunk()).await {
                Err(_) => return Err("no end within 30 s".to_owned()),
                Ok(Err(e)) => {
                    return Err(format!(
                        "{e} after {:?}",
                        String::from_utf8_lossy(&self.got)
                    ));
                }
                Ok(Ok(None)) => return Ok(String::from_utf8_lossy(&self.got).into_owned()),
                Ok(Ok(Some(c))) => self.got.extend_from_slice(&c),
            }
        }
    }
}

/// A TLS upstream for `api.test` and a `tokenizer serve` child pinned to it.
struct Serve {
    _ca: TestCa,
    upstream: Upstream,
    server: Server,
    admin: SocketAddr,
    sealed: String,
}

async fn serve(shutdown_timeout: &str) -> Serve {
    serve_pinned(shutdown_timeout, false).await
}

async fn serve_pinned(shutdown_timeout: &str, one_cpu: bool) -> Serve {
    let ca = TestCa::new();
    let upstream = Upstream::start(&ca, &["api.test"]).await;
    let key = OpenKey::generate();
    let sealed = sealed_for(&key);
    let (ca_file, pin) = (ca.pem_file(), upstream.pin(&["api.test"]));
    let args = [
        "--log-format",
        "json",
        "--upstream-ca-file",
        &ca_file,
        "--upstream-allow-cidrs",
        "127.0.0.0/8",
        "--upstream-resolve",
        &pin,
        "--admin-address",
        "127.0.0.1:0",
        "--shutdown-timeout",
        shutdown_timeout,
    ];
    let server =
        tokio::task::block_in_place(|| Server::start_pinned(&key.to_hex(), &args, &[], one_cpu));
    let admin = server.admin.expect("an admin listener");
    Serve {
        _ca: ca,
        upstream,
        server,
        admin,
        sealed,
    }
}

impl Serve {
    fn stream_request(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        client
            .get("http://api.test/stream")
            .header("Proxy-Tokenizer", &self.sealed)
            .header("Proxy-Authorization", format!("Bearer {PROXY_PW}"))
    }

    /// A complete absolute-form request for the echo route, keep-alive.
    fn echo_request(&self) -> Vec<u8> {
        format!(
            "GET http://api.test/echo HTTP/1.1\r\nHost: api.test\r\nProxy-Tokenizer: {}\r\n\
             Proxy-Authorization: Bearer {PROXY_PW}\r\n\r\n",
            self.sealed
        )
        .into_bytes()
    }
}

fn assert_clean_exit(what: &str, stopped: &Stopped) {
    assert!(
        stopped.status.success(),
        "{what}: exit status {} after SIGTERM; stderr:\n{}",
        stopped.status,
        stopped.stderr
    );
    assert!(
        stopped.stderr.contains("\"stopped\""),
        "{what}: no `stopped` log line:\n{}",
        stopped.stderr
    );
    for secret in [REAL_KEY, PROXY_PW] {
        assert!(
            !stopped.stderr.contains(secret),
            "{what} logged {secret:?}:\n{}",
            stopped.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_drains_a_stream_in_flight_then_exits_0() {
    drains_a_stream_in_flight(false).await;
}

/// Pinned to one CPU the proxy runs a current-thread runtime: one thread, and the same
/// proxying, streaming and draining.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_one_cpu_runs_one_thread_and_drains_the_same() {
    drains_a_stream_in_flight(true).await;
}

/// Threads of `pid` that run requests: all but the log writer's.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .map_or(true, |c| c.trim() != "log-writer")
        })
        .count()
}

/// Watch `server` for `window`: its exit status if it exited meanwhile (at once, then),
/// `None` if it is still running at the end. Checking that something does not happen
/// takes the whole window; there is no event to wait for instead.
async fn stays_up(server: &mut Server, window: Duration) -> Option<std::process::ExitStatus> {
    poll_until(window, || {
        let exited = server.exited();
        async move { exited }
    })
    .await
}

async fn drains_a_stream_in_flight(one_cpu: bool) {
    let s = serve_pinned("10s", one_cpu).await;
    if one_cpu {
        assert_eq!(
            threads(s.server.pid()),
            1,
            "a current-thread runtime on one CPU"
        );
    } else if std::thread::available_parallelism().is_ok_and(|n| n.get() > 1) {
        assert!(threads(s.server.pid()) > 1, "a worker per CPU");
    }
    let client = s.server.client();
    let stream = Stream::start(s.stream_request(&client)).await;
    let mut idle = tokio::task::block_in_place(|| IdleConn::open(s.server.addr, &s.echo_request()));
    let (ready, _) = tokio::task::block_in_place(|| readyz(s.admin));
    assert_eq!(ready, 200, "/readyz before SIGTERM");

    let sent = sigterm(s.server.pid());
    let (refused, closed, ready) = tokio::task::block_in_place(|| {
        let refused = refused_within(s.server.addr, Duration::from_secs(3));
        let closed = idle.closed_within(Duration::from_secs(3));
        (refused, closed, readyz(s.admin))
    });
    let refused = refused.expect("new connections still accepted 3 s after SIGTERM");
    assert!(
        refused < Duration::from_secs(1),
        "refused only after {refused:?}"
    );
    let closed = closed.expect("an idle keep-alive connection stayed open 3 s after SIGTERM");
    assert!(
        closed < Duration::from_secs(1),
        "idle connection closed after {closed:?}"
    );
    assert_eq!(ready.0, 503, "/readyz while draining: {}", ready.1);

    // The stream holds the process open: still running well after SIGTERM. A window
    // watched for an exit, not a wait for something to happen: everything else the drain
    // does was observed above, so a server that did not wait for the stream would exit
    // within it.
    let mut server = s.server;
    let exit = stays_up(&mut server, Duration::from_millis(500)).await;
    assert!(exit.is_none(), "exited with a stream in flight: {exit:?}");

    let released = Instant::now();
    s.upstream.release(1);
    let body = stream.finish().await;
    assert_eq!(body.as_deref(), Ok(STREAM_BODY), "the in-flight stream");

    let (stopped, took) =
        tokio::task::block_in_place(|| wait_exit(server, sent, Duration::from_secs(10)));
    assert_clean_exit("serve", &stopped);
    eprintln!(
        "serve drain: refused new connections after {refused:?}, closed the idle one after \
         {closed:?}, exited 0 {took:?} after SIGTERM ({:?} after the upstream released the stream)",
        released.elapsed()
    );
    let after_release = released.elapsed();
    assert!(
        after_release < Duration::from_secs(3),
        "exit {after_release:?} after the stream was released"
    );
    assert!(
        took < Duration::from_secs(9),
        "exit {took:?} after SIGTERM: the 10 s deadline, not the drain, ended it"
    );
    assert!(
        !stopped.stderr.contains("shutdown deadline reached"),
        "drained, yet the log says the deadline was reached:\n{}",
        stopped.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exits_0_at_the_deadline_with_a_stream_still_going() {
    let s = serve("1s").await;
    let client = s.server.client();
    let stream = Stream::start(s.stream_request(&client)).await;

    let sent = sigterm(s.server.pid());
    let (stopped, took) =
        tokio::task::block_in_place(|| wait_exit(s.server, sent, Duration::from_secs(10)));
    assert_clean_exit("serve", &stopped);
    eprintln!("serve deadline 1 s: exited 0 {took:?} after SIGTERM");
    assert!(
        took >= Duration::from_millis(900),
        "exit {took:?} after SIGTERM: the stream was not waited for"
    );
    assert!(
        took < Duration::from_secs(3),
        "exit {took:?} after SIGTERM, with a 1 s deadline"
    );
    assert!(
        stopped.stderr.contains("shutdown deadline reached"),
        "no deadline warning:\n{}",
        stopped.stderr
    );
    // The stream was cut, not completed.
    let body = stream.finish().await;
    assert_ne!(body.as_deref(), Ok(STREAM_BODY), "the stream completed");
}

// === sideproxy ===

/// `tokenizer sideproxy` on kernel-picked loopback ports, through `proxy`: the server,
/// its TLS listener and its admin listener.
fn start_sidecar(
    ca_dir: &Path,
    proxy: &str,
    sealed: &str,
    shutdown_timeout: &str,
) -> (Server, SocketAddr, SocketAddr) {
    let mut cmd: Command = binary::command();
    cmd.arg("sideproxy")
        .args(["--shutdown-timeout", shutdown_timeout])
        .envs([
            ("PORT", "0"),
            ("BIND_ADDRESSES", "127.0.0.1"),
            ("PROXY", proxy),
            ("TOKENIZER_AUTH", PROXY_PW),
            ("TARGETS", "api.test=API_SEALED"),
            ("API_SEALED", sealed),
            ("ADMIN_ADDRESS", "127.0.0.1:0"),
            ("LOG_FORMAT", "json"),
        ])
        .env("CA_DIR", ca_dir);
    let server =
        Server::launch(cmd).unwrap_or_else(|e| panic!("tokenizer sideproxy did not start: {e}"));
    // The admin listener binds before the TLS one logs `listening`, which does not name it.
    let addr = server.addr;
    let admin = server
        .listeners()
        .into_iter()
        .find(|a| *a != addr)
        .expect("an admin listener");
    (server, addr, admin)
}

/// A `tokenizer sideproxy` child in front of a [`Serve`], for `api.test`.
struct Side {
    server: Server,
    addr: SocketAddr,
    admin: SocketAddr,
    dir: tempfile::TempDir,
}

/// The tokenizer (10 s deadline) and a sidecar with `side_timeout` in front of it.
async fn chain(side_timeout: &str) -> (Serve, Side) {
    let serve = serve("10s").await;
    let dir = tempfile::tempdir().unwrap();
    let (server, addr, admin) = tokio::task::block_in_place(|| {
        start_sidecar(
            dir.path(),
            &serve.server.proxy_url(),
            &serve.sealed,
            side_timeout,
        )
    });
    let side = Side {
        server,
        addr,
        admin,
        dir,
    };
    (serve, side)
}

impl Side {
    /// A client that trusts the sidecar's CA and reaches it as `api.test`; HTTP/2 by ALPN
    /// unless `http1`.
    fn client(&self, http1: bool) -> reqwest::Client {
        crate::support::init();
        let pem = std::fs::read(self.dir.path().join("ca.pem")).expect("sidecar CA");
        let mut b = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .resolve("api.test", self.addr)
            .no_proxy();
        if http1 {
            b = b.http1_only();
        }
        b.build().unwrap()
    }

    fn stream_request(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        client
            .get(format!("https://api.test:{}/stream", self.addr.port()))
            .header("Authorization", "Bearer dummy")
    }
}

/// Stop the tokenizer behind a sidecar (idle by now); it must exit 0 too.
fn stop_serve(serve: Serve) {
    let stopped = tokio::task::block_in_place(|| serve.server.stop_within(Duration::from_secs(10)));
    assert_clean_exit("serve behind the sidecar", &stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sideproxy_drains_streams_in_flight_then_exits_0() {
    let (serve, side) = chain("10s").await;
    let (h2, h1) = (side.client(false), side.client(true));
    let first = Stream::start(side.stream_request(&h2)).await;
    assert_eq!(first.resp.version(), http::Version::HTTP_2, "ALPN h2");
    let second = Stream::start(side.stream_request(&h1)).await;
    assert_eq!(second.resp.version(), http::Version::HTTP_11);

    let sent = sigterm(side.server.pid());
    let (refused, ready) = tokio::task::block_in_place(|| {
        (
            refused_within(side.addr, Duration::from_secs(3)),
            readyz(side.admin),
        )
    });
    let refused = refused.expect("sidecar still accepts 3 s after SIGTERM");
    assert!(
        refused < Duration::from_secs(1),
        "refused only after {refused:?}"
    );
    assert_eq!(ready.0, 503, "sidecar /readyz while draining: {}", ready.1);

    // A window watched for an exit (as for serve): the streams hold the process open.
    let mut server = side.server;
    let exit = stays_up(&mut server, Duration::from_millis(500)).await;
    assert!(exit.is_none(), "exited with streams in flight: {exit:?}");

    let released = Instant::now();
    serve.upstream.release(2);
    let (a, b) = tokio::join!(first.finish(), second.finish());
    assert_eq!(a.as_deref(), Ok(STREAM_BODY), "the HTTP/2 stream");
    assert_eq!(b.as_deref(), Ok(STREAM_BODY), "the HTTP/1.1 stream");

    let (stopped, took) =
        tokio::task::block_in_place(|| wait_exit(server, sent, Duration::from_secs(10)));
    assert_clean_exit("sideproxy", &stopped);
    eprintln!(
        "sideproxy drain: refused new connections after {refused:?}, exited 0 {took:?} after \
         SIGTERM ({:?} after the upstream released the streams)",
        released.elapsed()
    );
    let after_release = released.elapsed();
    assert!(
        after_release < Duration::from_secs(3),
        "sidecar exit {after_release:?} after the streams were released"
    );
    assert!(
        took < Duration::from_secs(9),
        "sidecar exit {took:?} after SIGTERM"
    );
    stop_serve(serve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sideproxy_exits_0_at_the_deadline_with_a_stream_still_going() {
    let (serve, side) = chain("1s").await;
    let client = side.client(false);
    let stream = Stream::start(side.stream_request(&client)).await;

    let sent = sigterm(side.server.pid());
    let (stopped, took) =
        tokio::task::block_in_place(|| wait_exit(side.server, sent, Duration::from_secs(10)));
    assert_clean_exit("sideproxy", &stopped);
    eprintln!("sideproxy deadline 1 s: exited 0 {took:?} after SIGTERM");
    assert!(
        took >= Duration::from_millis(900),
        "sidecar exit {took:?} after SIGTERM: the stream was not waited for"
    );
    assert!(
        took < Duration::from_secs(3),
        "sidecar exit {took:?} after SIGTERM, with a 1 s deadline"
    );
    let body = stream.finish().await;
    assert_ne!(body.as_deref(), Ok(STREAM_BODY), "the stream completed");
    // The tokenizer behind it still has the upstream stream open (its client went away);
    // let it end so the tokenizer stops promptly.
    serve.upstream.release(1);
    stop_serve(serve);
}
