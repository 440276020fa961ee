//! A real TLS upstream: echoes each request as JSON, counts connections, and has a
//! route that streams its body in two parts on command.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio_rustls::TlsAcceptor;

use super::ca::TestCa;

type BoxBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// A running upstream; stops when dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    /// TCP connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    /// One permit lets one `/stream` response send its second part ([`Upstream::release`]).
    release: Arc<Semaphore>,
    /// What the token endpoints ([`token_endpoint`]) received, in order, as echoes.
    pub received: Arc<Mutex<Vec<Value>>>,
    /// `METHOD URI` of every request any route was handed, in order.
    pub seen: Arc<Mutex<Vec<String>>>,
    _stop: oneshot::Sender<()>,
}

impl Upstream {
    /// Serve TLS on 127.0.0.1:0 with a certificate for `names` from `ca`.
    pub async fn start(ca: &TestCa, names: &[&str]) -> Self {
        Self::start_with(ca.server_config(names, &[b"http/1.1"])).await
    }

    pub async fn start_with(config: Arc<rustls::ServerConfig>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Semaphore::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let acceptor = TlsAcceptor::from(config);
        let (count, rel, rec) = (connections.clone(), release.clone(), received.clone());
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    _ = &mut stopped => return,
                };
                count.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let rel = rel.clone();
                let rec = rec.clone();
                let log = log.clone();
                let fd = std::os::fd::AsRawFd::as_raw_fd(&tcp);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req: Request<Incoming>| {
                        log.lock()
                            .unwrap()
                            .push(format!("{} {}", req.method(), req.uri()));
                        let fault = req.uri().path().starts_with("/fault/");
                        let (rel, rec) = (rel.clone(), rec.clone());
                        async move {
                            if fault {
                                return Ok::<_, std::convert::Infallible>(
                                    faults::handle(req, fd).await,
                                );
                            }
                            let Ok(resp) = handle(req, rel, rec).await;
                            Ok(resp.map(|b| b.map_err(|never| match never {}).boxed()))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Self {
            addr,
            connections,
            release,
            received,
            seen,
            _stop: stop,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// An `--upstream-resolve` value that sends each of `names` here.
    pub fn pin(&self, names: &[&str]) -> String {
        names
            .iter()
            .map(|n| format!("{n}={}", self.addr))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Let `n` held `/stream` responses send their second part, whether or not they are
    /// waiting yet.
    pub fn release(&self, n: usize) {
        self.release.add_permits(n);
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The requests the token endpoints received, oldest first.
    pub fn received(&self) -> Vec<Echo> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .map(Echo)
            .collect()
    }

    /// `METHOD URI` of every request the upstream was handed so far, oldest first.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// The last request a token endpoint received.
    pub fn last_received(&self) -> Echo {
        self.received().pop().expect("no token endpoint was called")
    }
}

async fn handle(
    req: Request<Incoming>,
    release: Arc<Semaphore>,
    received: Arc<Mutex<Vec<Value>>>,
) -> Result<Response<BoxBody>, std::convert::Infallible> {
    if req.uri().path() == "/ws" {
        return Ok(websocket(req));
    }
    if req.uri().path() == "/reflect" {
        return Ok(reflect(&req));
    }
    if req.uri().path() == "/stream" || req.uri().path() == "/sse" {
        let sse = req.uri().path() == "/sse";
        let (first, second): (&'static [u8], &'static [u8]) = if sse {
            (b"data: one\n\n", b"data: two\n\n")
        } else {
            (b"first\n", b"second\n")
        };
        let (tx, rx) =
            tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(4);
        tokio::spawn(async move {
            let _ = tx.send(Ok(Frame::data(Bytes::from_static(first)))).await;
            tokio::select! {
                permit = release.acquire() => permit.unwrap().forget(),
                () = tokio::time::sleep(Duration::from_secs(20)) => {}
            }
            let _ = tx.send(Ok(Frame::data(Bytes::from_static(second)))).await;
        });
        let body = StreamBody::new(tokio_stream_from(rx));
        let mut resp = Response::new(BodyExt::boxed(body));
        if sse {
            resp.headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
        }
        return Ok(resp);
    }
    let path = req.uri().path().to_owned();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: Vec<Value> = parts
        .headers
        .iter()
        .map(|(k, v)| json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())]))
        .collect();
    let echo = json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    if let Some(resp) = token_endpoint(parts.uri.path(), &echo, &received) {
        return Ok(resp);
    }
    if let Some(resp) = echo_variant(&path, &parts.headers, &echo) {
        return Ok(resp);
    }
    let mut resp = Response::new(BodyExt::boxed(Full::new(Bytes::from(echo.to_string()))));
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    Ok(resp)
}

/// Echoes in the shapes an attacker would ask an API for (the reflection-guard tests):
///
/// - `/echo-gzip`: the echo, gzip-compressed when the request accepts gzip
/// - `/force-gzip`: the echo, gzip-compressed whatever the request accepts
/// - `/echo-range`: the echo, only the bytes a `Range: bytes=a-b` asks for (206)
/// - `/echo-trailers`: `ok`, then the request's `Authorization` in a trailer
/// - `/echo-error`: the echo with status 400 (an error page quoting the request)
/// - `/token/echo-auth`: 200 `{"access_token": <the Authorization it got>}`
fn echo_variant(path: &str, headers: &http::HeaderMap, echo: &Value) -> Option<Response<BoxBody>> {
    use std::io::Write;
    let text = echo.to_string();
    let auth = headers
        .get("authorization")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let gzip = |bytes: &[u8]| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    };
    let accepts_gzip = headers
        .get_all("accept-encoding")
        .iter()
        .any(|v| String::from_utf8_lossy(v.as_bytes()).contains("gzip"));
    let mut resp = match path {
        "/echo-gzip" | "/force-gzip" if path == "/force-gzip" || accepts_gzip => {
            let mut r = Response::new(BodyExt::boxed(Full::new(Bytes::from(gzip(
                text.as_bytes(),
            )))));
            r.headers_mut()
                .insert("content-encoding", "gzip".parse().unwrap());
            r
        }
        "/echo-gzip" => Response::new(BodyExt::boxed(Full::new(Bytes::from(text)))),
        "/echo-range" => {
            let range = headers
                .get("range")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes="))
                .and_then(|v| v.split_once('-'))
                .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
            match range {
                Some((a, b)) if a <= b && b < text.len() => {
                    let mut r = Response::new(BodyExt::boxed(Full::new(Bytes::copy_from_slice(
                        &text.as_bytes()[a..=b],
                    ))));
                    *r.status_mut() = http::StatusCode::PARTIAL_CONTENT;
                    r.headers_mut().insert(
                        "content-range",
                        format!("bytes {a}-{b}/{}", text.len()).parse().unwrap(),
                    );
                    r
                }
                _ => Response::new(BodyExt::boxed(Full::new(Bytes::from(text)))),
            }
        }
        "/echo-trailers" => {
            let mut trailers = http::HeaderMap::new();
            if let Ok(v) = auth.parse() {
                trailers.insert("x-echo-auth", v);
            }
            let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
                Ok(Frame::data(Bytes::from_static(b"ok"))),
                Ok(Frame::trailers(trailers)),
            ];
            Response::new(BodyExt::boxed(StreamBody::new(futures_util::stream::iter(
                frames,
            ))))
        }
        p if p.starts_with("/echo-error") => {
            let mut r = Response::new(BodyExt::boxed(Full::new(Bytes::from(text))));
            *r.status_mut() = http::StatusCode::BAD_REQUEST;
            r
        }
        "/token/echo-auth" => {
            let token = auth.strip_prefix("Bearer ").unwrap_or(&auth).to_owned();
            let body = json!({"access_token": token, "expires_in": 3600}).to_string();
            Response::new(BodyExt::boxed(Full::new(Bytes::from(body))))
        }
        _ => return None,
    };
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    Some(resp)
}

/// Token endpoints for the token-exchange tests. Each records the request it got in
/// `received` and answers with a canned token response:
///
/// - `/token`: 200 `{"access_token":"ya29.test-access-token-from-google","expires_in":3600,…}`
/// - `/token/cc`: 200 `{"access_token":"hs-access-token-xyz","expires_in":7200,…}`
/// - `/token/short`: 200, the Google token with `expires_in` 1
/// - `/token/renamed`: 200 with the token under `accessToken`
/// - `/token/created`: 201 with a well-formed OAuth token response
/// - `/token/invalid-grant`: 400 `{"error":"invalid_grant"}`
/// - `/token/not-json`: 200 `text/plain` that quotes the token
/// - `/token/gzip`: 200 with `Content-Encoding: gzip`
/// - `/token/form-500`: 500 whose text quotes a form-encoded token response
/// - `/app/installations/789012/access_tokens` and `/api/v3/…` (GitHub Enterprise): 201
///   `{"token":"ghs_installationtokenXYZ","expires_at":<now + 1h>}`
/// - `/gh/ok-200/789012`: 200 with a GitHub token; `/gh/no-token/789012`: 201 without one;
///   `/gh/unauthorized/789012`: 401 `{"message":"Bad credentials"}`
fn token_endpoint(
    path: &str,
    echo: &Value,
    received: &Mutex<Vec<Value>>,
) -> Option<Response<BoxBody>> {
    const GOOGLE: &str = "ya29.test-access-token-from-google";
    let github = || {
        let expires_at = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let expires_at = expires_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        json!({"token": "ghs_installationtokenXYZ", "expires_at": expires_at,
            "permissions": {"contents": "read"}, "repository_selection": "all"})
        .to_string()
    };
    let oauth = |token: &str, expires_in: i64| {
        json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}).to_string()
    };
    let (status, content_type, body, gzip) = match path {
        "/token" => (200, "application/json", oauth(GOOGLE, 3600), false),
        "/token/cc" => (
            200,
            "application/json",
            oauth("hs-access-token-xyz", 7200),
            false,
        ),
        "/token/short" => (200, "application/json", oauth(GOOGLE, 1), false),
        "/token/renamed" => (
            200,
            "application/json",
            json!({"accessToken": GOOGLE, "expiresIn": 3600}).to_string(),
            false,
        ),
        "/token/created" => (201, "application/json", oauth(GOOGLE, 3600), false),
        "/token/invalid-grant" => (
            400,
            "application/json",
            r#"{"error":"invalid_grant"}"#.to_owned(),
            false,
        ),
        "/token/not-json" => (200, "text/plain", format!("your token is {GOOGLE}"), false),
        "/token/gzip" => (200, "application/json", oauth(GOOGLE, 3600), true),
        "/token/form-500" => (
            500,
            "text/plain",
            format!("upstream failed; it said: access_token={GOOGLE}&token_type=bearer"),
            false,
        ),
        "/app/installations/789012/access_tokens"
        | "/api/v3/app/installations/789012/access_tokens" => {
            (201, "application/json; charset=utf-8", github(), false)
        }
        "/gh/ok-200/789012" => (200, "application/json", github(), false),
        "/gh/no-token/789012" => (
            201,
            "application/json",
            r#"{"message":"created","permissions":{}}"#.to_owned(),
            false,
        ),
        "/gh/unauthorized/789012" => (
            401,
            "application/json",
            r#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}"#
                .to_owned(),
            false,
        ),
        _ => return None,
    };
    received.lock().unwrap().push(echo.clone());
    let mut resp = Response::new(BodyExt::boxed(Full::new(Bytes::from(body))));
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
    resp.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    if gzip {
        resp.headers_mut()
            .insert("content-encoding", "gzip".parse().unwrap());
    }
    Some(resp)
}

/// A WebSocket endpoint: its 101 echoes the offered `Sec-WebSocket-Protocol` (as the
/// Node `ws` server does) and the request's `Authorization` in `X-Echo-Auth`; then it
/// sends `authorization=<the Authorization it saw>`, then echoes.
fn websocket(mut req: Request<Incoming>) -> Response<BoxBody> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, handshake::derive_accept_key, protocol::Role};

    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        let mut resp = Response::new(BodyExt::boxed(Full::new(Bytes::from_static(
            b"not a websocket",
        ))));
        *resp.status_mut() = http::StatusCode::BAD_REQUEST;
        return resp;
    };
    let auth = req
        .headers()
        .get("authorization")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let echoed_auth = auth.clone();
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        let _ = ws
            .send(Message::Text(format!("authorization={auth}").into()))
            .await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_text() || msg.is_binary() {
                let _ = ws.send(msg).await;
            } else if msg.is_close() {
                break;
            }
        }
    });
    let mut resp = Response::builder()
        .status(http::StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .body(BodyExt::boxed(Full::new(Bytes::new())))
        .unwrap();
    if let Some(protocol) = req.headers().get("sec-websocket-protocol") {
        resp.headers_mut()
            .insert("sec-websocket-protocol", protocol.clone());
    }
    if let Ok(v) = echoed_auth.parse() {
        resp.headers_mut().insert("x-echo-auth", v);
    }
    resp
}

/// An upstream that leaks the request's `Authorization` back: in response headers (raw
/// and base64) and in a streamed body, split across chunks and also base64- and
/// URL-encoded.
fn reflect(req: &Request<Incoming>) -> Response<BoxBody> {
    use base64::Engine;
    let auth = req
        .headers()
        .get("authorization")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&auth);
    let url: String = form_urlencoded::byte_serialize(auth.as_bytes()).collect();
    let half = auth.len() / 2;
    let chunks = vec![
        format!("start {}", &auth[..half]),
        format!("{} middle {b64} ", &auth[half..]),
        format!("{url} end"),
    ];
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(4);
    tokio::spawn(async move {
        for c in chunks {
            let _ = tx.send(Ok(Frame::data(Bytes::from(c)))).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(tokio_stream_from(rx))));
    if let Ok(v) = auth.parse() {
        resp.headers_mut().insert("x-echo-auth", v);
    }
    if let Ok(v) = b64.parse() {
        resp.headers_mut().insert("x-echo-b64", v);
    }
    resp
}

fn tokio_stream_from<T>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The parsed echo of one request.
#[derive(Debug)]
pub struct Echo(pub Value);

impl Echo {
    pub fn parse(text: &str) -> Self {
        Self(serde_json::from_str(text).unwrap_or_else(|e| panic!("not an echo ({e}): {text}")))
    }

    /// All values of header `name` (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.0["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
            .map(|h| h[1].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.header_all(name).into_iter().next()
    }

    /// Header names, lowercase, in order.
    pub fn header_names(&self) -> Vec<String> {
        self.0["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h[0].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn body(&self) -> &str {
        self.0["body"].as_str().unwrap()
    }

    pub fn uri(&self) -> &str {
        self.0["uri"].as_str().unwrap()
    }
}

/// Routes that misbehave on purpose, for the tests of request framing, resource limits
/// and upstream faults. Each takes its knobs from the query string.
///
/// - `/fault/reset`: `Content-Length: 1000`, 100 bytes, then a TCP reset.
/// - `/fault/slow-headers?ms=N`: waits N ms before the response head, then echoes.
/// - `/fault/stall`: a chunked body that sends `begin\n` and then nothing, ever.
/// - `/fault/drip?n=N&ms=M`: N chunks `drip I\n`, M ms apart, then the end.
/// - `/fault/many-headers?n=N`: a response with N extra headers.
/// - `/fault/echo-framing`: as JSON, the URI, the framing headers the request came with
///   (`content-length`, `transfer-encoding`), whether its body arrived complete, and the
///   body.
pub mod faults {
    use std::os::fd::RawFd;
    use std::time::Duration;

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::{BodyExt, Full, StreamBody};
    use hyper::body::{Frame, Incoming};
    use serde_json::json;

    type Item = Result<Frame<Bytes>, std::io::Error>;
    /// A body that may fail (which aborts the connection).
    pub type FaultBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

    fn query(req: &Request<Incoming>, key: &str, default: u64) -> u64 {
        req.uri()
            .query()
            .and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == key)
                    .and_then(|(_, v)| v.parse().ok())
            })
            .unwrap_or(default)
    }

    fn full(text: String) -> FaultBody {
        Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed()
    }

    fn streamed(rx: tokio::sync::mpsc::Receiver<Item>) -> FaultBody {
        StreamBody::new(super::tokio_stream_from(rx)).boxed()
    }

    /// Dispatch a `/fault/…` request. `fd` is the upstream's TCP socket.
    pub async fn handle(req: Request<Incoming>, fd: RawFd) -> Response<FaultBody> {
        match req.uri().path() {
            "/fault/reset" => reset(fd),
            "/fault/slow-headers" => {
                tokio::time::sleep(Duration::from_millis(query(&req, "ms", 0))).await;
                Response::new(full(format!("slow {}", req.uri())))
            }
            "/fault/stall" => {
                let (tx, rx) = tokio::sync::mpsc::channel::<Item>(1);
                tokio::spawn(async move {
                    let _ = tx
                        .send(Ok(Frame::data(Bytes::from_static(b"begin\n"))))
                        .await;
                    // Hold the body open, silent, until the reader goes away.
                    tx.closed().await;
                });
                Response::new(streamed(rx))
            }
            "/fault/drip" => {
                let (n, ms) = (query(&req, "n", 5), query(&req, "ms", 100));
                let (tx, rx) = tokio::sync::mpsc::channel::<Item>(1);
                tokio::spawn(async move {
                    for i in 0..n {
                        if i > 0 {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                        }
                        let chunk = Bytes::from(format!("drip {i}\n"));
                        if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                            return;
                        }
                    }
                });
                Response::new(streamed(rx))
            }
            "/fault/many-headers" => {
                let mut resp = Response::new(full("many headers".to_owned()));
                for i in 0..query(&req, "n", 200) {
                    resp.headers_mut().append(
                        http::HeaderName::from_bytes(format!("x-many-{i}").as_bytes()).unwrap(),
                        http::HeaderValue::from_static("v"),
                    );
                }
                resp
            }
            "/fault/echo-framing" => {
                let framing = |name: &str| {
                    req.headers()
                        .get_all(name)
                        .iter()
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .collect::<Vec<_>>()
                };
                let cl = framing("content-length");
                let te = framing("transfer-encoding");
                let uri = req.uri().to_string();
                let body = req.into_body().collect().await;
                let (complete, body) = match body {
                    Ok(b) => (true, String::from_utf8_lossy(&b.to_bytes()).into_owned()),
                    Err(_) => (false, String::new()),
                };
                Response::new(full(
                    json!({"uri": uri, "content-length": cl, "transfer-encoding": te,
                           "complete": complete, "body": body})
                    .to_string(),
                ))
            }
            _ => {
                let mut resp = Response::new(full("no such fault".to_owned()));
                *resp.status_mut() = http::StatusCode::NOT_FOUND;
                resp
            }
        }
    }

    /// Head and 100 of 1000 promised bytes, then SO_LINGER 0 and an error: hyper drops
    /// the connection and the kernel answers with RST.
    fn reset(fd: RawFd) -> Response<FaultBody> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Item>(1);
        tokio::spawn(async move {
            let _ = tx.send(Ok(Frame::data(Bytes::from(vec![b'r'; 100])))).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: `fd` is the connection's socket, open while its task runs (it is
            // running: it polls this body); setsockopt reads the local struct.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    std::ptr::addr_of!(linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
            let _ = tx
                .send(Err(std::io::Error::other("reset on purpose")))
                .await;
        });
        let mut resp = Response::new(streamed(rx));
        resp.headers_mut()
            .insert("content-length", http::HeaderValue::from_static("1000"));
        resp
    }
}
