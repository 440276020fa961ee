//! The pooled upstream client: TLS always, keep-alive connections reused across
//! requests, every dial through the destination guard.

mod connector;
pub mod guard;
pub mod pool;
pub mod resolve;
pub mod tls;

use std::error::Error as _;
use std::path::PathBuf;
use std::time::Duration;

use http::{Request, Response};
use hyper_util::client::legacy::Client;
use ipnet::IpNet;

pub use connector::{Connector, DialError, dial_tcp};
pub use guard::{Denied, DestinationGuard};
pub use resolve::Resolver;

use tokenizer_core::settings::{ConfigError, cidrs};
use tokenizer_http::body::Body;

/// How upstream connections are made.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// Extra PEM roots trusted for upstream TLS besides the system's (`UPSTREAM_CA_FILE`).
    pub ca_file: Option<PathBuf>,
    /// Address pins consulted before DNS (`UPSTREAM_RESOLVE`).
    pub resolver: Resolver,
    /// Ranges exempt from the guard's built-in denials (`UPSTREAM_ALLOW_CIDRS`).
    pub allow: Vec<IpNet>,
    /// Ranges denied in addition to the built-in list (`UPSTREAM_DENY_CIDRS`).
    pub deny: Vec<IpNet>,
    /// Bound on TCP connect plus TLS handshake (`UPSTREAM_CONNECT_TIMEOUT`).
    pub connect_timeout: Duration,
    /// How long a pooled keep-alive connection may sit unused before it is closed (90 s).
    pub idle_timeout: Duration,
    /// How long the upstream may take to send response headers (504 after).
    pub response_timeout: Duration,
    /// How long a response body may go without a byte before it is cut off.
    pub read_timeout: Duration,
}

/// Why an upstream exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The destination guard refused the dial (the client's fault: 400).
    #[error(transparent)]
    Denied(Denied),
    /// No response headers within `UPSTREAM_RESPONSE_TIMEOUT` (504).
    #[error("upstream did not answer in time")]
    Timeout,
    /// The client's own request body failed mid-stream (malformed chunking, connection
    /// dropped): the client's fault, 400.
    #[error("request body could not be read")]
    RequestBody,
    /// Connecting, TLS, or the HTTP exchange failed (502).
    #[error("{0}")]
    Failed(String),
}

/// `UPSTREAM_*` settings shared by serve and sideproxy.
pub fn config(
    ca_file: Option<PathBuf>,
    resolve: Option<&str>,
    allow: Option<&str>,
    deny: Option<&str>,
    timeouts: UpstreamTimeouts,
) -> Result<UpstreamConfig, ConfigError> {
    let resolver = Resolver::parse(resolve.unwrap_or("")).map_err(|e| ConfigError::Invalid {
        name: "UPSTREAM_RESOLVE",
        detail: e.to_string(),
    })?;
    if let Some(path) = &ca_file
        && !path.is_file()
    {
        return Err(ConfigError::Invalid {
            name: "UPSTREAM_CA_FILE",
            detail: format!("{} is not a readable file", path.display()),
        });
    }
    Ok(UpstreamConfig {
        ca_file,
        resolver,
        allow: cidrs("UPSTREAM_ALLOW_CIDRS", allow.unwrap_or(""))?,
        deny: cidrs("UPSTREAM_DENY_CIDRS", deny.unwrap_or(""))?,
        connect_timeout: timeouts.connect,
        idle_timeout: Duration::from_secs(90),
        response_timeout: timeouts.response,
        read_timeout: timeouts.read,
    })
}

/// `UPSTREAM_CONNECT_TIMEOUT`, `UPSTREAM_RESPONSE_TIMEOUT`, `UPSTREAM_READ_TIMEOUT`.
#[derive(Clone, Copy, Debug)]
pub struct UpstreamTimeouts {
    /// TCP connect plus TLS handshake (`UPSTREAM_CONNECT_TIMEOUT`).
    pub connect: Duration,
    /// Until response headers arrive, then 504 (`UPSTREAM_RESPONSE_TIMEOUT`).
    pub response: Duration,
    /// Longest stall within a response body before it is cut off (`UPSTREAM_READ_TIMEOUT`).
    pub read: Duration,
}

/// Idle upstream connections kept per host (more are closed when they go idle): enough
/// for any real burst.
const MAX_IDLE_PER_HOST: usize = 256;

/// The shared upstream client.
#[derive(Clone)]
pub struct Upstream {
    client: Client<Connector, Body>,
    response_timeout: Duration,
    read_timeout: Duration,
}

impl Upstream {
    /// `counters` count the connections the pool opens, and those open now.
    pub fn new(
        config: &UpstreamConfig,
        guard: DestinationGuard,
        counters: (
            prometheus_client::metrics::counter::Counter,
            prometheus_client::metrics::gauge::Gauge,
        ),
    ) -> Result<Self, tls::TlsConfigError> {
        let tls = tls::client_config(config.ca_file.as_deref())?;
        let connector = Connector::new(
            tls,
            config.resolver.clone(),
            guard,
            config.connect_timeout,
            counters,
        );
        let client = pool::pooled(connector, config.idle_timeout, MAX_IDLE_PER_HOST);
        Ok(Self {
            client,
            response_timeout: config.response_timeout,
            read_timeout: config.read_timeout,
        })
    }

    /// Send `req` (absolute `https://` URI, Host header already set). The response body
    /// is cut off if it stalls for longer than the read timeout.
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Body>, UpstreamError> {
        let response = tokio::time::timeout(self.response_timeout, self.client.request(req))
            .await
            .map_err(|_| UpstreamError::Timeout)?
            .map_err(classify)?;
        let (head, body) = response.into_parts();
        let body = tokenizer_http::body::IdleTimeout::new(
            tokenizer_http::body::incoming(body),
            self.read_timeout,
        );
        Ok(Response::from_parts(
            head,
            tokenizer_http::body::boxed(body),
        ))
    }
}

/// Find a guard denial or a failed request body anywhere in the cause chain; everything
/// else is an upstream failure, described by the innermost useful message.
fn classify(err: hyper_util::client::legacy::Error) -> UpstreamError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.source();
    let mut detail = err.to_string();
    while let Some(e) = source {
        if let Some(DialError::Denied(d)) = e.downcast_ref::<DialError>() {
            return UpstreamError::Denied(d.clone());
        }
        // hyper reports a failing request body stream as a user error; that stream is
        // the client's body, so the client is at fault.
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_user)
        {
            return UpstreamError::RequestBody;
        }
        detail = e.to_string();
        source = e.source();
    }
    UpstreamError::Failed(detail)
}
