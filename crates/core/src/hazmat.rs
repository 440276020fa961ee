//! Containers for credential material: zeroized on drop, never shown by `Debug`.
//!
//! Every field of a sealed secret that the Go tool redacts ("hazmat") is held in one of
//! these types, so a stray `{:?}` or a panic message cannot print it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::b64;

/// The text the Go tool writes in place of redacted fields.
pub const REDACTED: &str = "REDACTED";

/// A secret string (a token, a client secret).
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

/// Secret bytes (an HMAC key, a digest, a PEM private key), base64 on the wire.
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

// === impl SecretString ===

impl SecretString {
    /// Hold `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value written in place of this one in logs.
    pub fn redacted() -> Self {
        Self(REDACTED.to_owned())
    }

    /// The plaintext; callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

// === impl SecretBytes ===

impl SecretBytes {
    /// Hold `value`.
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Self(value.into())
    }

    /// Go writes `base64-decode("REDACTED")` into redacted byte fields, which re-encodes
    /// as `"REDACTED"`.
    pub fn redacted() -> Self {
        Self(b64::decode(REDACTED).unwrap_or_default())
    }

    /// The plaintext bytes; callers must not log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&b64::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = zeroize::Zeroizing::new(String::deserialize(d)?);
        b64::decode_go_bytes(&text)
            .map(Self)
            .map_err(|_| serde::de::Error::custom("illegal base64 data in byte field"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        assert_eq!(format!("{:?}", SecretString::new("hunter2")), "REDACTED");
        assert_eq!(
            format!("{:?}", SecretBytes::new(b"hunter2".to_vec())),
            "REDACTED"
        );
    }

    #[test]
    fn redacted_bytes_reencode_as_redacted() {
        let v = serde_json::to_string(&SecretBytes::redacted()).unwrap();
        assert_eq!(v, "\"REDACTED\"");
        assert_eq!(
            hex::encode(SecretBytes::redacted().expose()),
            "4440c0093103"
        );
    }

    #[test]
    fn byte_fields_ignore_line_breaks_and_need_padding() {
        let ok: SecretBytes = serde_json::from_str("\"dHJ1\\r\\nc3Rubzk=\"").unwrap();
        assert_eq!(ok.expose(), b"trustno9");
        assert!(serde_json::from_str::<SecretBytes>("\"dHJ1c3Rubzk\"").is_err());
        assert!(serde_json::from_str::<SecretBytes>("\"dHJ1c3Rub-k=\"").is_err());
    }
}
