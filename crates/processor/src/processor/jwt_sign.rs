//! Signing JWTs with a PEM private key, the algorithm chosen from the key: RSA → RS256,
//! P-256/P-384/P-521 → ES256/ES384/ES512, Ed25519 → EdDSA.
//!
//! Keys are read as Go does: the first PEM block, its label ignored, tried as PKCS#1 RSA,
//! then PKCS#8 (RSA, EC, Ed25519), then SEC1 EC. The JWT is assembled here (three
//! base64url parts) rather than with `jsonwebtoken`, which has no ES512; the signatures
//! come from the RustCrypto crates.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::Value;
use zeroize::Zeroizing;

use super::ProcessorError;

/// A private key that can sign JWTs.
pub enum JwtKey {
    Rsa(Box<rsa::pkcs1v15::SigningKey<sha2::Sha256>>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(Box<p521::ecdsa::SigningKey>),
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtKey({})", self.algorithm())
    }
}

/// The largest RSA modulus accepted for signing: anyone can seal a secret, and every
/// request with it signs; an RSA-4096 signature takes ~20 ms, an RSA-8192 one ~130 ms.
/// (GitHub App and Google service-account keys are 2048 bits.)
const MAX_RSA_BITS: usize = 4096;
/// The largest private key DER accepted (a 4096-bit PKCS#8 RSA key is about 2.4 KiB).
const MAX_KEY_DER: usize = 4 * 1024;

/// Sign `claims` with `key` on the blocking pool, at most one signature per CPU at once:
/// signatures cost milliseconds of CPU, which must not stall the requests that share
/// the async runtime, nor take every core when many arrive together.
pub async fn sign_off_runtime(
    key: std::sync::Arc<JwtKey>,
    claims: Value,
) -> Result<Zeroizing<String>, ProcessorError> {
    static SIGNERS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let signers = SIGNERS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        tokio::sync::Semaphore::new(cpus)
    });
    let _permit = signers
        .acquire()
        .await
        .map_err(|_| ProcessorError::BadConfig("signing unavailable".to_owned()))?;
    tokio::task::spawn_blocking(move || key.sign(&claims))
        .await
        .map_err(|_| ProcessorError::BadConfig("signing failed".to_owned()))
}

impl JwtKey {
    /// Parse the first PEM block of `pem`.
    pub fn from_pem(pem: &[u8]) -> Result<Self, ProcessorError> {
        if pem.is_empty() {
            return Err(ProcessorError::BadConfig("missing private key".to_owned()));
        }
        let text = std::str::from_utf8(pem).map_err(|_| invalid())?;
        // The first block: BEGIN <label> … END <label>.
        let rest = &text[text.find("-----BEGIN ").ok_or_else(invalid)?..];
        let label_len = rest[11..].find("-----").ok_or_else(invalid)?;
        let end_tag = format!("-----END {}-----", &rest[11..11 + label_len]);
        let end = rest.find(&end_tag).ok_or_else(invalid)? + end_tag.len();
        let (_label, der) =
            pem_rfc7468::decode_vec(&rest.as_bytes()[..end]).map_err(|_| invalid())?;
        let der = Zeroizing::new(der);
        Self::from_der(&der)
    }

    fn from_der(der: &[u8]) -> Result<Self, ProcessorError> {
        // Anyone can seal a secret, and each request signs with its key: a huge RSA key
        // would make every such request slow. A 4096-bit key is under 2.5 KiB of DER.
        if der.len() > MAX_KEY_DER {
            return Err(ProcessorError::BadConfig(
                "private key too large".to_owned(),
            ));
        }
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs1_der(der) {
            return Self::rsa(k);
        }
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_der(der) {
            return Self::rsa(k);
        }
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(der) {
            return Ok(Self::P256(k));
        }
        if let Ok(k) = p384::ecdsa::SigningKey::from_pkcs8_der(der) {
            return Ok(Self::P384(k));
        }
        if let Ok(k) = p521::SecretKey::from_pkcs8_der(der) {
            return Ok(Self::p521(k));
        }
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_der(der) {
            return Ok(Self::Ed25519(Box::new(k)));
        }
        if let Ok(k) = p256::SecretKey::from_sec1_der(der) {
            return Ok(Self::P256(k.into()));
        }
        if let Ok(k) = p384::SecretKey::from_sec1_der(der) {
            return Ok(Self::P384(k.into()));
        }
        if let Ok(k) = p521::SecretKey::from_sec1_der(der) {
            return Ok(Self::p521(k));
        }
        Err(ProcessorError::BadConfig(
            "unsupported private key format".to_owned(),
        ))
    }

    fn rsa(key: rsa::RsaPrivateKey) -> Result<Self, ProcessorError> {
        use rsa::traits::PublicKeyParts;
        if key.size() * 8 > MAX_RSA_BITS {
            return Err(ProcessorError::BadConfig(format!(
                "RSA keys over {MAX_RSA_BITS} bits are not supported"
            )));
        }
        Ok(Self::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(key))))
    }

    fn p521(key: p521::SecretKey) -> Self {
        let bytes = Zeroizing::new(key.to_bytes());
        // A valid secret key is a valid signing key, so this cannot fail.
        #[allow(clippy::expect_used)]
        let signing = p521::ecdsa::SigningKey::from_slice(&bytes)
            .expect("a P-521 secret key is a valid signing key");
        Self::P521(Box::new(signing))
    }

    pub fn is_rsa(&self) -> bool {
        matches!(self, Self::Rsa(_))
    }

    /// The JWS `alg`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Rsa(_) => "RS256",
            Self::P256(_) => "ES256",
            Self::P384(_) => "ES384",
            Self::P521(_) => "ES512",
            Self::Ed25519(_) => "EdDSA",
        }
    }

    /// `header.claims.signature`, each part base64url without padding.
    pub fn sign(&self, claims: &Value) -> Zeroizing<String> {
        let header = serde_json::json!({"alg": self.algorithm(), "typ": "JWT"});
        let mut jwt = Zeroizing::new(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        ));
        let msg = jwt.as_bytes();
        let signature: Vec<u8> = match self {
            Self::Rsa(k) => k.sign(msg).to_vec(),
            Self::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(msg);
                s.to_bytes().to_vec()
            }
            Self::P384(k) => {
                let s: p384::ecdsa::Signature = k.sign(msg);
                s.to_bytes().to_vec()
            }
            Self::P521(k) => {
                let s: p521::ecdsa::Signature = k.sign(msg);
                s.to_bytes().to_vec()
            }
            Self::Ed25519(k) => k.sign(msg).to_bytes().to_vec(),
        };
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
        jwt
    }
}

fn invalid() -> ProcessorError {
    ProcessorError::BadConfig("invalid PEM-encoded private key".to_owned())
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    tokenizer_core::time::now_unix()
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    use rsa::pkcs1::EncodeRsaPrivateKey;

    pub(crate) fn rsa_pem() -> String {
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        key.to_pkcs1_pem(LineEnding::LF).unwrap().to_string()
    }

    fn parts(jwt: &str) -> (Value, Value, Vec<u8>) {
        let p: Vec<&str> = jwt.split('.').collect();
        assert_eq!(p.len(), 3);
        let dec = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap();
        (
            serde_json::from_slice(&dec(p[0])).unwrap(),
            serde_json::from_slice(&dec(p[1])).unwrap(),
            dec(p[2]),
        )
    }

    #[test]
    fn algorithm_follows_the_key() {
        use rand_core::OsRng;
        let p256 = p256::SecretKey::random(&mut OsRng)
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap();
        let p384 = p384::SecretKey::random(&mut OsRng)
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap();
        let p521 = p521::SecretKey::random(&mut OsRng)
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap();
        let sec1 = p256::SecretKey::random(&mut OsRng)
            .to_sec1_pem(LineEnding::LF)
            .unwrap();
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut OsRng, &mut seed);
        let ed = ed25519_dalek::SigningKey::from_bytes(&seed)
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap();
        for (pem, alg, sig_len) in [
            (rsa_pem(), "RS256", 256),
            (p256.to_string(), "ES256", 64),
            (p384.to_string(), "ES384", 96),
            (p521.to_string(), "ES512", 132),
            (sec1.to_string(), "ES256", 64),
            (ed.to_string(), "EdDSA", 64),
        ] {
            let key = JwtKey::from_pem(pem.as_bytes()).unwrap();
            assert_eq!(key.algorithm(), alg);
            let (header, claims, sig) = parts(&key.sign(&serde_json::json!({"iss": "x"})));
            assert_eq!(header["alg"], alg);
            assert_eq!(claims["iss"], "x");
            assert_eq!(sig.len(), sig_len, "{alg}");
        }
    }

    #[test]
    fn es512_verifies() {
        use p521::ecdsa::signature::Verifier;
        let secret = p521::SecretKey::random(&mut rand_core::OsRng);
        let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        let jwt = JwtKey::from_pem(pem.as_bytes())
            .unwrap()
            .sign(&serde_json::json!({"a": 1}));
        let (signed, sig) = jwt.rsplit_once('.').unwrap();
        let sig =
            p521::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
        let verifying =
            p521::ecdsa::VerifyingKey::from_affine(*secret.public_key().as_affine()).unwrap();
        verifying.verify(signed.as_bytes(), &sig).unwrap();
    }

    #[test]
    fn bad_keys() {
        for bad in [
            "",
            "not-a-real-key",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(JwtKey::from_pem(bad.as_bytes()).is_err(), "{bad}");
        }
        let huge = pem_rfc7468::encode_string(
            "PRIVATE KEY",
            pem_rfc7468::LineEnding::LF,
            &vec![0x30; 9 * 1024],
        )
        .unwrap();
        let err = JwtKey::from_pem(huge.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
    }
}
