//! Where the fleet's Redis is and what happens while it is unreachable (`serve`,
//! `revoke`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use tokenizer_core::settings::{self as config, ConfigError};

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
