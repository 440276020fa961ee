//! Accepting client connections: HTTP/1.1 with keep-alive and upgrades (CONNECT,
//! WebSocket), and on the plain listener HTTP/2 with prior knowledge (h2c), which the
//! sidecar speaks with `PROXY_HTTP2` so that its concurrent requests share one
//! connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::Proxy;
use super::park::{Activity, PARK_AFTER, ParkIo};
use tokenizer_net::lifecycle::{
    InFlight, Lifecycle, boxed_response, http1_builder, run_connection, run_connection_until_idle,
};
use tokenizer_secret::auth::ClientCert;

/// Serve `listener` until `lifecycle` stops.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>, lifecycle: &Lifecycle) {
    lifecycle
        .accept(listener, move |stream, peer, stop| {
            connection(proxy.clone(), stream, peer, stop)
        })
        .await;
}

/// Serve a plain connection, parking it while it idles (see [`super::park`]). A new
/// connection starts out parked: its first bytes decide between HTTP/2 with prior
/// knowledge (the sidecar's `PROXY_HTTP2`) and HTTP/1.1.
async fn connection(
    proxy: Arc<Proxy>,
    mut stream: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    let header_timeout = proxy.config().client_header_timeout;
    tokenizer_net::lifecycle::track_requests();
    if !wait_parked(&proxy, &stream, header_timeout, &stop).await {
        return;
    }
    if speaks_h2c(&stream, header_timeout).await {
        // Boxed, as below: an HTTP/1.1 connection's task must not carry room for an
        // HTTP/2 connection's state (10,000 idle clients held 206 MiB unboxed).
        Box::pin(serve_h2c(proxy, stream, peer, stop)).await;
        return;
    }
    loop {
        // Boxed: while parked, the task holds no room for a hyper connection.
        let Some(home) = Box::pin(serve_until_idle(&proxy, stream, peer, &stop)).await else {
            return;
        };
        // hyper's side is gone (and its buffers with it); the socket comes back. (Not
        // when an upgrade took it in the same instant: then the tunnel has it.)
        let Ok(Ok(returned)) = tokio::time::timeout(Duration::from_secs(1), home).await else {
            return;
        };
        stream = returned;
        if !wait_parked(
            &proxy,
            &stream,
            header_timeout.saturating_sub(PARK_AFTER),
            &stop,
        )
        .await
        {
            return;
        }
    }
}

/// Hold the bare socket until the client sends something (true), for at most `limit`,
/// or until the connection is asked to stop (false). Counted as parked meanwhile.
async fn wait_parked(
    proxy: &Proxy,
    stream: &TcpStream,
    limit: Duration,
    stop: &CancellationToken,
) -> bool {
    let parked = &proxy.telemetry().metrics.connections_parked;
    parked.inc();
    let deadline = tokio::time::Instant::now() + limit;
    let woke = loop {
        let ready = tokio::select! {
            r = tokio::time::timeout_at(deadline, stream.readable()) => matches!(r, Ok(Ok(()))),
            () = stop.cancelled() => false,
        };
        if !ready {
            break false;
        }
        // Readiness can be spurious: something (or the end) must really be there.
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::ZERO, stream.peek(&mut byte)).await {
            Ok(Ok(_)) => break true,
            Ok(Err(_)) => break false,
            Err(_) => {}
        }
    };
    parked.dec();
    woke
}

/// HTTP/2's connection preface, sent first by a client that knows the server speaks it
/// (the sidecar, over loopback: h2c with prior knowledge, RFC 9113 §3.3).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Does the client open with HTTP/2's preface? Called once the first bytes are there;
/// peeked, not read. A prefix of the preface is waited for (within `timeout`).
async fn speaks_h2c(stream: &TcpStream, timeout: Duration) -> bool {
    let mut buf = [0u8; H2_PREFACE.len()];
    let peek = async {
        loop {
            match stream.peek(&mut buf).await {
                Ok(n) if n >= H2_PREFACE.len() || n == 0 => return n,
                Ok(n) if buf[..n] != H2_PREFACE[..n] => return n,
                // A prefix of the preface so far: its rest is on the way (peeking again
                // at once would spin, the bytes being still unread).
                Ok(_) => tokio::time::sleep(Duration::from_millis(2)).await,
                Err(_) => return 0,
            }
        }
    };
    matches!(tokio::time::timeout(timeout, peek).await, Ok(n) if n >= H2_PREFACE.len())
        && buf == *H2_PREFACE
}

/// Streams one HTTP/2 connection may have open at once.
const H2_MAX_STREAMS: u32 = 256;
/// The largest header block an HTTP/2 request may carry (HPACK-decoded).
const H2_MAX_HEADER_LIST: u32 = 64 << 10;

/// Serve HTTP/2 (prior knowledge) on `stream`: many requests at once on one connection,
/// each through the same pipeline as HTTP/1.1 (CONNECT excepted). The connection is
/// closed once no request has been in flight for `CLIENT_HEADER_TIMEOUT`, as an idle
/// HTTP/1.1 connection is (pings do not keep it open).
async fn serve_h2c(
    proxy: Arc<Proxy>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    let activity = Activity::new();
    let idle_after = proxy.config().client_header_timeout;
    let service = tracked_service(proxy, peer, activity.clone());
    let mut builder =
        hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    run_connection_until_idle(conn, &stop, peer, activity.without_requests(idle_after)).await;
}

/// The proxy's service for a plain connection whose requests `activity` follows (when
/// each begins, and when its response ends) and the connection slots count.
fn tracked_service(
    proxy: Arc<Proxy>,
    peer: SocketAddr,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = hyper::Response<tokenizer_http::body::Body>,
    Error = std::convert::Infallible,
    Future = impl Future<
        Output = Result<hyper::Response<tokenizer_http::body::Body>, std::convert::Infallible>,
    > + Send,
> + Clone {
    service_fn(move |req| {
        let proxy = proxy.clone();
        let activity = activity.clone();
        activity.begin();
        let in_flight = InFlight::begin();
        boxed_response(async move {
            in_flight.attach(proxy.handle(peer, None, Some(activity), req).await)
        })
    })
}

/// Serve HTTP/1.1 on `stream` until it closes (`None`) or idles: then the socket
/// arrives on the returned receiver.
async fn serve_until_idle(
    proxy: &Arc<Proxy>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: &CancellationToken,
) -> Option<tokio::sync::oneshot::Receiver<TcpStream>> {
    let activity = Activity::new();
    let (io, home) = ParkIo::new(stream, activity.clone());
    let service = tracked_service(proxy.clone(), peer, activity.clone());
    let conn = http1_builder(proxy.config().client_header_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    run_connection_until_idle(conn, stop, peer, activity.idle(PARK_AFTER))
        .await
        .then_some(home)
}

/// Serve HTTP/1.1 on an accepted connection (plain TCP, or TLS with the client
/// certificate it verified).
pub(super) async fn serve_io<IO>(
    proxy: Arc<Proxy>,
    io: IO,
    peer: SocketAddr,
    cert: Option<Arc<ClientCert>>,
    stop: CancellationToken,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let header_timeout = proxy.config().client_header_timeout;
    tokenizer_net::lifecycle::track_requests();
    let service = service_fn(move |req| {
        let proxy = proxy.clone();
        let cert = cert.clone();
        let in_flight = InFlight::begin();
        boxed_response(async move { in_flight.attach(proxy.handle(peer, cert, None, req).await) })
    });
    let conn = http1_builder(header_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    run_connection(conn, &stop, peer).await;
}
