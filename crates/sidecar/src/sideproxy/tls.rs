//! The TLS side of the sidecar: handshake with a certificate forged for the client's
//! SNI (unknown names are refused), then HTTP/1.1 or HTTP/2 (ALPN), each request
//! forwarded through the tokenizer for that host. `localhost` serves the CA.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::{Sidecar, forward};
use tokenizer_audit::audit::request_log::RequestLog;
use tokenizer_http::body::{self, Body};
use tokenizer_net::lifecycle::{boxed_response, run_connection};

/// The SNI on which the CA certificate is served.
pub const CA_HOST: &str = "localhost";

/// Serve one client connection. `pinned` (from a CONNECT) is the only SNI accepted.
pub async fn serve<IO>(
    side: Arc<Sidecar>,
    io: IO,
    peer: SocketAddr,
    stop: CancellationToken,
    pinned: Option<String>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve_as(side, io, peer, stop, pinned, None).await;
}

/// A connection the firewall redirected (transparent mode), whose ClientHello named
/// `sni`: served as on the TLS listener, logged with `"mode":"transparent"`.
pub async fn serve_transparent<IO>(
    side: Arc<Sidecar>,
    io: IO,
    peer: SocketAddr,
    stop: CancellationToken,
    sni: String,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve_as(side, io, peer, stop, Some(sni), Some("transparent")).await;
}

async fn serve_as<IO>(
    side: Arc<Sidecar>,
    io: IO,
    peer: SocketAddr,
    stop: CancellationToken,
    pinned: Option<String>,
    mode: Option<&'static str>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(tls) = tokenizer_net::lifecycle::accept_tls(&side.acceptor, io, peer).await else {
        return;
    };
    let Some(sni) = tls.get_ref().1.server_name().map(str::to_ascii_lowercase) else {
        return;
    };
    if pinned.as_ref().is_some_and(|p| *p != sni) {
        tracing::info!(%peer, %sni, "TLS refused: SNI differs from the CONNECT host");
        return;
    }
    let sni: Arc<str> = sni.into();
    let header_timeout = side.config.client_header_timeout;
    let service = service_fn(move |req| {
        let side = side.clone();
        let sni = sni.clone();
        boxed_response(async move { request(&side, peer, &sni, mode, req).await })
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
    run_connection(conn, &stop, peer).await;
}

async fn request(
    side: &Sidecar,
    peer: SocketAddr,
    sni: &str,
    mode: Option<&'static str>,
    req: Request<Incoming>,
) -> Response<Body> {
    let (parts, incoming) = req.into_parts();
    let mut log = RequestLog::start(&side.telemetry, "sideproxy", peer, &parts);
    log.set_host(sni);
    if let Some(mode) = mode {
        log.set_mode(mode);
    }
    let result = if sni == CA_HOST {
        Ok(ca_certificate(side, &parts))
    } else {
        forward::forward(side, sni, Request::from_parts(parts, incoming), &mut log).await
    };
    log.respond(result)
}

/// `GET /ca-cert.pem` on `localhost`: the CA in PEM, so a sandbox can trust it.
fn ca_certificate(side: &Sidecar, parts: &http::request::Parts) -> Response<Body> {
    if parts.uri.path() != "/ca-cert.pem" || !matches!(parts.method, Method::GET | Method::HEAD) {
        return tokenizer_audit::audit::error_response(
            StatusCode::NOT_FOUND,
            "not found: try /ca-cert.pem",
        );
    }
    let mut resp = Response::new(body::full(side.certs.ca().cert_pem().to_owned()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-pem-file"),
    );
    resp
}
