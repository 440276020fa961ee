//! `OPEN_KEY` / `OPEN_KEY_FILE` / `PREVIOUS_OPEN_KEYS`, shared by the subcommands that
//! open secrets.

use std::path::PathBuf;

use clap::Args;

use crate::config::{self, ConfigError};
use crate::secret::OpenKeys;

#[derive(Args, Clone, Debug, Default)]
pub struct KeyArgs {
    /// Hex X25519 private key (64 hex characters).
    #[arg(long, env = "OPEN_KEY", hide_env_values = true)]
    pub open_key: Option<String>,
    /// File holding OPEN_KEY (instead of the variable).
    #[arg(long, env = "OPEN_KEY_FILE")]
    pub open_key_file: Option<PathBuf>,
    /// Comma list of retired open keys still accepted (rotation).
    #[arg(long, env = "PREVIOUS_OPEN_KEYS", hide_env_values = true)]
    pub previous_open_keys: Option<String>,
}

impl KeyArgs {
    pub fn open_keys(&self) -> Result<OpenKeys, ConfigError> {
        config::open_keys(
            self.open_key.as_deref(),
            self.open_key_file.as_deref(),
            self.previous_open_keys.as_deref(),
        )
    }
}
