//! `client_credentials_processor`: OAuth 2 client-credentials grant (RFC 6749 §4.4).
//!
//! The wire shape parses and round-trips; the exchange is not implemented yet, so a
//! request using it is refused with a clear 400.

use serde::{Deserialize, Serialize};

use super::{ProcessorError, Step};
use crate::secret::{Params, SecretString};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCredentialsConfig {
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: SecretString,
    #[serde(default)]
    pub token_url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scopes: String,
}

impl ClientCredentialsConfig {
    pub fn build(&self, _params: &Params, _out: &mut Vec<Step>) -> Result<(), ProcessorError> {
        Err(ProcessorError::Unsupported("client_credentials_processor"))
    }

    pub fn stripped(&self) -> Self {
        Self {
            client_secret: SecretString::redacted(),
            ..self.clone()
        }
    }
}
