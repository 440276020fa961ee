//! HMAC-SHA256, the one MAC the proxy computes (HMAC processor, SigV4, macaroons,
//! rate-limit keys).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let mut mac = HmacSha256::new(key);
    for part in parts {
        mac.update(part);
    }
    mac.finish()
}

/// HMAC-SHA256 over data that arrives in pieces (a request body as it streams).
pub struct HmacSha256(Hmac<Sha256>);

impl HmacSha256 {
    /// A MAC under `key`.
    pub fn new(key: &[u8]) -> Self {
        // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
        #[allow(clippy::expect_used)]
        Self(Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length"))
    }

    /// Add `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The tag.
    pub fn finish(self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4231_case_2() {
        let out = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(*out),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
