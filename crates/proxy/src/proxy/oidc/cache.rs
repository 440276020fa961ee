//! Tokens already verified, so that a workload sending the same token with every request
//! pays for one signature check (an RSA or ECDSA verification costs tens of
//! microseconds), not one per request.
//!
//! Keyed by the SHA-256 of the whole token, so a token that differs in any byte is
//! verified afresh; only tokens that verified are kept. An entry is used until the
//! token's `exp` (with the same clock skew as the verification), at most
//! [`MAX_AGE_SECS`] after it was verified, and only while the issuer's keys are the ones
//! it was verified with (the key set's generation): once the keys are fetched again, a
//! token signed by a withdrawn key is refused as it would have been without the cache. Bounded in entries and bytes, oldest out
//! first: a caller can only add tokens the issuer signed, and cannot grow it past the bound.
//!
//! Hand-written: a map and a queue under one mutex; the unseal cache (`secret::cache`) is
//! built the same way.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{LEEWAY_SECS, VerifiedToken};

/// The longest an entry is used after its token was verified.
pub const MAX_AGE_SECS: i64 = 300;
/// At most this many tokens …
const MAX_ENTRIES: usize = 4096;
/// … and about this many bytes (tokens are at most 16 KiB).
const MAX_BYTES: usize = 8 << 20;

struct Entry {
    verified: VerifiedToken,
    /// The issuer's key-set generation the token verified under.
    generation: u64,
    /// Unix seconds after which the entry is not used.
    until: i64,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    map: HashMap<[u8; 32], Entry>,
    order: VecDeque<[u8; 32]>,
    bytes: usize,
}

/// Verified tokens by digest.
#[derive(Default)]
pub struct VerifiedCache {
    inner: Mutex<Inner>,
}

/// A NumericDate claim (integer or fractional seconds).
fn unix_seconds(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl VerifiedCache {
    /// `token` as it verified before, if its entry still holds at `now` (Unix seconds)
    /// and `generation(issuer)` is still the key set it verified under.
    pub fn get(
        &self,
        token: &str,
        now: i64,
        generation: impl Fn(&str) -> Option<u64>,
    ) -> Option<VerifiedToken> {
        let key = digest(token);
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let e = inner.map.get(&key)?;
        (now < e.until && generation(&e.verified.issuer) == Some(e.generation))
            .then(|| e.verified.clone())
    }

    /// Remember that `token` verified at `now` (Unix seconds) as `verified`, under its
    /// issuer's key-set `generation`: until its `exp` with the verification's clock
    /// skew, at most [`MAX_AGE_SECS`].
    pub fn insert(&self, token: &str, verified: &VerifiedToken, generation: u64, now: i64) {
        let Some(exp) = verified.claims.get("exp").and_then(unix_seconds) else {
            return;
        };
        let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(0);
        let until = exp
            .saturating_add(leeway)
            .min(now.saturating_add(MAX_AGE_SECS));
        if until <= now {
            return;
        }
        // The claims are about as large as the token's payload.
        let bytes = 2 * token.len() + verified.issuer.len();
        let key = digest(token);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = inner.map.remove(&key) {
            inner.bytes -= old.bytes;
            inner.order.retain(|k| *k != key);
        }
        while inner.map.len() >= MAX_ENTRIES || inner.bytes + bytes > MAX_BYTES {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(old) = inner.map.remove(&oldest) {
                inner.bytes -= old.bytes;
            }
        }
        inner.order.push_back(key);
        inner.bytes += bytes;
        inner.map.insert(
            key,
            Entry {
                verified: verified.clone(),
                generation,
                until,
                bytes,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GEN1: fn(&str) -> Option<u64> = |_| Some(1);

    /// A token of `sub` expiring at `exp` (the verification allowed 60 s of skew).
    fn verified(sub: &str, exp: i64) -> VerifiedToken {
        let claims = serde_json::json!({"sub": sub, "exp": exp});
        VerifiedToken {
            issuer: "https://iss".to_owned(),
            claims: claims.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn a_verified_token_is_reused_until_its_expiry_or_max_age() {
        let c = VerifiedCache::default();
        c.insert("a.b.c", &verified("x", 1_000), 1, 900);
        let got = c.get("a.b.c", 1_059, GEN1).unwrap();
        assert_eq!(got.issuer, "https://iss");
        assert_eq!(got.claims["sub"], "x");
        // exp + leeway reached.
        assert!(c.get("a.b.c", 1_060, GEN1).is_none());
        // A long-lived token: at most MAX_AGE_SECS after verification.
        c.insert("d.e.f", &verified("y", 100_000), 1, 900);
        assert!(c.get("d.e.f", 900 + MAX_AGE_SECS - 1, GEN1).is_some());
        assert!(c.get("d.e.f", 900 + MAX_AGE_SECS, GEN1).is_none());
        // Any other byte string is a miss; an expired token is not kept.
        assert!(c.get("a.b.C", 950, GEN1).is_none());
        c.insert("g.h.i", &verified("z", 100), 1, 900);
        assert!(c.get("g.h.i", 900, GEN1).is_none());
        // Once the issuer's keys were fetched again (or the issuer is gone): a miss.
        assert!(c.get("a.b.c", 950, |_| Some(2)).is_none());
        assert!(c.get("a.b.c", 950, |_| None).is_none());
        assert!(c.get("a.b.c", 950, GEN1).is_some());
    }

    #[test]
    fn bounded_in_entries_and_bytes_oldest_out_first() {
        let c = VerifiedCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            c.insert(&format!("t.{i}.s"), &verified("x", 2_000), 1, 1_000);
        }
        assert_eq!(c.len(), MAX_ENTRIES);
        assert!(c.get("t.0.s", 1_001, GEN1).is_none());
        assert!(
            c.get(&format!("t.{}.s", MAX_ENTRIES + 9), 1_001, GEN1)
                .is_some()
        );
        let big = "x".repeat(16 * 1024);
        for i in 0..1_000 {
            c.insert(&format!("{big}.{i}"), &verified("x", 2_000), 1, 1_000);
        }
        let inner = c.inner.lock().unwrap();
        assert!(inner.bytes <= MAX_BYTES, "{}", inner.bytes);
        assert_eq!(inner.order.len(), inner.map.len());
    }
}
