//! `sigv4_processor`: re-sign an AWS SigV4 request with the sealed keys.
//!
//! The wire shape parses and round-trips; signing itself is not implemented yet, so a
//! request using it is refused with a clear 400 rather than forwarded unsigned.

use serde::{Deserialize, Serialize};

use super::{ProcessorError, Step};
use crate::secret::{Params, SecretString};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigV4Config {
    #[serde(default)]
    pub access_key: SecretString,
    #[serde(default)]
    pub secret_key: SecretString,
    /// Go's bug-compatible default (`false`) swaps region and service.
    #[serde(default)]
    pub no_swap: bool,
}

impl SigV4Config {
    pub fn build(&self, _params: &Params, _out: &mut Vec<Step>) -> Result<(), ProcessorError> {
        if self.access_key.is_empty() || self.secret_key.is_empty() {
            return Err(ProcessorError::MissingToken);
        }
        Err(ProcessorError::Unsupported("sigv4_processor"))
    }

    pub fn stripped(&self) -> Self {
        Self {
            access_key: SecretString::redacted(),
            secret_key: SecretString::redacted(),
            no_swap: self.no_swap,
        }
    }
}
