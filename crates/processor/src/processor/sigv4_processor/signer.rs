//! The signing half of SigV4: scope, string to sign, derived key, signature and the
//! `Authorization` header. The secret and every key derived from it are zeroized.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use tokenizer_core::SecretString;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The credential scope: `DATE/REGION/SERVICE/aws4_request`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope<'a> {
    /// `YYYYMMDD`, the day of the signing time.
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

// === impl Scope ===

impl Scope<'_> {
    fn render(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// The hex signature of `canonical_request` at `amz_date` (`YYYYMMDDTHHMMSSZ`).
pub fn signature(
    secret_key: &SecretString,
    amz_date: &str,
    scope: &Scope<'_>,
    canonical_request: &[u8],
) -> String {
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{}\n{}",
        scope.render(),
        hex::encode(Sha256::digest(canonical_request))
    );
    let key = signing_key(secret_key, scope);
    hex::encode(hmac(&key[..], string_to_sign.as_bytes()))
}

/// `AWS4-HMAC-SHA256 Credential=AK/SCOPE, SignedHeaders=…, Signature=…`.
pub fn authorization(
    access_key: &str,
    scope: &Scope<'_>,
    signed_headers: &str,
    signature: &str,
) -> String {
    format!(
        "{ALGORITHM} Credential={access_key}/{}, SignedHeaders={signed_headers}, Signature={signature}",
        scope.render()
    )
}

/// HMAC chain `"AWS4"+secret` → date → region → service → `aws4_request`.
fn signing_key(secret_key: &SecretString, scope: &Scope<'_>) -> Zeroizing<[u8; 32]> {
    let seed = Zeroizing::new(format!("AWS4{}", secret_key.expose()));
    let mut key = hmac(seed.as_bytes(), scope.date.as_bytes());
    for part in [scope.region, scope.service, "aws4_request"] {
        key = hmac(&key[..], part.as_bytes());
    }
    key
}

fn hmac(key: &[u8], msg: &[u8]) -> Zeroizing<[u8; 32]> {
    tokenizer_core::mac::hmac_sha256(key, &[msg])
}
