//! The pooled upstream client: TLS always, keep-alive connections reused across
//! requests, every dial through the destination guard.

mod connector;
pub mod guard;
pub mod resolve;
pub mod tls;

use std::error::Error as _;
use std::path::PathBuf;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use ipnet::IpNet;

pub use connector::{Connector, DialError, dial_tcp};
pub use guard::{Denied, Guard};
pub use resolve::Resolver;

use crate::body::Body;

/// How upstream connections are made.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    pub ca_file: Option<PathBuf>,
    pub resolver: Resolver,
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Why an upstream exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The destination guard refused the dial (the client's fault: 400).
    #[error(transparent)]
    Denied(Denied),
    /// Connecting, TLS, or the HTTP exchange failed (502).
    #[error("{0}")]
    Failed(String),
}

/// The shared upstream client.
#[derive(Clone)]
pub struct Upstream {
    client: Client<Connector, Body>,
}

impl Upstream {
    /// `metrics` counts the connections the pool opens.
    pub fn new(
        config: &UpstreamConfig,
        guard: Guard,
        metrics: &crate::audit::Metrics,
    ) -> Result<Self, tls::TlsConfigError> {
        let tls = tls::client_config(config.ca_file.as_deref())?;
        let counters = (
            metrics.upstream_connections.clone(),
            metrics.upstream_connections_open.clone(),
        );
        let connector = Connector::new(
            tls,
            config.resolver.clone(),
            guard,
            config.connect_timeout,
            counters,
        );
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.idle_timeout)
            .set_host(false)
            .build(connector);
        Ok(Self { client })
    }

    /// Send `req` (absolute `https://` URI, Host header already set).
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>, UpstreamError> {
        self.client.request(req).await.map_err(classify)
    }
}

/// Find a guard denial anywhere in the cause chain; everything else is an upstream
/// failure, described by the innermost useful message.
fn classify(err: hyper_util::client::legacy::Error) -> UpstreamError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.source();
    let mut detail = err.to_string();
    while let Some(e) = source {
        if let Some(DialError::Denied(d)) = e.downcast_ref::<DialError>() {
            return UpstreamError::Denied(d.clone());
        }
        detail = e.to_string();
        source = e.source();
    }
    UpstreamError::Failed(detail)
}
