//! `tokenizer serve`: the stateless credential-injecting proxy.

mod caller;
pub mod config;
mod connect;
pub mod error;
mod git_push;
mod listener;
mod mcp;
mod oidc;
pub(crate) mod park;
mod pipeline;
mod prepare;
pub mod target;
pub mod tls_listener;

use futures_util::future::BoxFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;

pub use caller::Caller;

use crate::proxy::config::ServeConfig;
use crate::proxy::error::ProxyError;
use oidc::OidcVerifier;
use target::{Kind, classify};
use tokenizer_audit::audit::Telemetry;
use tokenizer_audit::audit::request_log::RequestLog;
use tokenizer_core::OpenKeys;
use tokenizer_core::time::now_unix;
use tokenizer_fleet::fleet::{FailureMode, Fleet};
use tokenizer_http::body::{self, Body, Budget, IdleTimeout};
use tokenizer_net::lifecycle::Lifecycle;
use tokenizer_net::upstream::{
    DestinationGuard, Upstream, guard::listener_addrs, tls::TlsConfigError,
};
use tokenizer_secret::auth::{ClientCert, FlySrc, FlySrcError, VerifiedTokens};
use tokenizer_secret::policy::{Limit, Limiter, Refusal, Revocations};
use tokenizer_secret::secret::{CacheLimits, SecretCache};

/// The running proxy: configuration, the shared upstream pool, and the little state a
/// stateless proxy keeps: the revocation list and rate-limit counters (or the fleet's,
/// on Redis).
pub struct Proxy {
    config: ServeConfig,
    upstream: Upstream,
    revocations: Revocations,
    limiter: Limiter,
    fleet: Option<Arc<Fleet>>,
    /// Verifies workload tokens of `OIDC_ISSUERS`.
    oidc: OidcVerifier,
    telemetry: Arc<Telemetry>,
    secrets: SecretCache,
    /// Bytes all buffered request bodies may hold together.
    budget: Budget,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The upstream client's TLS roots could not be loaded (`UPSTREAM_CA_FILE`).
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// `REVOKED_SECRETS_FILE` could not be read.
    #[error("REVOKED_SECRETS_FILE {path}: {source}")]
    Revocations {
        /// The revocation list's path.
        path: std::path::PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The fleet's Redis client could not be started (`REDIS_URL`, `REDIS_CA_FILE`).
    #[error(transparent)]
    Fleet(#[from] tokenizer_fleet::fleet::FleetError),
}

impl Proxy {
    /// Build the proxy; `own` are the addresses this process listens on, which the guard
    /// refuses to dial. Must be called inside a Tokio runtime (the revocation list is
    /// watched).
    pub fn new(config: ServeConfig, own: &[SocketAddr]) -> Result<Arc<Self>, SetupError> {
        let mut guard = DestinationGuard::new(
            config.upstream.allow.clone(),
            config.upstream.deny.clone(),
            vec![],
        );
        for local in own {
            guard.add_own(listener_addrs(*local));
        }
        let telemetry = Telemetry::new(config.audit_ring_size, config.fleet.is_some());
        let counters = (
            telemetry.metrics.upstream_connections.clone(),
            telemetry.metrics.upstream_connections_open.clone(),
        );
        let upstream = Upstream::new(&config.upstream, guard, counters)?;
        let revocations = match &config.revoked_secrets_file {
            Some(path) => {
                Revocations::watch(path.clone()).map_err(|source| SetupError::Revocations {
                    path: path.clone(),
                    source,
                })?
            }
            None => Revocations::default(),
        };
        let fleet = match &config.fleet {
            Some(fleet) => Some(Fleet::start(
                fleet,
                revocations.clone(),
                config.rate_limit_keys,
            )?),
            None => None,
        };
        let secrets = SecretCache::new(
            config.keys.clone(),
            CacheLimits {
                entries: config.unseal_cache_size,
                bytes: config.unseal_cache_bytes,
                guard: config.reflection_guard,
            },
        );
        let proxy = Arc::new(Self {
            limiter: Limiter::new(config.rate_limit_keys),
            fleet,
            oidc: OidcVerifier::new(&config.oidc_issuers, config.oidc_refresh),
            budget: Budget::new(config.buffered_body_budget),
            config,
            upstream,
            revocations,
            telemetry,
            secrets,
        });
        let weak = Arc::downgrade(&proxy);
        proxy.telemetry.metrics.set_sampler(move |m| {
            let Some(p) = weak.upgrade() else { return };
            let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            m.unseal_cache_bytes.set(gauge(p.secrets.bytes()));
            m.unseal_cache_entries.set(gauge(p.secrets.len()));
            m.rate_limit_keys.set(gauge(p.limiter.len()));
            let fleet_evicted = p.fleet.as_ref().map_or(0, |f| f.evicted());
            m.rate_limit_evictions.set(
                i64::try_from(p.limiter.evicted().saturating_add(fleet_evicted))
                    .unwrap_or(i64::MAX),
            );
            if let (Some(fleet), Some(fm)) = (&p.fleet, &m.fleet) {
                let health = fleet.health();
                fm.up.set(i64::from(health.is_up()));
                fm.rtt_seconds.set(health.rtt().as_secs_f64());
                fm.errors
                    .set(i64::try_from(health.errors()).unwrap_or(i64::MAX));
                fm.revocations.set(gauge(p.revocations.fleet_len()));
                fm.data_losses
                    .set(i64::try_from(health.data_losses()).unwrap_or(i64::MAX));
            }
            m.buffered_body_bytes.set(gauge(
                p.config
                    .buffered_body_budget
                    .saturating_sub(p.budget.available()),
            ));
        });
        Ok(proxy)
    }

    /// The audit ring and metrics.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// The revoked secrets: `REVOKED_SECRETS_FILE`, plus the fleet's set with Redis.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// This process's rate-limit counters (all of them without Redis; the fallback
    /// while Redis is unreachable with `REDIS_FAILURE=open`).
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// The fleet's Redis, with `REDIS_URL`.
    pub fn fleet(&self) -> Option<&Arc<Fleet>> {
        self.fleet.as_ref()
    }

    /// Take one request from every limit: across the fleet with Redis, else (or while
    /// Redis is unreachable with `REDIS_FAILURE=open`) in this process.
    pub async fn take_limits(&self, limits: &[Limit]) -> Result<(), ProxyError> {
        if limits.is_empty() {
            return Ok(());
        }
        if let Some(fleet) = &self.fleet {
            match fleet.take(limits).await {
                Ok(decided) => return decided.map_err(ProxyError::RateLimited),
                // Redis is there and said no: never a reason to count alone.
                Err(e) if !e.is_outage() => {
                    tracing::warn!(error = %e, "fleet limits: Redis refused the limit script");
                    return Err(ProxyError::RateLimited(Refusal::Unavailable));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "fleet limits unavailable");
                    if fleet.failure() == FailureMode::Closed {
                        return Err(ProxyError::RateLimited(Refusal::Unavailable));
                    }
                }
            }
        }
        self.limiter
            .take(limits, std::time::Instant::now())
            .map_err(ProxyError::RateLimited)
    }

    /// Verify the request's Fly-Src when `USE_FLYSRC` is on. With `REQUIRE_FLYSRC`, a
    /// request without a valid one is refused.
    pub(crate) fn fly_src(
        &self,
        headers: &http::HeaderMap,
        peer: SocketAddr,
    ) -> Result<Option<Result<FlySrc, FlySrcError>>, ProxyError> {
        let Some(verifier) = &self.config.flysrc else {
            return Ok(None);
        };
        let verified = verifier.verify(headers, peer.ip(), now_unix());
        match verified {
            Err(e) if self.config.require_flysrc => Err(ProxyError::FlySrcRequired(e)),
            other => Ok(Some(other)),
        }
    }

    /// The settings the proxy runs with.
    pub fn config(&self) -> &ServeConfig {
        &self.config
    }

    /// The open keys (current and retired) that open sealed secrets.
    pub fn keys(&self) -> &OpenKeys {
        &self.config.keys
    }

    /// Opens sealed secrets, through the unseal cache.
    pub fn secrets(&self) -> &SecretCache {
        &self.secrets
    }

    /// The shared upstream client (connection pool, destination guard).
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// The buffering budget (`BUFFERED_BODY_BUDGET`).
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// A client's request body, cut when it stalls (`CLIENT_BODY_TIMEOUT`).
    pub(crate) fn client_body(&self, incoming: Incoming) -> Body {
        body::boxed(IdleTimeout::new(
            body::incoming(incoming),
            self.config.client_body_timeout,
        ))
    }

    /// The whole request body in memory, within `MAX_BUFFERED_BODY` (413) and the
    /// buffering budget (503), to judge it as it will be sent (method overrides, MCP).
    pub(crate) async fn read_whole(
        &self,
        headers: &http::HeaderMap,
        body: tokenizer_http::body::Body,
    ) -> Result<tokenizer_http::body::Buffered, ProxyError> {
        use tokenizer_http::body::{Read, ReadError};
        use tokenizer_processor::processor::ProcessorError;
        let declared = tokenizer_http::headers::content_length(headers);
        let read = tokenizer_http::body::read_bounded(
            body,
            self.config.max_buffered_body,
            declared,
            &self.budget,
            false,
            |_| {},
        )
        .await
        .map_err(|e| ProxyError::Processor(ProcessorError::Body(e)))?;
        match read {
            Read::Complete(buffered) => Ok(buffered),
            Read::Partial { .. } => Err(ProxyError::Processor(ProcessorError::Body(
                ReadError::TooLarge,
            ))),
        }
    }

    /// Handle one request from a client connection (`cert`: the client certificate the
    /// TLS listener verified).
    /// `activity`: the parkable connection's, which learns when the response ends.
    async fn handle(
        self: &Arc<Self>,
        peer: SocketAddr,
        cert: Option<Arc<ClientCert>>,
        activity: Option<Arc<park::Activity>>,
        req: Request<Incoming>,
    ) -> Response<Body> {
        let (parts, incoming) = req.into_parts();
        let mut log = RequestLog::start(&self.telemetry, "serve", peer, &parts);
        log.set_on_end(activity.map(|a| a as Arc<dyn tokenizer_audit::audit::RequestEnd>));
        let flysrc = match self.fly_src(&parts.headers, peer) {
            Ok(f) => f,
            Err(e) => return log.respond(Err(e)),
        };
        let caller = Caller { flysrc, cert };
        let result = match classify(&parts, &self.config.hostnames) {
            Ok(Kind::Connect(target)) => {
                let req = Request::from_parts(parts, incoming);
                connect::open(self, peer, req, target, caller, &mut log).await
            }
            Ok(Kind::Forward(target)) => {
                let body = log.count_request(self.client_body(incoming));
                pipeline::forward(self, &target, parts, body, None, &caller, &mut log).await
            }
            Err(e) => Err(e),
        };
        log.respond(result)
    }

    /// Verify the OIDC tokens among the `Proxy-Authorization` values of `maps` (only
    /// with `OIDC_ISSUERS`).
    pub(crate) async fn verify_oidc<'a>(
        &self,
        maps: impl IntoIterator<Item = &'a http::HeaderMap>,
    ) -> VerifiedTokens {
        if self.oidc.is_empty() {
            return VerifiedTokens::default();
        }
        let candidates = tokenizer_secret::auth::Candidates::from_headers(maps);
        // Boxed: the verification's future is ~1.6 KiB, and inline it would size the
        // future of every request (boxed per request) whether or not OIDC is in use.
        let verified = Box::pin(self.oidc.verify(&candidates, &self.upstream, &self.budget)).await;
        self.telemetry
            .metrics
            .oidc_cache_hits
            .inc_by(verified.cache_hits());
        verified
    }
}

/// Serve on `listener` until `shutdown` resolves, then drain for up to `drain`.
pub fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    shutdown: BoxFuture<'static, ()>,
    drain: Duration,
) -> BoxFuture<'static, ()> {
    serve_with_tls(listener, None, proxy, shutdown, drain)
}

/// [`serve`], and the TLS listener too when there is one (`MAX_CONNECTIONS` counts
/// both).
pub fn serve_with_tls(
    listener: TcpListener,
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    proxy: Arc<Proxy>,
    shutdown: BoxFuture<'static, ()>,
    drain: Duration,
) -> BoxFuture<'static, ()> {
    // Boxed here, not `async fn`: rustc compiles an async fn's body again in every crate
    // that awaits it; a boxed future is compiled once, in this crate.
    Box::pin(serve_until(listener, tls, proxy, shutdown, drain))
}

async fn serve_until(
    listener: TcpListener,
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    proxy: Arc<Proxy>,
    shutdown: BoxFuture<'static, ()>,
    drain: Duration,
) {
    let lifecycle = Lifecycle::with_max_connections(proxy.config().max_connections)
        .counting(proxy.telemetry().metrics.connections_open.clone());
    let plain = listener::serve(listener, proxy.clone(), &lifecycle);
    let secure = async {
        match tls {
            Some((l, acceptor)) => tls_listener::serve(l, acceptor, proxy, &lifecycle).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = plain => {}
        () = secure => {}
        () = shutdown => {}
    }
    lifecycle.drain(drain).await;
}
