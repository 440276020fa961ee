//! The flags `serve` and `sideproxy` share: the log format, the audit ring and the admin
//! listener.

use std::net::SocketAddr;

use clap::Args;

use crate::logging::LogFormat;

#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Admin and logs")]
pub struct AdminArgs {
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// How many recent audit entries to keep in memory for /v1/audit.
    #[arg(long, env = "AUDIT_RING_SIZE", default_value_t = 1000)]
    pub audit_ring_size: usize,
    /// Listen here for /healthz, /readyz, /metrics, /v1/sealkey, /v1/seal, /v1/audit and
    /// the dashboard.
    #[arg(long, env = "ADMIN_ADDRESS")]
    pub admin_address: Option<SocketAddr>,
    /// Bearer token required by /v1/seal, /v1/audit and /v1/stats.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}
