//! `tokenizer serve`: the stateless credential-injecting proxy.

mod connect;
mod listener;
mod pipeline;
pub mod target;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;

pub use listener::http1_builder;

use crate::body::{self, Body};
use crate::config::ServeConfig;
use crate::listener::Lifecycle;
use crate::request_log::RequestLog;
use crate::secret::OpenKeys;
use crate::upstream::{Guard, Upstream, guard::listener_addrs, tls::TlsConfigError};
use target::{Kind, classify};

/// The running proxy: configuration plus the shared upstream pool.
pub struct Proxy {
    config: ServeConfig,
    upstream: Upstream,
}

impl Proxy {
    /// Build the proxy for a listener bound to `local`; the guard refuses dials back to
    /// it.
    pub fn new(config: ServeConfig, local: SocketAddr) -> Result<Arc<Self>, TlsConfigError> {
        let mut guard = Guard::new(
            config.upstream.allow.clone(),
            config.upstream.deny.clone(),
            vec![],
        );
        guard.add_own(listener_addrs(local));
        let upstream = Upstream::new(&config.upstream, guard)?;
        Ok(Arc::new(Self { config, upstream }))
    }

    pub fn config(&self) -> &ServeConfig {
        &self.config
    }

    pub fn keys(&self) -> &OpenKeys {
        &self.config.keys
    }

    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Handle one request from a client connection.
    async fn handle(self: &Arc<Self>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
        let (parts, incoming) = req.into_parts();
        let mut log = RequestLog::start("serve", peer, &parts);
        let result = match classify(&parts, &self.config.hostnames) {
            Ok(Kind::Connect(target)) => {
                let req = Request::from_parts(parts, incoming);
                connect::open(self, peer, req, target, &mut log)
            }
            Ok(Kind::Forward(target)) => {
                pipeline::forward(
                    self,
                    &target,
                    parts,
                    body::incoming(incoming),
                    None,
                    &mut log,
                )
                .await
            }
            Err(e) => Err(e),
        };
        log.respond(result)
    }
}

/// Serve on `listener` until `shutdown` resolves, then drain for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let lifecycle = Lifecycle::default();
    tokio::select! {
        () = listener::serve(listener, proxy, &lifecycle) => {}
        () = shutdown => {}
    }
    lifecycle.drain(drain).await;
}
