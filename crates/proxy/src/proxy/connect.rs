//! CONNECT: a plain-HTTP tunnel to one host (port 80 only), in which every request runs
//! the whole pipeline with the CONNECT's secrets first, and must name the CONNECT
//! authority in its Host (so a tunnel opened for one host cannot reach another).

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName};
use http::uri::Authority;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;

use super::Caller;
use super::Proxy;
use super::pipeline;
use super::prepare::{self, RequestFacts, SecretSource};
use super::target::{Target, same_authority};
use crate::proxy::error::ProxyError;
use tokenizer_audit::audit::request_log::RequestLog;
use tokenizer_http::body::{self, Body};
use tokenizer_secret::secret::PROXY_TOKENIZER;

/// What every request in a tunnel inherits from its CONNECT.
struct Tunnel {
    authority: Authority,
    target: Target,
    /// The CONNECT's `Proxy-Tokenizer` and `Proxy-Authorization` lines.
    secrets: HeaderMap,
    /// Who opened the tunnel: its verified Fly-Src (used by requests inside that carry
    /// none of their own) and client certificate.
    caller: Caller,
}

/// Check the CONNECT's own secrets, answer 200, and serve the tunnel once upgraded.
pub async fn open(
    proxy: &Arc<Proxy>,
    peer: SocketAddr,
    mut req: Request<Incoming>,
    target: Target,
    caller: Caller,
    log: &mut RequestLog,
) -> Result<Response<Body>, ProxyError> {
    let authority = req
        .uri()
        .authority()
        .cloned()
        .ok_or(ProxyError::Target("bad CONNECT authority"))?;
    log.set_connect_host(authority.as_str());
    // Fail early: a bad CONNECT-level secret never opens a tunnel. Method and path
    // rules wait for the requests inside.
    let oidc = proxy.verify_oidc([req.headers()]).await;
    log.set_identity(&oidc, caller.cert.as_deref());
    let source = SecretSource {
        headers: req.headers(),
        policy_host: &target.policy_host,
        dial_host: &target.host,
    };
    let facts = RequestFacts {
        method: None,
        path: None,
        query: None,
        headers: None,
        flysrc: caller.flysrc.as_ref(),
        oidc: &oidc,
        cert: caller.cert.as_deref(),
    };
    prepare::prepare(proxy, &[source], &facts, log)?;

    let mut secrets = HeaderMap::new();
    for name in [
        HeaderName::from_static(PROXY_TOKENIZER),
        header::PROXY_AUTHORIZATION,
    ] {
        for value in req.headers().get_all(&name) {
            secrets.append(name.clone(), value.clone());
        }
    }
    let tunnel = Arc::new(Tunnel {
        authority,
        target,
        secrets,
        caller,
    });
    let on_upgrade = hyper::upgrade::on(&mut req);
    let proxy = proxy.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(proxy, peer, tunnel, upgraded).await,
            Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
        }
    });
    Ok(Response::new(body::empty()))
}

async fn serve(
    proxy: Arc<Proxy>,
    peer: SocketAddr,
    tunnel: Arc<Tunnel>,
    io: hyper::upgrade::Upgraded,
) {
    let header_timeout = proxy.config().client_header_timeout;
    let service = service_fn(move |req| {
        let proxy = proxy.clone();
        let tunnel = tunnel.clone();
        tokenizer_net::lifecycle::boxed_response(request(proxy, peer, tunnel, req))
    });
    let conn = tokenizer_net::lifecycle::http1_builder(header_timeout)
        .serve_connection(io, service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "tunnel connection ended with an error");
    }
}

async fn request(
    proxy: Arc<Proxy>,
    peer: SocketAddr,
    tunnel: Arc<Tunnel>,
    req: Request<Incoming>,
) -> Response<Body> {
    let (parts, incoming) = req.into_parts();
    let mut log = RequestLog::start(proxy.telemetry(), "serve", peer, &parts);
    log.set_connect_host(tunnel.authority.as_str());
    let result = async {
        if parts.method == Method::CONNECT {
            return Err(ProxyError::Target("CONNECT inside a tunnel"));
        }
        let host = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        if !same_authority(&tunnel.authority, &host) {
            return Err(ProxyError::Target(
                "request host does not match the CONNECT authority",
            ));
        }
        let target = Target {
            policy_host: host,
            ..tunnel.target.clone()
        };
        let connect = SecretSource {
            headers: &tunnel.secrets,
            policy_host: &tunnel.target.policy_host,
            dial_host: &tunnel.target.host,
        };
        let caller = Caller {
            flysrc: if parts.headers.contains_key("fly-src") {
                proxy.fly_src(&parts.headers, peer)?
            } else {
                tunnel.caller.flysrc.clone()
            },
            cert: tunnel.caller.cert.clone(),
        };
        let body = log.count_request(proxy.client_body(incoming));
        pipeline::forward(
            &proxy,
            &target,
            parts,
            body,
            Some(connect),
            &caller,
            &mut log,
        )
        .await
    }
    .await;
    log.respond(result)
}
