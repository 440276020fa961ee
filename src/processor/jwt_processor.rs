//! `jwt_processor`: RFC 7523 JWT-bearer token exchange (Google service accounts).
//!
//! The wire shape parses and round-trips; the exchange is not implemented yet, so a
//! request using it is refused with a clear 400.

use serde::{Deserialize, Serialize};

use super::{ProcessorError, Step};
use crate::secret::{Params, SecretBytes};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtConfig {
    /// PEM text, base64-encoded on the wire (a Go `[]byte`).
    #[serde(default)]
    pub private_key: SecretBytes,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub scopes: String,
    #[serde(default)]
    pub token_url: String,
}

impl JwtConfig {
    pub fn build(&self, _params: &Params, _out: &mut Vec<Step>) -> Result<(), ProcessorError> {
        Err(ProcessorError::Unsupported("jwt_processor"))
    }

    pub fn stripped(&self) -> Self {
        Self {
            private_key: SecretBytes::redacted(),
            ..self.clone()
        }
    }
}
