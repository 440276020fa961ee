//! `github_app_processor`: GitHub App installation-token exchange.
//!
//! The wire shape parses and round-trips; the exchange is not implemented yet, so a
//! request using it is refused with a clear 400.

use serde::{Deserialize, Serialize};

use super::{ProcessorError, Step};
use crate::secret::{Params, SecretBytes};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitHubAppConfig {
    /// PEM text (RSA only), base64-encoded on the wire.
    #[serde(default)]
    pub private_key: SecretBytes,
    #[serde(default)]
    pub app_id: String,
    #[serde(default)]
    pub installation_id: String,
    #[serde(default)]
    pub token_url: String,
}

impl GitHubAppConfig {
    pub fn build(&self, _params: &Params, _out: &mut Vec<Step>) -> Result<(), ProcessorError> {
        Err(ProcessorError::Unsupported("github_app_processor"))
    }

    pub fn stripped(&self) -> Self {
        Self {
            private_key: SecretBytes::redacted(),
            ..self.clone()
        }
    }
}
