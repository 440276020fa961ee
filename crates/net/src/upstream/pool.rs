//! The one recipe for a pooled HTTP client and for a dial within a deadline: the proxy's
//! upstream client ([`super::Upstream`]) and the sidecar's client to the tokenizer are
//! both built here, so keep-alive, idle expiry, the pool's timer and what a slow dial
//! becomes ([`DialError::Timeout`]) are decided in one place.

use std::future::Future;
use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::Connect;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::DialError;
use tokenizer_http::body::Body;

/// A keep-alive client over `connector`: connections idle for `idle` are closed, at most
/// `max_idle_per_host` wait per host (so one caller's burst to one host cannot park an
/// unbounded number). Requests keep the `Host` header they were given.
pub fn pooled<C>(connector: C, idle: Duration, max_idle_per_host: usize) -> Client<C, Body>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(idle)
        .pool_max_idle_per_host(max_idle_per_host)
        .set_host(false)
        .build(connector)
}

/// `dial` (TCP connect plus any TLS handshake), or [`DialError::Timeout`] when it takes
/// longer than `timeout` (`UPSTREAM_CONNECT_TIMEOUT`).
pub async fn within<T>(
    timeout: Duration,
    dial: impl Future<Output = Result<T, DialError>>,
) -> Result<T, DialError> {
    tokio::time::timeout(timeout, dial)
        .await
        .unwrap_or(Err(DialError::Timeout))
}
