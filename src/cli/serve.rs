//! `tokenizer serve`'s flags and their validation into a [`ServeConfig`] (running it:
//! `serve_run`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::KeyArgs;
use super::fleet_args::FleetArgs;
use super::identity_args::IdentityArgs;
use super::upstream_args::UpstreamArgs;
use crate::auth::FlySrcVerifier;
use crate::proxy::config::ServeConfig;
use tokenizer_core::settings::{self as config, ConfigError, parse_bool, parse_size};

// `[REDACTED]` in the help text is literal, not a link.
#[allow(rustdoc::broken_intra_doc_links)]
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
