//! Accepting client connections: HTTP/1.1 with keep-alive and upgrades (CONNECT,
//! WebSocket).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::Proxy;
use crate::auth::ClientCert;
use crate::lifecycle::{Lifecycle, boxed_response, run_connection};

/// The HTTP/1 server settings shared by the listeners and CONNECT tunnels.
/// `header_timeout` bounds how long request headers may take to arrive (slowloris).
pub fn http1_builder(header_timeout: Duration) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    builder
}

/// Serve `listener` until `lifecycle` stops.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>, lifecycle: &Lifecycle) {
    lifecycle
        .accept(listener, move |stream, peer, stop| {
            connection(proxy.clone(), stream, peer, stop)
        })
        .await;
}

async fn connection(
    proxy: Arc<Proxy>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    serve_io(proxy, stream, peer, None, stop).await;
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
    let service = service_fn(move |req| {
        let proxy = proxy.clone();
        let cert = cert.clone();
        boxed_response(async move { proxy.handle(peer, cert, req).await })
    });
    let conn = http1_builder(header_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    run_connection(conn, &stop, peer).await;
}
