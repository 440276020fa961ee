//! `sigv4_processor`: re-sign an AWS SigV4 request with the sealed keys.
//!
//! The client signs with dummy credentials; the date, region and service come from its
//! `Authorization` header (and `X-Amz-Date`). Signing runs last (see
//! [`super::step::finish`]) so the signature covers the request exactly as sent.

use http::request::Parts;
use serde::{Deserialize, Serialize};

use super::{ProcessorError, Step};
use crate::body::Body;
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

/// A built SigV4 signer for one request.
#[derive(Debug)]
pub struct SigV4Step {
    access_key: SecretString,
    secret_key: SecretString,
    no_swap: bool,
}

impl SigV4Config {
    pub fn build(&self, _params: &Params, out: &mut Vec<Step>) -> Result<(), ProcessorError> {
        if self.access_key.is_empty() || self.secret_key.is_empty() {
            return Err(ProcessorError::MissingToken);
        }
        out.push(Step::SigV4(Box::new(SigV4Step {
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
            no_swap: self.no_swap,
        })));
        Ok(())
    }

    pub fn stripped(&self) -> Self {
        Self {
            access_key: SecretString::redacted(),
            secret_key: SecretString::redacted(),
            no_swap: self.no_swap,
        }
    }
}

impl SigV4Step {
    /// Sign `parts` (final absolute `https://` URI, Host set, hygiene done) and return
    /// the body to send.
    pub async fn sign(
        &self,
        _parts: &mut Parts,
        _body: Body,
        _max_buffered_body: usize,
    ) -> Result<Body, ProcessorError> {
        let _ = (&self.access_key, &self.secret_key, self.no_swap);
        Err(ProcessorError::Unsupported("sigv4_processor"))
    }
}
