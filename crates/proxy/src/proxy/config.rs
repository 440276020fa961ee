//! What `tokenizer serve` runs with: every setting, typed and validated (the CLI builds
//! it from flags and variables).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use tokenizer_core::OpenKeys;

use tokenizer_net::upstream::UpstreamConfig;

/// Everything `tokenizer serve` needs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The open key and retired ones still accepted, which open sealed secrets
    /// (`OPEN_KEY` or `OPEN_KEY_FILE`, `PREVIOUS_OPEN_KEYS`).
    pub keys: OpenKeys,
    /// The proxy listener's addresses, tried in order until one binds (`LISTEN_ADDRESS`;
    /// `:8080` is IPv6-any, then IPv4-any).
    pub listen: Vec<SocketAddr>,
    /// Request headers stripped before forwarding (`DEFAULT_FILTERED_HEADERS` plus
    /// `FILTERED_HEADERS`).
    pub filtered_headers: Vec<HeaderName>,
    /// Forward requests that carry no sealed secret (`OPEN_PROXY`).
    pub open_proxy: bool,
    /// This tokenizer's own names/IPs (`TOKENIZER_HOSTNAMES`): when set, origin-form
    /// requests are forwarded to their `Host`, refused when it is one of these (a loop);
    /// when empty, origin-form requests are refused.
    pub hostnames: Vec<String>,
    /// How upstream connections are made (`UPSTREAM_*`).
    pub upstream: UpstreamConfig,
    /// The largest body, in bytes, one processor may buffer (HMAC); larger gets 413
    /// (`MAX_BUFFERED_BODY`).
    pub max_buffered_body: usize,
    /// How long open connections may finish their requests after SIGTERM/SIGINT
    /// (`SHUTDOWN_TIMEOUT`).
    pub drain_timeout: Duration,
    /// Fly-Src verification (`USE_FLYSRC`); `None` when off.
    pub flysrc: Option<tokenizer_secret::auth::FlySrcVerifier>,
    /// Refuse requests without a valid Fly-Src (`REQUIRE_FLYSRC`).
    pub require_flysrc: bool,
    /// `REVOKED_SECRETS_FILE`.
    pub revoked_secrets_file: Option<PathBuf>,
    /// How many audit entries `/v1/audit` keeps (`AUDIT_RING_SIZE`).
    pub audit_ring_size: usize,
    /// The admin listener (`ADMIN_ADDRESS`).
    pub admin_address: Option<SocketAddr>,
    /// `ADMIN_TOKEN`.
    pub admin_token: Option<tokenizer_core::SecretString>,
    /// Mask injected credentials echoed back in responses (`REFLECTION_GUARD`).
    pub reflection_guard: bool,
    /// PII scanning of request bodies (`PII_ACTION`, `PII_KINDS`); secrets may override.
    pub pii: tokenizer_processor::pii::PiiPolicy,
    /// Decoded secrets kept by sealed digest (`UNSEAL_CACHE_SIZE`; 0 disables).
    pub unseal_cache_size: usize,
    /// How long a client may take to send request headers (`CLIENT_HEADER_TIMEOUT`).
    pub client_header_timeout: Duration,
    /// Client connections at once (`MAX_CONNECTIONS`; 0 = no limit).
    pub max_connections: usize,
    /// Bytes the unseal cache may hold, estimated (`UNSEAL_CACHE_BYTES`).
    pub unseal_cache_bytes: usize,
    /// Rate-limit counters kept at once (`RATE_LIMIT_KEYS`).
    pub rate_limit_keys: usize,
    /// Bytes all buffered request bodies may hold together (`BUFFERED_BODY_BUDGET`).
    pub buffered_body_budget: usize,
    /// How long a request body may send nothing before it is cut (`CLIENT_BODY_TIMEOUT`).
    pub client_body_timeout: Duration,
    /// The fleet's Redis (`REDIS_URL`, …); `None`: limits and revocations per instance.
    pub fleet: Option<tokenizer_fleet::fleet::FleetConfig>,
    /// How long a `max_requests` count is kept after a secret's last use, and never past
    /// its `expires_at` (`MAX_REQUESTS_RETENTION`).
    pub max_requests_retention: Duration,
    /// OIDC issuers whose workload tokens may be verified (`OIDC_ISSUERS`): exact `iss`.
    pub oidc_issuers: Vec<String>,
    /// The least time between two key fetches of an issuer for an unknown `kid`
    /// (`OIDC_REFRESH_INTERVAL`).
    pub oidc_refresh: Duration,
    /// The TLS listener (`LISTEN_TLS_ADDRESS`, `TLS_CERT_FILE`, `TLS_KEY_FILE`,
    /// `CLIENT_CA_FILE`).
    pub tls_listener: Option<TlsListenerConfig>,
}

/// A TLS listener for callers, verifying client certificates when `client_ca` is set.
#[derive(Clone, Debug)]
pub struct TlsListenerConfig {
    /// Tried in order (`:8443` is IPv6-any, then IPv4-any).
    pub addresses: Vec<SocketAddr>,
    /// The listener's certificate chain, PEM (`TLS_CERT_FILE`).
    pub cert_file: PathBuf,
    /// The listener's private key, PEM (`TLS_KEY_FILE`).
    pub key_file: PathBuf,
    /// The CA, PEM, that client certificates must chain to (`CLIENT_CA_FILE`); when set,
    /// the handshake asks for a certificate, which callers may still omit.
    pub client_ca: Option<PathBuf>,
}
