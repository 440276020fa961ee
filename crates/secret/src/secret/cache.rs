//! The unseal cache: opening a sealed secret costs an X25519 exchange and a JSON parse
//! (tens of microseconds), and clients send the same sealed secret on every request.
//! Decoded secrets are kept, keyed by the sealed text itself (in a randomly keyed hash
//! map, so no client can aim collisions; the SHA-256 of the text, which revocation lists
//! and audit names use, is computed once when the secret is opened and kept with it), in
//! a map bounded both in entries and in bytes (anyone can seal secrets, so a count alone
//! would let a client fill memory with large ones). Only the exact sealed bytes hit: the cache never
//! skips a check — auth, validators, expiry, revocation and rate limits run on every
//! request. Evicted secrets are zeroized when their last user drops them.

use std::collections::{HashMap, VecDeque};
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{Secret, SecretError};
use tokenizer_core::OpenKeys;
use tokenizer_http::reflection::{Guard, GuardError};

/// The SHA-256 of a sealed secret as sent (base64, trimmed).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SealedDigest([u8; 32]);

impl SealedDigest {
    /// The digest of `sealed_b64`, trimmed of surrounding whitespace.
    pub fn of(sealed_b64: &str) -> Self {
        Self(Sha256::digest(sealed_b64.trim().as_bytes()).into())
    }

    /// Lowercase hex, as in revocation lists.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw SHA-256.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A digest of ciphertext names a secret without revealing it (revocation lists hold it).
impl std::fmt::Debug for SealedDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedDigest({})", self.hex())
    }
}

/// A decoded secret as the cache keeps it, with what is derived from it once.
#[derive(Debug)]
pub struct Unsealed {
    secret: Secret,
    /// The SHA-256 of the sealed text it was opened from.
    digest: SealedDigest,
    /// The reflection guard's automaton for this secret's credentials (`None` when the
    /// guard is off or there is nothing to guard).
    guard: Result<Option<Arc<Guard>>, GuardError>,
    /// [`Secret::stripped_json`], for the audit entry of every request that uses it.
    logged: String,
    /// The secret's name in audit entries: `id:<id>`, or `sha256:<digest prefix>`.
    audit_name: String,
    /// Names the secret's rate-limit counter: a keyed hash of its `id` and credentials
    /// (see [`SecretCache::new`]), or of the sealed text when it has no `id`.
    limit_key: [u8; 32],
    /// The pool its counters are kept in: a keyed hash of the caller identity it demands.
    limit_pool: [u8; 32],
    /// What the cache charges for this entry.
    bytes: usize,
}

impl Unsealed {
    fn new(secret: Secret, digest: SealedDigest, sealed_len: usize, keys: &Keys) -> Self {
        let guard = if keys.guard {
            let mut values = Vec::new();
            secret.processor.guard_values(&mut values);
            Guard::new(&values).map(|g| g.map(Arc::new))
        } else {
            Ok(None)
        };
        let logged = secret.stripped_json();
        let audit_name = match &secret.policy.id {
            Some(id) => format!("id:{id}"),
            None => format!("sha256:{}", &digest.hex()[..16]),
        };
        let inherited = secret
            .policy
            .rate_limit_key
            .as_deref()
            .and_then(|h| <[u8; 32]>::try_from(hex::decode(h).ok()?).ok());
        let limit_key = match (&secret.policy.id, inherited) {
            // A token derived from an exchange counts with its parent.
            (_, Some(key)) => key,
            // Secrets that share an id share a counter only when they hold the same
            // credentials: a caller-sealed secret naming another's id cannot spend (or
            // fill) that secret's limit.
            (Some(id), None) => {
                let processor =
                    Zeroizing::new(serde_json::to_vec(&secret.processor).unwrap_or_default());
                *tokenizer_core::mac::hmac_sha256(
                    &keys.limit[..],
                    &[b"id\0", id.as_bytes(), b"\0", &processor],
                )
            }
            (None, None) => {
                *tokenizer_core::mac::hmac_sha256(&keys.limit[..], &[b"sealed\0", digest.bytes()])
            }
        };
        let limit_pool = limit_pool(&secret, &keys.limit[..]);
        let guard_bytes = match &guard {
            Ok(Some(g)) => g.memory_usage(),
            _ => 0,
        };
        // The sealed text, the decoded secret (about as large) and its logged form.
        let bytes = 2 * sealed_len + logged.len() + audit_name.len() + guard_bytes;
        Self {
            secret,
            digest,
            guard,
            logged,
            audit_name,
            limit_key,
            limit_pool,
            bytes,
        }
    }

    /// The SHA-256 of the sealed text it was opened from (revocation lists name it).
    pub fn digest(&self) -> &SealedDigest {
        &self.digest
    }

    /// The secret's JSON with every credential redacted.
    pub fn logged_json(&self) -> &str {
        &self.logged
    }

    /// The secret's name in audit entries: `id:<id>`, or `sha256:<digest prefix>`.
    pub fn audit_name(&self) -> &str {
        &self.audit_name
    }

    /// The reflection guard for what this secret injects.
    pub fn reflection_guard(&self) -> Result<Option<&Arc<Guard>>, GuardError> {
        self.guard
            .as_ref()
            .map(Option::as_ref)
            .map_err(Clone::clone)
    }

    /// The key of this secret's rate-limit counter.
    pub fn limit_key(&self) -> &[u8; 32] {
        &self.limit_key
    }

    /// The pool its limit counters are kept in ([`crate::policy::Limit::pool`]).
    pub fn limit_pool(&self) -> &[u8; 32] {
        &self.limit_pool
    }
}

/// Whose counters a secret's are: a keyed hash of its auth rule — the caller identity
/// it demands (a bearer digest, a Fly-Src rule, a macaroon key, an OIDC or mTLS rule).
/// Only a caller that passes that rule can use the secret, so only such a caller can
/// grow the pool. Every `no_auth` secret is in one anonymous pool: anyone can fill it,
/// and only it.
fn limit_pool(secret: &Secret, key: &[u8]) -> [u8; 32] {
    if matches!(secret.auth, crate::auth::AuthConfig::None) {
        return *tokenizer_core::mac::hmac_sha256(key, &[b"pool\0anonymous"]);
    }
    let auth = Zeroizing::new(serde_json::to_vec(&secret.auth).unwrap_or_default());
    *tokenizer_core::mac::hmac_sha256(key, &[b"pool\0auth\0", &auth])
}

impl Deref for Unsealed {
    type Target = Secret;

    fn deref(&self) -> &Secret {
        &self.secret
    }
}

/// How much the cache may hold.
#[derive(Clone, Copy, Debug)]
pub struct CacheLimits {
    /// Entries (`UNSEAL_CACHE_SIZE`; 0 disables the cache).
    pub entries: usize,
    /// Bytes, estimated (`UNSEAL_CACHE_BYTES`).
    pub bytes: usize,
    /// Build each secret's reflection guard (`REFLECTION_GUARD`).
    pub guard: bool,
}

/// A bounded map from sealed text to decoded secret (FIFO eviction).
pub struct SecretCache {
    keys: OpenKeys,
    derived: Keys,
    limits: CacheLimits,
    inner: Mutex<Inner>,
}

/// What opening needs besides the open keys.
struct Keys {
    /// Keys rate-limit counter names (derived from the open key, so every instance that
    /// shares it names a secret alike, and a name reveals nothing).
    limit: Zeroizing<[u8; 32]>,
    guard: bool,
}

#[derive(Default)]
struct Inner {
    /// `RandomState`: SipHash under a per-process random key.
    map: HashMap<Arc<str>, Arc<Unsealed>>,
    order: VecDeque<Arc<str>>,
    bytes: usize,
}

/// Whether [`SecretCache::open`] found the secret in the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// Found in the cache: nothing was decrypted.
    Cached,
    /// Decrypted and parsed now (and kept, if the cache has room for it).
    Decrypted,
}

impl SecretCache {
    /// An empty cache that opens secrets with `keys`. Rate-limit counter names are keyed
    /// with a key derived from the current open key.
    pub fn new(keys: OpenKeys, limits: CacheLimits) -> Self {
        let derived = Keys {
            limit: keys.current().derive("rate-limit keys"),
            guard: limits.guard,
        };
        Self {
            keys,
            derived,
            limits,
            inner: Mutex::default(),
        }
    }

    /// The keys secrets are opened with.
    pub fn keys(&self) -> &OpenKeys {
        &self.keys
    }

    /// The secret sealed in `sealed_b64` (surrounding whitespace ignored), from the
    /// cache or opened now.
    pub fn open(&self, sealed_b64: &str) -> Result<(Arc<Unsealed>, Opened), SecretError> {
        let sealed = sealed_b64.trim();
        if self.limits.entries > 0
            && let Some(hit) = self.lock().map.get(sealed)
        {
            return Ok((hit.clone(), Opened::Cached));
        }
        let secret = Secret::open(&self.keys, sealed)?;
        let unsealed = Arc::new(Unsealed::new(
            secret,
            SealedDigest::of(sealed),
            sealed.len(),
            &self.derived,
        ));
        // One entry may take at most an eighth of the budget; larger ones are not kept.
        if self.limits.entries > 0 && unsealed.bytes <= self.limits.bytes / 8 {
            let mut inner = self.lock();
            if !inner.map.contains_key(sealed) {
                let key: Arc<str> = Arc::from(sealed);
                inner.map.insert(key.clone(), unsealed.clone());
                inner.order.push_back(key);
                inner.bytes += unsealed.bytes;
            }
            while inner.order.len() > self.limits.entries || inner.bytes > self.limits.bytes {
                let Some(old) = inner.order.pop_front() else {
                    break;
                };
                if let Some(gone) = inner.map.remove(&old) {
                    inner.bytes -= gone.bytes;
                }
            }
        }
        Ok((unsealed, Opened::Decrypted))
    }

    /// Secrets held now.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Is the cache empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes the cache is charged for now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizer_core::OpenKey;

    fn sealed(key: &OpenKey, token: &str) -> String {
        let json = format!(r#"{{"inject_processor":{{"token":"{token}"}},"no_auth":{{}}}}"#);
        key.seal_key().seal_base64(json.as_bytes())
    }

    fn cache(key: &OpenKey, entries: usize, bytes: usize) -> SecretCache {
        SecretCache::new(
            OpenKeys::new(key.clone(), vec![]),
            CacheLimits {
                entries,
                bytes,
                guard: true,
            },
        )
    }

    #[test]
    fn hits_only_the_exact_sealed_text_and_stays_bounded() {
        let key = OpenKey::generate();
        let cache = cache(&key, 2, 1 << 20);
        let a = sealed(&key, "a");
        let (first, how) = cache.open(&a).unwrap();
        assert_eq!(how, Opened::Decrypted);
        let (again, how) = cache.open(&a).unwrap();
        assert_eq!(how, Opened::Cached);
        assert!(Arc::ptr_eq(&first, &again));
        // The same secret sealed again is different ciphertext: a miss.
        let a2 = sealed(&key, "a");
        assert_eq!(cache.open(&a2).unwrap().1, Opened::Decrypted);
        let b = sealed(&key, "b");
        cache.open(&b).unwrap();
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.open(&a).unwrap().1, Opened::Decrypted);
        // Bad input is never cached.
        assert!(cache.open("###").is_err());
        assert!(cache.open("###").is_err());
    }

    #[test]
    fn the_cache_is_bounded_in_bytes() {
        let key = OpenKey::generate();
        let budget = 1 << 20;
        let big = cache(&key, 10_000, budget);
        for i in 0..200 {
            let s = sealed(&key, &format!("{i:04}-{}", "x".repeat(400)));
            big.open(&s).unwrap();
            assert!(big.bytes() <= budget, "{} > {budget}", big.bytes());
        }
        assert!(big.len() < 200 && big.len() > 4, "{}", big.len());
        // An entry larger than an eighth of the budget opens but is not kept.
        let big = sealed(&key, &"y".repeat(8000));
        let small = cache(&key, 10, 256 * 1024);
        small.open(&big).unwrap();
        assert!(small.is_empty());
    }

    #[test]
    fn zero_capacity_disables_caching() {
        let key = OpenKey::generate();
        let cache = cache(&key, 0, 1 << 20);
        let a = sealed(&key, "a");
        cache.open(&a).unwrap();
        assert_eq!(cache.open(&a).unwrap().1, Opened::Decrypted);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_reflection_guard_is_built_once_per_cached_secret() {
        let key = OpenKey::generate();
        let cache = cache(&key, 4, 1 << 20);
        let a = sealed(&key, "a-long-enough-token");
        let (first, _) = cache.open(&a).unwrap();
        let (again, _) = cache.open(&a).unwrap();
        let g1 = first.reflection_guard().unwrap().expect("guards the token");
        let g2 = again.reflection_guard().unwrap().expect("guards the token");
        assert!(Arc::ptr_eq(g1, g2));
        let short = sealed(&key, "short");
        let (s, _) = cache.open(&short).unwrap();
        assert!(s.reflection_guard().unwrap().is_none());
    }

    #[test]
    fn rate_limit_keys_bind_the_id_to_the_credentials() {
        let key = OpenKey::generate();
        let cache = cache(&key, 0, 1 << 20);
        let with_id = |token: &str| {
            let json = format!(
                r#"{{"inject_processor":{{"token":"{token}"}},"no_auth":{{}},"id":"svc"}}"#
            );
            let s = key.seal_key().seal_base64(json.as_bytes());
            *cache.open(&s).unwrap().0.limit_key()
        };
        assert_eq!(with_id("real"), with_id("real"), "resealed: one counter");
        assert_ne!(
            with_id("real"),
            with_id("caller"),
            "same id, other credential"
        );
        let a = sealed(&key, "real");
        let b = sealed(&key, "real");
        let ka = *cache.open(&a).unwrap().0.limit_key();
        let kb = *cache.open(&b).unwrap().0.limit_key();
        assert_ne!(ka, kb, "without an id, each sealed text counts alone");
    }
}
