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
    pub keys: OpenKeys,
    pub listen: Vec<SocketAddr>,
    pub filtered_headers: Vec<HeaderName>,
    pub open_proxy: bool,
    pub hostnames: Vec<String>,
    pub upstream: UpstreamConfig,
    pub max_buffered_body: usize,
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
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca: Option<PathBuf>,
}
