//! Upstream TLS roots, address pins, the destination guard's CIDRs and timeouts
//! (`serve`, `sideproxy`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use tokenizer_core::settings::{self as config, ConfigError};

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
