//! Sealed secrets: the wire JSON, keys, sealing and opening, hazmat stripping and the
//! `Proxy-Tokenizer` header.

mod cache;
mod header;
mod json;
mod lint;
mod schema;
pub mod validate;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use cache::{CacheLimits, Opened, SealedDigest, SecretCache, Unsealed};
pub use header::{PROXY_TOKENIZER, TokenizerHeader};
// The primitives, where this crate's users have always found them.
pub use lint::lint;
pub use tokenizer_core::{
    KeyError, OpenError, OpenKey, OpenKeys, Params, REDACTED, SEAL_OVERHEAD, SealKey, SecretBytes,
    SecretString, b64, mac,
};
pub use validate::{Checked, Problem};

use crate::auth::{AuthConfig, WireAuth};
use crate::policy::{HostRules, PolicyRules};
use tokenizer_processor::processor::{ProcessorConfig, WireProcessor};

/// Why a `Proxy-Tokenizer` value could not be turned into a secret. All are 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// Empty secret part or a value that is not text.
    #[error("bad tokenizer header")]
    BadHeader,
    /// The `; {…}` part is not a JSON object of strings.
    #[error("bad tokenizer header params: want a JSON object of strings")]
    BadParams,
    /// Not standard padded base64.
    #[error("bad Proxy-Tokenizer encoding")]
    Encoding,
    /// No key opens it, or it was tampered with.
    #[error("failed Proxy-Tokenizer decryption")]
    Decryption,
    /// The plaintext is not a valid secret. The text never quotes field values.
    #[error("bad secret json: {0}")]
    Json(String),
}

/// A decoded secret: one processor, one auth config, and its validators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Secret {
    /// What the secret does to a request: its one `*_processor` key.
    #[serde(flatten)]
    pub processor: ProcessorConfig,
    /// Who may use it: its one `*_auth` key, or `no_auth`.
    #[serde(flatten)]
    pub auth: AuthConfig,
    /// Where it may be sent: `allowed_hosts` and `allowed_host_pattern`.
    #[serde(flatten)]
    pub hosts: HostRules,
    /// Our extensions (methods, paths, validity, id, rate limit); ignored by Go.
    #[serde(flatten)]
    pub policy: PolicyRules,
}

/// Every key a secret may hold, each optional, so serde can count them.
#[derive(Deserialize)]
struct WireSecret {
    #[serde(flatten)]
    processor: WireProcessor,
    #[serde(flatten)]
    auth: WireAuth,
    #[serde(flatten)]
    hosts: HostRules,
    #[serde(flatten)]
    policy: PolicyRules,
}

// === impl Secret ===

impl Secret {
    /// Decode with Go's rules: exactly one processor and one auth key, keys matched
    /// case-insensitively, nulls as absent, unknown keys ignored.
    pub fn from_json(bytes: &[u8]) -> Result<Self, SecretError> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| SecretError::Json(json::describe_error(&e)))?;
        if !value.is_object() {
            return Err(SecretError::Json("want a JSON object".to_owned()));
        }
        let wire: WireSecret = serde_json::from_value(json::normalize(value))
            .map_err(|e| SecretError::Json(json::describe_error(&e)))?;
        let processor = ProcessorConfig::try_from(wire.processor)
            .map_err(|e| SecretError::Json(e.to_owned()))?;
        let auth = AuthConfig::try_from(wire.auth).map_err(|e| SecretError::Json(e.to_owned()))?;
        Ok(Self {
            processor,
            auth,
            hosts: wire.hosts,
            policy: wire.policy,
        })
    }

    /// Top-level keys of `bytes` that decoding would ignore (typos, keys meant for
    /// another tool). Empty when `bytes` is not a JSON object.
    pub fn unknown_keys(bytes: &[u8]) -> Vec<String> {
        serde_json::from_slice(bytes)
            .map(|v| json::unknown_top_level_keys(&json::normalize(v)))
            .unwrap_or_default()
    }

    /// The wire JSON, credentials included.
    #[allow(clippy::expect_used)] // cannot fail: see the comment at the call
    pub fn to_json(&self) -> Zeroizing<String> {
        // Serializing plain structs and strings to a String cannot fail.
        Zeroizing::new(serde_json::to_string(self).expect("secret serializes"))
    }

    /// The wire JSON with every credential replaced by `REDACTED`: safe to log.
    #[allow(clippy::expect_used)] // cannot fail: see the comment at the call
    pub fn stripped_json(&self) -> String {
        let stripped = Self {
            processor: self.processor.stripped(),
            auth: self.auth.stripped(),
            hosts: self.hosts.clone(),
            policy: self.policy.stripped(),
        };
        serde_json::to_string(&stripped).expect("secret serializes")
    }

    /// Seal to `key`; the result is what goes in `Proxy-Tokenizer`.
    pub fn seal(&self, key: &SealKey) -> String {
        key.seal_base64(self.to_json().as_bytes())
    }

    /// Decode base64, open with any of `keys`, and parse.
    pub fn open(keys: &OpenKeys, sealed_b64: &str) -> Result<Self, SecretError> {
        let sealed = b64::decode_token(sealed_b64).map_err(|_| SecretError::Encoding)?;
        let plain = keys.open(&sealed).map_err(|_| SecretError::Decryption)?;
        Self::from_json(&plain)
    }
}

/// Lowercase hex SHA-256 of a sealed secret as sent (base64, trimmed): how a secret
/// without an `id` is named in revocation lists, rate limits and audit logs.
pub fn sealed_digest(sealed_b64: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(sealed_b64.trim().as_bytes()))
}

#[cfg(test)]
mod tests;
