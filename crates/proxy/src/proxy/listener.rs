//! Accepting client connections: HTTP/1.1 with keep-alive and upgrades (CONNECT,
//! WebSocket).

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

/// Serve a plain connection, parking it while it idles (see [`super::park`]).
async fn connection(
    proxy: Arc<Proxy>,
    mut stream: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    let header_timeout = proxy.config().client_header_timeout;
    tokenizer_net::lifecycle::track_requests();
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
        let parked = &proxy.telemetry().metrics.connections_parked;
        parked.inc();
        let woke = tokio::select! {
            r = tokio::time::timeout(header_timeout.saturating_sub(PARK_AFTER), stream.readable()) => {
                matches!(r, Ok(Ok(())))
            }
            () = stop.cancelled() => false,
        };
        parked.dec();
        if !woke {
            return;
        }
    }
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
    let service = {
        let proxy = proxy.clone();
        let activity = activity.clone();
        service_fn(move |req| {
            let proxy = proxy.clone();
            let activity = activity.clone();
            activity.begin();
            let in_flight = InFlight::begin();
            boxed_response(async move {
                in_flight.attach(proxy.handle(peer, None, Some(activity), req).await)
            })
        })
    };
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
