//! `tokenizer serve`: run the proxy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};
use tokio::net::TcpListener;

use super::{Failure, KeyArgs};
use crate::auth::FlySrcVerifier;
use crate::proxy::config::{ServeConfig, TlsListenerConfig};
use std::sync::Arc;
use tokenizer_core::settings::{self as config, ConfigError, parse_bool, parse_size};

use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::proxy::{self, Proxy};

#[derive(Parser, Clone, Debug)]
#[command(name = "serve")]
pub struct ServeArgs {
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Address to listen on; `:8080` means every interface.
    #[arg(
        help_heading = "Listening",
        long,
        env = "LISTEN_ADDRESS",
        default_value = ":8080"
    )]
    pub listen_address: String,
    /// Extra request headers to strip before forwarding (comma list).
    #[arg(
        help_heading = "Requests and responses",
        long,
        env = "FILTERED_HEADERS"
    )]
    pub filtered_headers: Option<String>,
    /// Headers stripped in addition to FILTERED_HEADERS; the image sets fly-proxy's
    /// `Fly-*` headers here, as Go's image bakes them in.
    #[arg(
        help_heading = "Requests and responses",
        long,
        env = "DEFAULT_FILTERED_HEADERS"
    )]
    pub default_filtered_headers: Option<String>,
    /// Go's `-debug`: log at debug level (Go's boolean spellings; anything else is false).
    #[arg(help_heading = "Listening", long, env = "DEBUG", hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub debug: Option<String>,
    /// Go's `-debug-tcp` (a byte dump of every connection): accepted and ignored, since a
    /// dump would hold credentials.
    #[arg(help_heading = "Listening", long, env = "DEBUG_TCP", hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub debug_tcp: Option<String>,
    /// Forward requests that carry no sealed secret.
    #[arg(help_heading = "Requests and responses", long, env = "OPEN_PROXY", value_parser = parse_bool, num_args = 0..=1,
          default_value = "false", default_missing_value = "true")]
    pub open_proxy: bool,
    /// Names/IPs of this tokenizer: enables origin-form (transparent) requests and
    /// refuses requests addressed to these names (loops).
    #[arg(
        help_heading = "Listening",
        long,
        alias = "hostnames",
        env = "TOKENIZER_HOSTNAMES"
    )]
    pub tokenizer_hostnames: Option<String>,
    /// Verify the Fly-Src header fly-proxy adds (for fly_src_auth secrets).
    #[arg(help_heading = "Callers (Fly-Src)", long, env = "USE_FLYSRC", value_parser = parse_bool, num_args = 0..=1,
          default_value = "false", default_missing_value = "true")]
    pub use_flysrc: bool,
    /// Refuse requests without a valid Fly-Src (needs USE_FLYSRC).
    #[arg(help_heading = "Callers (Fly-Src)", long, env = "REQUIRE_FLYSRC", value_parser = parse_bool, num_args = 0..=1,
          default_value = "false", default_missing_value = "true")]
    pub require_flysrc: bool,
    /// The spelling in the Go tool's docs.
    #[arg(help_heading = "Callers (Fly-Src)", long, env = "REQUIRE_FLY_SRC", value_parser = parse_bool, num_args = 0..=1,
          default_value = "false", default_missing_value = "true", hide = true)]
    pub require_fly_src: bool,
    /// Ed25519 public key (64 hex characters) that signs Fly-Src.
    #[arg(
        help_heading = "Callers (Fly-Src)",
        long,
        env = "FLYSRC_PUBLIC_KEY_FILE",
        default_value = "/.fly/fly-src.pub"
    )]
    pub flysrc_public_key_file: PathBuf,
    /// Networks Fly-Src may arrive from (comma list of CIDRs).
    #[arg(
        help_heading = "Callers (Fly-Src)",
        long,
        env = "FLYSRC_PROXY_NETS",
        default_value = "172.16.0.0/16"
    )]
    pub flysrc_proxy_nets: String,
    /// Secret ids or SHA-256 digests of sealed secrets to refuse, one per line; re-read
    /// when it changes.
    #[arg(
        help_heading = "Secrets and limits",
        long,
        env = "REVOKED_SECRETS_FILE"
    )]
    pub revoked_secrets_file: Option<PathBuf>,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    /// Largest body a processor may buffer (HMAC); larger bodies get 413.
    #[arg(help_heading = "Requests and responses", long, env = "MAX_BUFFERED_BODY", value_parser = parse_size, default_value = "10MiB")]
    pub max_buffered_body: usize,
    #[command(flatten)]
    pub admin: super::AdminArgs,
    /// Scan request bodies for PII: off, redact (replace with [REDACTED]) or block (403).
    #[arg(help_heading = "Requests and responses", long, env = "PII_ACTION", value_parser = crate::pii::parse_action, default_value = "off")]
    pub pii_action: crate::pii::PiiAction,
    /// PII kinds to look for: email, credit_card, ssn, phone, api_key (comma list) or all.
    #[arg(help_heading = "Requests and responses", long, env = "PII_KINDS", value_parser = crate::pii::KindSet::parse, default_value = "all")]
    pub pii_kinds: crate::pii::KindSet,
    /// How long a client may take to send request headers (slowloris guard).
    #[arg(help_heading = "Listening", long, env = "CLIENT_HEADER_TIMEOUT", value_parser = config::parse_duration,
          default_value = "30s")]
    pub client_header_timeout: Duration,
    /// At most this many client connections at once; more are closed (0: no limit).
    #[arg(
        help_heading = "Listening",
        long,
        env = "MAX_CONNECTIONS",
        default_value_t = 20_000
    )]
    pub max_connections: usize,
    /// How many opened secrets to keep (by digest of the sealed text); 0 disables.
    #[arg(
        help_heading = "Secrets and limits",
        long,
        env = "UNSEAL_CACHE_SIZE",
        default_value_t = 10_000
    )]
    pub unseal_cache_size: usize,
    /// Bytes the unseal cache may hold (estimated: sealed text, decoded secret, guard).
    #[arg(help_heading = "Secrets and limits", long, env = "UNSEAL_CACHE_BYTES", value_parser = parse_size, default_value = "64MiB")]
    pub unseal_cache_bytes: usize,
    /// Rate-limit counters kept at once (one per rate-limited secret in use); when all
    /// hold a limit that has not refilled, a new rate-limited secret gets 429.
    #[arg(
        help_heading = "Secrets and limits",
        long,
        env = "RATE_LIMIT_KEYS",
        default_value_t = 100_000
    )]
    pub rate_limit_keys: usize,
    /// Bytes all request bodies buffered at once (HMAC, SigV4, PII block) may hold
    /// together; a request that would pass it gets 503.
    #[arg(help_heading = "Requests and responses", long, env = "BUFFERED_BODY_BUDGET", value_parser = parse_size, default_value = "128MiB")]
    pub buffered_body_budget: usize,
    /// A request body that sends nothing for this long is cut (408 while buffering).
    #[arg(help_heading = "Listening", long, env = "CLIENT_BODY_TIMEOUT", value_parser = config::parse_duration,
          default_value = "30s")]
    pub client_body_timeout: Duration,
    /// Mask injected credentials that come back in responses (headers and body).
    #[arg(help_heading = "Requests and responses", long, env = "REFLECTION_GUARD", value_parser = parse_bool, num_args = 0..=1,
          default_value = "true", default_missing_value = "true")]
    pub reflection_guard: bool,
    /// How long to let in-flight requests finish after SIGTERM/SIGINT.
    #[arg(help_heading = "Listening", long, env = "SHUTDOWN_TIMEOUT", value_parser = config::parse_duration, default_value = "30s")]
    pub shutdown_timeout: Duration,
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// How long a max_requests count is kept after a secret's last use (and never past
    /// the secret's expires_at); at most 3650d.
    #[arg(help_heading = "Secrets and limits", long, env = "MAX_REQUESTS_RETENTION", value_parser = config::parse_duration,
          default_value = "90d")]
    pub max_requests_retention: Duration,
}

/// Caller identity outside Fly: OIDC issuers and the mutual-TLS listener.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Identity (OIDC, mTLS)")]
pub struct IdentityArgs {
    /// Issuers whose workload tokens oidc_auth secrets may accept (comma list of https
    /// URLs, exactly as the tokens' `iss`). Only these are ever contacted.
    #[arg(long, env = "OIDC_ISSUERS")]
    pub oidc_issuers: Option<String>,
    /// The least time between two fetches of an issuer's keys for an unknown `kid`.
    #[arg(long, env = "OIDC_REFRESH_INTERVAL", value_parser = config::parse_duration,
          default_value = "30s")]
    pub oidc_refresh_interval: Duration,
    /// Also listen here with TLS (host:port), for callers that prove who they are with a
    /// client certificate (mtls_auth) or want TLS to the proxy.
    #[arg(long, env = "LISTEN_TLS_ADDRESS")]
    pub listen_tls_address: Option<String>,
    /// The TLS listener's certificate chain (PEM).
    #[arg(long, env = "TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// The TLS listener's private key (PEM).
    #[arg(long, env = "TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// CA (PEM) that client certificates must chain to; the TLS listener then asks for
    /// one (optional: callers without one can use the other auth kinds).
    #[arg(long, env = "CLIENT_CA_FILE")]
    pub client_ca_file: Option<PathBuf>,
}

impl IdentityArgs {
    fn issuers(&self) -> Result<Vec<String>, ConfigError> {
        config::comma_list(self.oidc_issuers.as_deref().unwrap_or(""))
            .map(|i| {
                if i.starts_with("https://") && i.parse::<http::Uri>().is_ok() {
                    Ok(i.to_owned())
                } else {
                    Err(ConfigError::Invalid {
                        name: "OIDC_ISSUERS",
                        detail: format!("{i:?} is not an https:// URL"),
                    })
                }
            })
            .collect()
    }

    fn tls_listener(&self) -> Result<Option<TlsListenerConfig>, ConfigError> {
        let missing = |name: &'static str| ConfigError::Invalid {
            name,
            detail: "required with LISTEN_TLS_ADDRESS".to_owned(),
        };
        let Some(address) = &self.listen_tls_address else {
            for (name, set) in [
                ("TLS_CERT_FILE", self.tls_cert_file.is_some()),
                ("TLS_KEY_FILE", self.tls_key_file.is_some()),
                ("CLIENT_CA_FILE", self.client_ca_file.is_some()),
            ] {
                if set {
                    return Err(ConfigError::Invalid {
                        name,
                        detail: "needs LISTEN_TLS_ADDRESS".to_owned(),
                    });
                }
            }
            return Ok(None);
        };
        let addresses = config::listen_addrs(address).map_err(|_| ConfigError::Invalid {
            name: "LISTEN_TLS_ADDRESS",
            detail: format!("{address:?} is not host:port or :port"),
        })?;
        Ok(Some(TlsListenerConfig {
            addresses,
            cert_file: self.tls_cert_file.clone().ok_or(missing("TLS_CERT_FILE"))?,
            key_file: self.tls_key_file.clone().ok_or(missing("TLS_KEY_FILE"))?,
            client_ca: self.client_ca_file.clone(),
        }))
    }
}

/// The fleet's Redis, shared with `tokenizer revoke`.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Fleet (Redis)")]
pub struct FleetArgs {
    #[command(flatten)]
    pub redis: RedisArgs,
    /// While Redis is unreachable: open (count limits per instance, keep the last
    /// revocations seen) or closed (refuse requests that carry a secret with 503).
    #[arg(long, env = "REDIS_FAILURE", value_parser = crate::fleet::FailureMode::parse,
          default_value = "open")]
    pub redis_failure: crate::fleet::FailureMode,
}

/// Where the fleet's Redis is (`serve` and `revoke`).
#[derive(Args, Clone, Debug)]
pub struct RedisArgs {
    /// Redis for fleet-wide limits and revocations: redis://[user:password@]host[:port][/db]
    /// or rediss://… (TLS). Unset: everything stays per instance.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every key and channel the fleet uses in Redis.
    #[arg(long, env = "REDIS_PREFIX", default_value = "tokenizer:")]
    pub redis_prefix: String,
    /// How long one Redis call may take before Redis counts as unreachable.
    #[arg(long, env = "REDIS_TIMEOUT", value_parser = config::parse_duration,
          default_value = "500ms")]
    pub redis_timeout: Duration,
    /// PEM CA a rediss:// server's certificate must chain to (instead of the system's
    /// roots).
    #[arg(long, env = "REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
}

impl FleetArgs {
    /// `None` without `REDIS_URL`.
    pub fn config(&self) -> Result<Option<crate::fleet::FleetConfig>, ConfigError> {
        self.redis.config(self.redis_failure)
    }
}

impl RedisArgs {
    /// `None` without `REDIS_URL`.
    pub fn config(
        &self,
        failure: crate::fleet::FailureMode,
    ) -> Result<Option<crate::fleet::FleetConfig>, ConfigError> {
        let Some(url) = &self.redis_url else {
            return Ok(None);
        };
        let config = crate::fleet::FleetConfig {
            url: tokenizer_core::SecretString::new(url.clone()),
            prefix: self.redis_prefix.clone(),
            failure,
            timeout: self.redis_timeout,
            ca_file: self.redis_ca_file.clone(),
        };
        let invalid = |e: crate::fleet::FleetError| ConfigError::Invalid {
            name: "REDIS_URL",
            detail: e.to_string(),
        };
        let ca = crate::fleet::read_ca(&config).map_err(invalid)?;
        crate::fleet::client(&config.url, ca.as_deref()).map_err(invalid)?;
        Ok(Some(config))
    }
}

/// Upstream settings shared with `sideproxy`.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Upstream")]
pub struct UpstreamArgs {
    /// PEM bundle trusted for upstream TLS in addition to the system roots.
    #[arg(long, env = "UPSTREAM_CA_FILE")]
    pub upstream_ca_file: Option<PathBuf>,
    /// Address pins, `host[:port]=ip[:port]` comma list (like curl --resolve).
    #[arg(long, env = "UPSTREAM_RESOLVE")]
    pub upstream_resolve: Option<String>,
    /// CIDRs exempt from the destination guard's built-in denials.
    #[arg(long, env = "UPSTREAM_ALLOW_CIDRS")]
    pub upstream_allow_cidrs: Option<String>,
    /// CIDRs denied in addition to the built-in list.
    #[arg(long, env = "UPSTREAM_DENY_CIDRS")]
    pub upstream_deny_cidrs: Option<String>,
    /// Upstream TCP connect plus TLS handshake timeout.
    #[arg(long, env = "UPSTREAM_CONNECT_TIMEOUT", value_parser = config::parse_duration,
          default_value = "10s")]
    pub upstream_connect_timeout: Duration,
    /// How long an upstream may take to send response headers (then 504).
    #[arg(long, env = "UPSTREAM_RESPONSE_TIMEOUT", value_parser = config::parse_duration,
          default_value = "300s")]
    pub upstream_response_timeout: Duration,
    /// How long a response body may stall (no bytes) before it is cut off.
    #[arg(long, env = "UPSTREAM_READ_TIMEOUT", value_parser = config::parse_duration,
          default_value = "300s")]
    pub upstream_read_timeout: Duration,
}

impl UpstreamArgs {
    pub fn config(&self) -> Result<crate::upstream::UpstreamConfig, ConfigError> {
        crate::upstream::config(
            self.upstream_ca_file.clone(),
            self.upstream_resolve.as_deref(),
            self.upstream_allow_cidrs.as_deref(),
            self.upstream_deny_cidrs.as_deref(),
            crate::upstream::UpstreamTimeouts {
                connect: self.upstream_connect_timeout,
                response: self.upstream_response_timeout,
                read: self.upstream_read_timeout,
            },
        )
    }
}

impl ServeArgs {
    /// Validate everything into a [`ServeConfig`].
    pub fn into_config(self) -> Result<ServeConfig, ConfigError> {
        let require_flysrc = self.require_flysrc || self.require_fly_src;
        if require_flysrc && !self.use_flysrc {
            return Err(ConfigError::Invalid {
                name: "REQUIRE_FLYSRC",
                detail: "needs USE_FLYSRC".to_owned(),
            });
        }
        let flysrc = if self.use_flysrc {
            let nets = config::cidrs("FLYSRC_PROXY_NETS", &self.flysrc_proxy_nets)?;
            let verifier = FlySrcVerifier::from_key_file(&self.flysrc_public_key_file, nets)
                .map_err(|detail| ConfigError::Invalid {
                    name: "FLYSRC_PUBLIC_KEY_FILE",
                    detail,
                })?;
            Some(verifier)
        } else {
            None
        };
        // Counters live at most this long, in this process and in Redis (`PX`).
        const MAX_RETENTION: Duration = Duration::from_secs(10 * 365 * 86_400);
        if self.max_requests_retention.is_zero() || self.max_requests_retention > MAX_RETENTION {
            return Err(ConfigError::Invalid {
                name: "MAX_REQUESTS_RETENTION",
                detail: "want a duration from 1s to 3650d".to_owned(),
            });
        }
        Ok(ServeConfig {
            flysrc,
            require_flysrc,
            revoked_secrets_file: self.revoked_secrets_file,
            audit_ring_size: self.admin.audit_ring_size,
            admin_address: self.admin.admin_address,
            admin_token: config::admin_token(self.admin.admin_token)?,
            unseal_cache_bytes: self.unseal_cache_bytes,
            rate_limit_keys: self.rate_limit_keys,
            buffered_body_budget: self.buffered_body_budget,
            client_body_timeout: self.client_body_timeout,
            reflection_guard: self.reflection_guard,
            unseal_cache_size: self.unseal_cache_size,
            client_header_timeout: self.client_header_timeout,
            max_connections: self.max_connections,
            pii: crate::pii::PiiPolicy {
                action: self.pii_action,
                kinds: self.pii_kinds,
            },
            keys: self.keys.open_keys()?,
            listen: config::listen_addrs(&self.listen_address)?,
            filtered_headers: {
                let mut names = config::header_names(
                    "DEFAULT_FILTERED_HEADERS",
                    self.default_filtered_headers.as_deref().unwrap_or(""),
                )?;
                names.extend(config::header_names(
                    "FILTERED_HEADERS",
                    self.filtered_headers.as_deref().unwrap_or(""),
                )?);
                names
            },
            open_proxy: self.open_proxy,
            hostnames: config::comma_list(self.tokenizer_hostnames.as_deref().unwrap_or(""))
                .map(str::to_owned)
                .collect(),
            upstream: self.upstream.config()?,
            max_buffered_body: self.max_buffered_body,
            drain_timeout: self.shutdown_timeout,
            fleet: self.fleet.config()?,
            max_requests_retention: self.max_requests_retention,
            oidc_issuers: self.identity.issuers()?,
            oidc_refresh: self.identity.oidc_refresh_interval,
            tls_listener: self.identity.tls_listener()?,
        })
    }
}

pub fn run(args: ServeArgs) -> Result<(), Failure> {
    let log_format = args.admin.log_format;
    let debug = args.debug.as_deref().is_some_and(config::go_bool);
    let debug_tcp = args.debug_tcp.as_deref().is_some_and(config::go_bool);
    let config = args.into_config()?;
    let _log = crate::logging::init(log_format, debug);
    if debug_tcp {
        tracing::warn!("DEBUG_TCP is not supported: a byte dump would hold credentials");
    }
    let runtime = super::runtime::build()?;
    runtime.block_on(serve(config))
}

async fn serve(config: ServeConfig) -> Result<(), Failure> {
    let listener = bind(&config.listen).await?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    let admin = match config.admin_address {
        Some(addr) => Some(bind(&[addr]).await?),
        None => None,
    };
    let admin_local = admin.as_ref().and_then(|l| l.local_addr().ok());
    let tls = match &config.tls_listener {
        Some(tls) => {
            let acceptor =
                proxy::tls_listener::acceptor(tls).map_err(|e| Failure::Input(e.to_string()))?;
            Some((bind(&tls.addresses).await?, acceptor))
        }
        None => None,
    };
    let tls_local = tls.as_ref().and_then(|(l, _)| l.local_addr().ok());
    let seal_key = config.keys.current().seal_key();
    let admin_token = config.admin_token.clone();
    let drain = config.drain_timeout;
    let own: Vec<SocketAddr> = std::iter::once(local)
        .chain(admin_local)
        .chain(tls_local)
        .collect();
    let proxy = Proxy::new(config, &own).map_err(|e| Failure::Input(e.to_string()))?;
    if let Some(fleet) = proxy.fleet()
        && !fleet.ready(Duration::from_secs(2)).await
    {
        tracing::warn!(
            failure = %fleet.failure(),
            "starting without the fleet view: Redis does not answer yet (REDIS_FAILURE applies)"
        );
    }
    let signal = shutdown_signal();
    tracing::info!(
        address = %local,
        admin = %crate::logging::listed(admin_local),
        tls_address = %crate::logging::listed(tls_local),
        seal_key = %seal_key.to_hex(),
        "listening"
    );

    crate::memory::spawn_trimmer();
    let stopping = CancellationToken::new();
    let done = CancellationToken::new();
    if let Some(listener) = admin {
        let state = AdminState {
            role: "serve",
            telemetry: proxy.telemetry().clone(),
            seal_key: Some(seal_key),
            admin_token: admin_token.map(Arc::new),
            stopping: stopping.clone(),
            fleet: proxy.fleet().cloned(),
        };
        let done = done.clone();
        tokio::spawn(admin::serve(listener, state, async move {
            done.cancelled().await;
        }));
    }
    let signal = async move {
        signal.await;
        stopping.cancel();
    };
    proxy::serve_with_tls(listener, tls, proxy, signal, drain).await;
    done.cancel();
    tracing::info!("stopped");
    Ok(())
}

/// Bind the first address that works (`:port` tries IPv6-any, then IPv4-any).
async fn bind(addrs: &[SocketAddr]) -> Result<TcpListener, Failure> {
    let mut last = None;
    for addr in addrs {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(format!("cannot listen on {addr}: {e}")),
        }
    }
    Err(Failure::Runtime(
        last.unwrap_or_else(|| "no listen address".to_owned()),
    ))
}

/// SIGINT or SIGTERM. The handlers are installed when this is called (not when the
/// future is first polled), so a signal sent right after start-up is not lost.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = term => {}
                () = int => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}
