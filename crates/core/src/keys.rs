//! The tokenizer's X25519 keys and libsodium-compatible sealed boxes.
//!
//! `OPEN_KEY` is a raw 32-byte X25519 scalar in hex; the seal key is its public point.
//! A sealed secret is `crypto_box_seal(json, seal_key)`, i.e. Go's `box.SealAnonymous`.

use std::fmt;

use crypto_box::aead::OsRng;
use crypto_box::{PublicKey, SecretKey};
use zeroize::Zeroizing;

/// Bytes of overhead a sealed box adds: ephemeral public key plus Poly1305 tag.
pub const SEAL_OVERHEAD: usize = 48;

/// Why a key could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The hex did not decode.
    #[error("bad {0} key: not hex")]
    NotHex(&'static str),
    /// The key decoded to the wrong number of bytes.
    #[error("bad {0} key size: {1} bytes, want 32")]
    Size(&'static str, usize),
}

/// Opening a sealed box failed: wrong key, or tampered or truncated ciphertext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("failed Proxy-Tokenizer decryption")]
pub struct OpenError;

/// The private key that opens sealed secrets. Zeroized on drop; `Debug` shows only the
/// public half.
#[derive(Clone)]
pub struct OpenKey(SecretKey);

/// The public key anyone may seal to.
#[derive(Clone, PartialEq, Eq)]
pub struct SealKey(PublicKey);

/// The current open key plus retired keys still accepted for opening (rotation).
#[derive(Clone, Debug)]
pub struct OpenKeys {
    current: OpenKey,
    previous: Vec<OpenKey>,
}

// === impl OpenKey ===

impl OpenKey {
    /// Parse 64 hex characters (surrounding whitespace ignored, so a key file may end in
    /// a newline).
    /// Parse 64 hex characters.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = decode_key_hex(text, "private")?;
        Ok(Self(SecretKey::from_bytes(*bytes)))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        Self(SecretKey::generate(&mut OsRng))
    }

    /// The public key secrets are sealed to.
    pub fn seal_key(&self) -> SealKey {
        SealKey(self.0.public_key())
    }

    /// A key for `purpose`, derived from this one: the same on every instance that
    /// shares the open key, and telling nothing about it.
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let secret = Zeroizing::new(self.0.to_bytes());
        super::mac::hmac_sha256(&secret[..], &[b"tokenizer derive v1\0", purpose.as_bytes()])
    }

    /// The hex form, for `tokenizer genkey` only.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.to_bytes()))
    }

    /// Open a sealed box (raw bytes).
    pub fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        self.0
            .unseal(sealed)
            .map(Zeroizing::new)
            .map_err(|_| OpenError)
    }
}

impl fmt::Debug for OpenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenKey")
            .field("seal_key", &self.seal_key().to_hex())
            .finish_non_exhaustive()
    }
}

// === impl SealKey ===

impl SealKey {
    /// Parse 64 hex characters.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = decode_key_hex(text, "public")?;
        Ok(Self(PublicKey::from_bytes(*bytes)))
    }

    /// Lowercase hex, as Go prints it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// `crypto_box_seal`: ephemeral key, nonce = BLAKE2b-192(epk ‖ pk).
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        // Sealing to a valid point with the OS RNG cannot fail; crypto_box only returns an
        // error type because the AEAD trait demands one.
        // Sealing to a valid public key cannot fail (a parsed SealKey is one).
        #[allow(clippy::expect_used)]
        self.0
            .seal(&mut OsRng, plaintext)
            .expect("crypto_box seal is infallible for a valid public key")
    }

    /// Seal and encode as standard padded base64, the `Proxy-Tokenizer` form.
    pub fn seal_base64(&self, plaintext: &[u8]) -> String {
        super::b64::encode(&self.seal(plaintext))
    }
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealKey({})", self.to_hex())
    }
}

// === impl OpenKeys ===

impl OpenKeys {
    /// The current key and retired ones still accepted.
    pub fn new(current: OpenKey, previous: Vec<OpenKey>) -> Self {
        Self { current, previous }
    }

    /// The key new secrets are sealed to.
    pub fn current(&self) -> &OpenKey {
        &self.current
    }

    /// Open with the current key, then each retired key in order.
    /// Open a sealed box (raw bytes).
    pub fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(OpenError);
        }
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find_map(|key| key.open(sealed).ok())
            .ok_or(OpenError)
    }
}

fn decode_key_hex(text: &str, kind: &'static str) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| KeyError::NotHex(kind))?);
    let array: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::Size(kind, bytes.len()))?;
    Ok(Zeroizing::new(array))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: &str = "0d88a36d5c41d5c3d97b929fdebf0bea57e5fb4616da88121ba972431a161cab";
    const SEAL: &str = "a29dcbaa824af8f0a8d435df6ca1f27cfbf1d5aaa03f3f87fa0a58f8a34d8f67";

    #[test]
    fn seal_key_matches_the_go_vector() {
        assert_eq!(OpenKey::from_hex(OPEN).unwrap().seal_key().to_hex(), SEAL);
    }

    #[test]
    fn opens_the_go_sealed_box_vector() {
        let sealed = crate::b64::decode(
            "uIxOrDkrrg07/ZB+5zMUgDprNBoaWtGGWgbtiTMAWRnjrb+wT+nDSyowpMdxxd7ws9iLbvzPwxWWAXQJiEP9TmWqXKk5v90b1DYQMB6aDdPCcjUZbkjkRGY8OOSn2fTZc/G24lEnX2F8wYhWrUc4CvNxcj+q6iRCSOg9gFt5wVkXuAjfD9oemLKuRtbXKrlVTRS/18epvV7uohsI24S+JYoWDYo=",
        )
        .unwrap();
        let plain = OpenKey::from_hex(OPEN).unwrap().open(&sealed).unwrap();
        assert_eq!(
            std::str::from_utf8(&plain).unwrap(),
            r#"{"inject_processor":{"token":"supersecret"},"bearer_auth":{"digest":"IDtwta6IOTIWG70L3tk1fnY+Y6/OmLFiML4z8LlMLMU="}}"#
        );
        assert_eq!(plain.len(), 116);
    }

    #[test]
    fn seal_then_open_round_trips_with_rotation() {
        let old = OpenKey::generate();
        let new = OpenKey::generate();
        let sealed = old.seal_key().seal(b"hello");
        assert_eq!(sealed.len(), 5 + SEAL_OVERHEAD);
        assert!(OpenKeys::new(new.clone(), vec![]).open(&sealed).is_err());
        let keys = OpenKeys::new(new, vec![old]);
        assert_eq!(keys.open(&sealed).unwrap().as_slice(), b"hello");
    }

    #[test]
    fn tampered_ciphertext_fails() {
        let key = OpenKey::generate();
        let mut sealed = key.seal_key().seal(b"hello");
        sealed[40] ^= 1;
        assert_eq!(key.open(&sealed), Err(OpenError));
    }

    #[test]
    fn bad_keys_are_reported_without_echoing_them() {
        assert_eq!(
            OpenKey::from_hex("abcd").unwrap_err(),
            KeyError::Size("private", 2)
        );
        assert_eq!(
            OpenKey::from_hex("zz").unwrap_err(),
            KeyError::NotHex("private")
        );
        let dbg = format!("{:?}", OpenKey::from_hex(OPEN).unwrap());
        assert!(!dbg.contains(OPEN), "{dbg}");
    }
}
