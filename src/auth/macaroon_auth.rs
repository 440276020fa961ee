//! `macaroon_auth`: a superfly/macaroon token verified with the sealed root key.
//!
//! Macaroon verification is not implemented in this build, so the check fails closed
//! with 407.

use serde::{Deserialize, Serialize};

use super::AuthError;
use crate::secret::SecretBytes;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacaroonAuth {
    #[serde(default)]
    pub key: SecretBytes,
}

impl MacaroonAuth {
    pub fn authorize(&self) -> Result<(), AuthError> {
        Err(AuthError::Unsupported("macaroon_auth"))
    }

    pub fn stripped(&self) -> Self {
        Self {
            key: SecretBytes::redacted(),
        }
    }
}
