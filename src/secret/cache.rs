//! The unseal cache: opening a sealed secret costs an X25519 exchange and a JSON parse
//! (tens of microseconds), and clients send the same sealed secret on every request.
//! Decoded secrets are kept, keyed by the SHA-256 of the sealed text, in a bounded map.
//! Only the exact sealed bytes hit: the cache never skips a check — auth, validators,
//! expiry, revocation and rate limits run on every request. Evicted secrets are
//! zeroized when their last user drops them.

use std::collections::{HashMap, VecDeque};
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

use super::{OpenKeys, Secret, SecretError};
use crate::processor::ReflectionGuard;

/// The SHA-256 of a sealed secret as sent (base64, trimmed).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SealedDigest([u8; 32]);

impl SealedDigest {
    pub fn of(sealed_b64: &str) -> Self {
        Self(Sha256::digest(sealed_b64.trim().as_bytes()).into())
    }

    /// Lowercase hex, as in revocation lists.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// A decoded secret as the cache keeps it, with what is derived from it on first use.
#[derive(Debug)]
pub struct Unsealed {
    secret: Secret,
    /// The reflection guard's automaton for this secret's credentials: building it costs
    /// tens of microseconds, more than the rest of the request.
    guard: OnceLock<Option<ReflectionGuard>>,
    /// [`Secret::stripped_json`], for the audit entry of every request that uses it.
    logged: OnceLock<String>,
}

impl Unsealed {
    fn new(secret: Secret) -> Self {
        Self {
            secret,
            guard: OnceLock::new(),
            logged: OnceLock::new(),
        }
    }

    /// The secret's JSON with every credential redacted, built once.
    pub fn logged_json(&self) -> &str {
        self.logged.get_or_init(|| self.secret.stripped_json())
    }

    /// The reflection guard for what this secret injects, built once.
    pub fn reflection_guard(&self) -> Option<&ReflectionGuard> {
        self.guard
            .get_or_init(|| ReflectionGuard::for_processor(&self.secret.processor))
            .as_ref()
    }
}

impl Deref for Unsealed {
    type Target = Secret;

    fn deref(&self) -> &Secret {
        &self.secret
    }
}

/// A bounded map from sealed digest to decoded secret (FIFO eviction).
pub struct SecretCache {
    keys: OpenKeys,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<SealedDigest, Arc<Unsealed>>,
    order: VecDeque<SealedDigest>,
}

/// Whether [`SecretCache::open`] found the secret in the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    Cached,
    Decrypted,
}

impl SecretCache {
    /// `capacity` 0 disables caching.
    pub fn new(keys: OpenKeys, capacity: usize) -> Self {
        Self {
            keys,
            capacity,
            inner: Mutex::default(),
        }
    }

    pub fn keys(&self) -> &OpenKeys {
        &self.keys
    }

    /// The secret sealed in `sealed_b64`, from the cache or opened now.
    pub fn open(
        &self,
        sealed_b64: &str,
        digest: SealedDigest,
    ) -> Result<(Arc<Unsealed>, Opened), SecretError> {
        if self.capacity > 0
            && let Some(hit) = self.lock().map.get(&digest)
        {
            return Ok((hit.clone(), Opened::Cached));
        }
        let secret = Arc::new(Unsealed::new(Secret::open(&self.keys, sealed_b64)?));
        if self.capacity > 0 {
            let mut inner = self.lock();
            if inner.map.insert(digest, secret.clone()).is_none() {
                inner.order.push_back(digest);
            }
            while inner.order.len() > self.capacity {
                if let Some(old) = inner.order.pop_front() {
                    inner.map.remove(&old);
                }
            }
        }
        Ok((secret, Opened::Decrypted))
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::OpenKey;

    fn sealed(key: &OpenKey, token: &str) -> String {
        let json = format!(r#"{{"inject_processor":{{"token":"{token}"}},"no_auth":{{}}}}"#);
        key.seal_key().seal_base64(json.as_bytes())
    }

    #[test]
    fn hits_only_the_exact_sealed_text_and_stays_bounded() {
        let key = OpenKey::generate();
        let cache = SecretCache::new(OpenKeys::new(key.clone(), vec![]), 2);
        let a = sealed(&key, "a");
        let (first, how) = cache.open(&a, SealedDigest::of(&a)).unwrap();
        assert_eq!(how, Opened::Decrypted);
        let (again, how) = cache.open(&a, SealedDigest::of(&a)).unwrap();
        assert_eq!(how, Opened::Cached);
        assert!(Arc::ptr_eq(&first, &again));
        // The same secret sealed again is different ciphertext: a miss.
        let a2 = sealed(&key, "a");
        assert_eq!(
            cache.open(&a2, SealedDigest::of(&a2)).unwrap().1,
            Opened::Decrypted
        );
        let b = sealed(&key, "b");
        cache.open(&b, SealedDigest::of(&b)).unwrap();
        assert_eq!(cache.len(), 2);
        assert_eq!(
            cache.open(&a, SealedDigest::of(&a)).unwrap().1,
            Opened::Decrypted
        );
        // Bad input is never cached.
        assert!(cache.open("###", SealedDigest::of("###")).is_err());
        assert!(cache.open("###", SealedDigest::of("###")).is_err());
    }

    #[test]
    fn zero_capacity_disables_caching() {
        let key = OpenKey::generate();
        let cache = SecretCache::new(OpenKeys::new(key.clone(), vec![]), 0);
        let a = sealed(&key, "a");
        cache.open(&a, SealedDigest::of(&a)).unwrap();
        assert_eq!(
            cache.open(&a, SealedDigest::of(&a)).unwrap().1,
            Opened::Decrypted
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn the_reflection_guard_is_built_once_per_cached_secret() {
        let key = OpenKey::generate();
        let cache = SecretCache::new(OpenKeys::new(key.clone(), vec![]), 4);
        let a = sealed(&key, "a-long-enough-token");
        let (first, _) = cache.open(&a, SealedDigest::of(&a)).unwrap();
        let (again, _) = cache.open(&a, SealedDigest::of(&a)).unwrap();
        let g1 = first.reflection_guard().expect("guards the token");
        let g2 = again.reflection_guard().expect("guards the token");
        assert!(std::ptr::eq(g1, g2));
        let short = sealed(&key, "short");
        let (s, _) = cache.open(&short, SealedDigest::of(&short)).unwrap();
        assert!(s.reflection_guard().is_none());
    }
}
