//! `HTTPS_PROXY` mode: an HTTP proxy listener for clients that honour `HTTPS_PROXY`.
//!
//! - `CONNECT target:443` → 200, then TLS with a forged certificate, as on the TLS
//!   listener (the SNI must name the CONNECT host).
//! - `CONNECT passthrough-host:port` → dialled through the destination guard, then bytes
//!   are spliced without interception; on port 80 (plain HTTP) every request inside is
//!   judged instead ([`super::passthrough_http`]): it must name the CONNECT host.
//! - `GET http://target/…` → forwarded through the tokenizer.
//! - anything else → 403 (default deny).

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::SidecarError;
use super::{Sidecar, forward, tls};
use tokenizer_audit::audit::request_log::RequestLog;
use tokenizer_http::body::{self, Body};
use tokenizer_net::lifecycle::run_connection;
use tokenizer_net::upstream::{DialError, dial_tcp};

/// Serve one proxy-client connection.
pub async fn serve(
    side: Arc<Sidecar>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    let header_timeout = side.config.client_header_timeout;
    let service = {
        let stop = stop.clone();
        service_fn(move |req| {
            let side = side.clone();
            let stop = stop.clone();
            tokenizer_net::lifecycle::boxed_response(request(side, peer, stop, req))
        })
    };
    let conn = tokenizer_net::lifecycle::http1_builder(header_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    run_connection(conn, &stop, peer).await;
}

async fn request(
    side: Arc<Sidecar>,
    peer: SocketAddr,
    stop: CancellationToken,
    req: Request<Incoming>,
) -> Response<Body> {
    let mut log = RequestLog::for_request(&side.telemetry, "sideproxy", peer, &req);
    let result = if req.method() == Method::CONNECT {
        connect(&side, peer, stop, req, &mut log).await
    } else if let Some(host) = req.uri().host().map(str::to_owned) {
        absolute(&side, &host, req, &mut log).await
    } else {
        Err(SidecarError::BadRequest(
            "this is a proxy: send absolute-form or CONNECT requests",
        ))
    };
    log.respond(result)
}

/// `GET http://target/…`: targets only, port 80.
async fn absolute(
    side: &Sidecar,
    host: &str,
    req: Request<Incoming>,
    log: &mut RequestLog,
) -> Result<Response<Body>, SidecarError> {
    let plain =
        req.uri().scheme_str() == Some("http") && req.uri().port_u16().is_none_or(|p| p == 80);
    if !plain || side.config.targets.get(host).is_none() {
        return Err(SidecarError::NotAllowed(
            req.uri()
                .authority()
                .map_or_else(String::new, |a| a.to_string()),
        ));
    }
    forward::forward(side, host, req, log).await
}

async fn connect(
    side: &Arc<Sidecar>,
    peer: SocketAddr,
    stop: CancellationToken,
    mut req: Request<Incoming>,
    log: &mut RequestLog,
) -> Result<Response<Body>, SidecarError> {
    let authority = req
        .uri()
        .authority()
        .cloned()
        .ok_or(SidecarError::BadRequest("bad CONNECT authority"))?;
    let host = authority.host().to_ascii_lowercase();
    let port = authority
        .port_u16()
        .ok_or(SidecarError::BadRequest("CONNECT needs host:port"))?;
    log.set_connect_host(authority.as_str());
    let on_upgrade = hyper::upgrade::on(&mut req);

    if side.config.targets.get(&host).is_some() {
        if port != 443 {
            return Err(SidecarError::NotAllowed(authority.to_string()));
        }
        let tasks = side.lifecycle.tasks.clone();
        let side = side.clone();
        tasks.spawn(async move {
            match on_upgrade.await {
                Ok(up) => tls::serve(side, TokioIo::new(up), peer, stop, Some(host)).await,
                Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
            }
        });
        return Ok(Response::new(body::empty()));
    }

    if side.config.passthrough.allows(&host, port) && port == 80 {
        log.set_decision(tokenizer_audit::audit::Decision::Passthrough);
        let side = side.clone();
        side.lifecycle.tasks.clone().spawn(async move {
            let Ok(up) = on_upgrade.await else { return };
            super::passthrough_http::serve(side, TokioIo::new(up), peer, stop, host, port, None)
                .await;
        });
        return Ok(Response::new(body::empty()));
    }

    if side.config.passthrough.allows(&host, port) {
        let dial = dial_tcp(&side.resolver, &side.guard, &host, port);
        let mut upstream = tokio::time::timeout(side.config.upstream.connect_timeout, dial)
            .await
            .map_err(|_| SidecarError::Passthrough(DialError::Timeout))??;
        log.set_decision(tokenizer_audit::audit::Decision::Passthrough);
        side.lifecycle.tasks.spawn(async move {
            let Ok(up) = on_upgrade.await else { return };
            let mut client = TokioIo::new(up);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
        return Ok(Response::new(body::empty()));
    }

    Err(SidecarError::NotAllowed(authority.to_string()))
}
