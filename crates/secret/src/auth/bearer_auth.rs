//! `bearer_auth`: some candidate's SHA-256 equals the sealed digest (constant time).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthError, Candidates};
use tokenizer_core::SecretBytes;

/// `bearer_auth` (Go's `BearerAuthConfig`): the caller must present a token whose
/// SHA-256 is the sealed digest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BearerAuth {
    /// `base64(sha256(token))`.
    #[serde(default)]
    pub digest: SecretBytes,
}

impl BearerAuth {
    /// The config that accepts `token`.
    pub fn for_token(token: &str) -> Self {
        Self {
            digest: SecretBytes::new(Sha256::digest(token.as_bytes()).to_vec()),
        }
    }

    /// Does some candidate hash to the digest? Every candidate is compared in constant
    /// time; a miss is [`AuthError::BadProxyAuth`].
    pub fn authorize(&self, candidates: &Candidates) -> Result<(), AuthError> {
        let want = self.digest.expose();
        // Every candidate is compared so timing does not reveal which one matched.
        let matched = candidates
            .digests()
            .fold(subtle::Choice::from(0), |acc, got| {
                acc | got[..].ct_eq(want)
            });
        if bool::from(matched) {
            Ok(())
        } else {
            Err(AuthError::BadProxyAuth)
        }
    }

    /// A copy with the digest replaced by `REDACTED`, for logs.
    pub fn stripped(&self) -> Self {
        Self {
            digest: SecretBytes::redacted(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizer_core::b64;

    #[test]
    fn digest_matches_the_go_vectors() {
        assert_eq!(
            b64::encode(BearerAuth::for_token("secret").digest.expose()),
            "K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols="
        );
        assert_eq!(
            b64::encode(BearerAuth::for_token("trustno1").digest.expose()),
            "IDtwta6IOTIWG70L3tk1fnY+Y6/OmLFiML4z8LlMLMU="
        );
    }
}
