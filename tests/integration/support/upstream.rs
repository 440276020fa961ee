//! A real TLS upstream: echoes each request as JSON, counts connections, and has a
//! route that streams its body in two parts on command.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio_rustls::TlsAcceptor;

use super::ca::TestCa;

type BoxBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// A running upstream; stops when dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    /// TCP connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    /// Lets `/stream` send its second part.
    pub release: Arc<Notify>,
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
        let release = Arc::new(Notify::new());
        let (stop, mut stopped) = oneshot::channel::<()>();
        let acceptor = TlsAcceptor::from(config);
        let (count, rel) = (connections.clone(), release.clone());
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    _ = &mut stopped => return,
                };
                count.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let rel = rel.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req| handle(req, rel.clone()));
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
            _stop: stop,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn handle(
    req: Request<Incoming>,
    release: Arc<Notify>,
) -> Result<Response<BoxBody>, std::convert::Infallible> {
    if req.uri().path() == "/ws" {
        return Ok(websocket(req));
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
                () = release.notified() => {}
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
    let mut resp = Response::new(BodyExt::boxed(Full::new(Bytes::from(echo.to_string()))));
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    Ok(resp)
}

/// A WebSocket endpoint: sends `authorization=<the Authorization it saw>`, then echoes.
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
    Response::builder()
        .status(http::StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .body(BodyExt::boxed(Full::new(Bytes::new())))
        .unwrap()
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
