//! Plain-HTTP passthrough: a `PASSTHROUGH` host reached over plain HTTP (transparent
//! mode on port 80, or `CONNECT host:80` on the `HTTPS_PROXY` listener).
//!
//! Splicing bytes would judge only the first request: the client could send a second
//! keep-alive request, a second `Host`, or an absolute-form `GET http://other/…` and
//! reach whatever other site shares the passthrough host's address (a CDN, a virtual
//! host). So the connection is served as HTTP, and **every request** is judged: it must
//! name the connection's host (one `Host`, equal to it; an absolute-form target naming
//! it too), or it gets 403 and an audit line. Admitted requests go, in order, over one
//! upstream connection dialled by name through the destination guard; a `101` is
//! spliced both ways. Nothing is injected: passthrough hosts get no credential.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, Response, header};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::Sidecar;
use super::SidecarError;
use tokenizer_audit::audit::{Decision, RequestLog};
use tokenizer_http::body::{self, Body};
use tokenizer_net::lifecycle::{boxed_response, run_connection};
use tokenizer_net::upstream::{DialError, dial_tcp};

/// The connection's one upstream connection, dialled for its first admitted request.
type Upstream = Arc<Mutex<Option<SendRequest<Body>>>>;

/// Serve a client connection to the passthrough `host:port` (`mode`: the audit line's).
pub async fn serve<IO>(
    side: Arc<Sidecar>,
    io: IO,
    peer: SocketAddr,
    stop: CancellationToken,
    host: String,
    port: u16,
    mode: Option<&'static str>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let upstream: Upstream = Arc::default();
    let header_timeout = side.config.client_header_timeout;
    let host: Arc<str> = host.into();
    let service = service_fn(move |req| {
        let (side, host, upstream) = (side.clone(), host.clone(), upstream.clone());
        boxed_response(async move {
            let mut log = RequestLog::for_request(&side.telemetry, "sideproxy", peer, &req);
            if let Some(mode) = mode {
                log.set_mode(mode);
            }
            log.set_host(&host);
            let result = match judge(&req, &host, port) {
                Ok(()) => forward(&side, &host, port, &upstream, req).await,
                Err(e) => Err(e),
            };
            if result.is_ok() {
                log.set_decision(Decision::Passthrough);
            }
            log.respond(result)
        })
    });
    let conn = tokenizer_net::lifecycle::http1_builder(header_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    run_connection(conn, &stop, peer).await;
}

/// Does the request name the connection's host, and only it?
fn judge<B>(req: &Request<B>, host: &str, port: u16) -> Result<(), SidecarError> {
    let named = |authority: &http::uri::Authority| {
        authority.host().eq_ignore_ascii_case(host) && authority.port_u16().unwrap_or(80) == port
    };
    let other = |what: &str| SidecarError::NotAllowed(what.to_owned());
    if req.method() == Method::CONNECT {
        return Err(other("CONNECT inside a passthrough connection"));
    }
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let (Some(value), None) = (hosts.next(), hosts.next()) else {
        return Err(SidecarError::BadRequest("want exactly one Host header"));
    };
    let authority = value
        .to_str()
        .ok()
        .and_then(|v| v.parse::<http::uri::Authority>().ok())
        .ok_or(SidecarError::BadRequest("bad Host header"))?;
    if !named(&authority) {
        return Err(other(authority.as_str()));
    }
    if let Some(target) = req.uri().authority() {
        let plain = req.uri().scheme_str().is_none_or(|s| s == "http");
        if !plain || !named(target) {
            return Err(other(target.as_str()));
        }
    }
    Ok(())
}

/// Send an admitted request over the connection's upstream connection (dialled now if
/// there is none, or it closed). The lock is this client connection's own: its requests
/// are answered in order anyway.
async fn forward(
    side: &Sidecar,
    host: &str,
    port: u16,
    upstream: &Upstream,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, SidecarError> {
    let client_upgrade = hyper::upgrade::on(&mut req);
    let (mut parts, incoming) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = path
        .parse()
        .map_err(|_| SidecarError::BadRequest("bad request target"))?;
    let mut slot = upstream.lock().await;
    let mut sender = match slot.take() {
        Some(sender) if !sender.is_closed() => sender,
        _ => dial(side, host, port).await?,
    };
    sender
        .ready()
        .await
        .map_err(|_| SidecarError::PassthroughFailed)?;
    let sent = sender.send_request(Request::from_parts(parts, body::incoming(incoming)));
    let response = tokio::time::timeout(side.config.upstream.response_timeout, sent).await;
    *slot = Some(sender);
    drop(slot);
    let mut response = match response {
        Ok(Ok(response)) => response,
        Ok(Err(_)) => return Err(SidecarError::PassthroughFailed),
        Err(_) => return Err(SidecarError::Passthrough(DialError::Timeout)),
    };
    if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
        tokenizer_http::upgrade::splice(client_upgrade, hyper::upgrade::on(&mut response), None);
    }
    Ok(response.map(body::incoming))
}

/// A new upstream connection to `host:port`, by name, through the destination guard.
async fn dial(side: &Sidecar, host: &str, port: u16) -> Result<SendRequest<Body>, SidecarError> {
    let dial = dial_tcp(&side.resolver, &side.guard, host, port);
    let stream = tokio::time::timeout(side.config.upstream.connect_timeout, dial)
        .await
        .map_err(|_| SidecarError::Passthrough(DialError::Timeout))??;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| SidecarError::PassthroughFailed)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "passthrough upstream connection ended");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &str, hosts: &[&str]) -> Request<()> {
        let mut b = Request::get(target);
        for h in hosts {
            b = b.header(header::HOST, *h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn every_request_must_name_the_connections_host() {
        for ok in [
            req("/", &["plain.example"]),
            req("/x?y", &["Plain.Example:80"]),
            req("http://plain.example/x", &["plain.example"]),
        ] {
            assert!(judge(&ok, "plain.example", 80).is_ok(), "{ok:?}");
        }
        for bad in [
            req("/", &["other.example"]),
            req("/", &["plain.example", "other.example"]),
            req("/", &[]),
            req("/", &["plain.example:8080"]),
            req("http://other.example/x", &["plain.example"]),
            req("https://plain.example/x", &["plain.example"]),
            Request::connect("plain.example:80")
                .header(header::HOST, "plain.example")
                .body(())
                .unwrap(),
        ] {
            assert!(judge(&bad, "plain.example", 80).is_err(), "{bad:?}");
        }
    }
}
