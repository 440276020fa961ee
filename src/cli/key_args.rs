//! `OPEN_KEY` / `OPEN_KEY_FILE` / `PREVIOUS_OPEN_KEYS`, shared by the subcommands that
//! open secrets (and the open key alone, for those that only seal).

use std::path::PathBuf;

use clap::Args;

use tokenizer_core::OpenKeys;
use tokenizer_core::settings::{self as config, ConfigError};

/// The open key and the retired ones (`serve`, `unseal`: they open secrets).
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Keys")]
pub struct KeyArgs {
    #[command(flatten)]
    pub open: OpenKeyArgs,
    /// Comma list of retired open keys still accepted (rotation).
    #[arg(long, env = "PREVIOUS_OPEN_KEYS", hide_env_values = true)]
    pub previous_open_keys: Option<String>,
}

/// The open key alone (`seal`, `sealkey`: they need only its seal key).
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Keys")]
pub struct OpenKeyArgs {
    /// Hex X25519 private key (64 hex characters).
    #[arg(long, env = "OPEN_KEY", hide_env_values = true)]
    pub open_key: Option<String>,
    /// File holding OPEN_KEY (instead of the variable).
    #[arg(long, env = "OPEN_KEY_FILE")]
    pub open_key_file: Option<PathBuf>,
}

impl KeyArgs {
    pub fn open_keys(&self) -> Result<OpenKeys, ConfigError> {
        config::open_keys(
            self.open.open_key.as_deref(),
            self.open.open_key_file.as_deref(),
            self.previous_open_keys.as_deref(),
        )
    }
}

impl OpenKeyArgs {
    pub fn open_keys(&self) -> Result<OpenKeys, ConfigError> {
        config::open_keys(
            self.open_key.as_deref(),
            self.open_key_file.as_deref(),
            None,
        )
    }
}
