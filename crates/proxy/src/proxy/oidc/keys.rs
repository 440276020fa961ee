//! One issuer's signing keys: discovery (`/.well-known/openid-configuration`) and the
//! JWKS it names, fetched through the upstream client (so the destination guard,
//! `UPSTREAM_CA_FILE` and `UPSTREAM_RESOLVE` apply), and cached.
//!
//! - The keys are fetched when first needed, and again (in the background, while the
//!   old ones keep serving) when they are an hour old.
//! - A token whose `kid` is not among them triggers a fetch, at most once per `refresh`
//!   (30 s by default): a flood of made-up `kid`s costs the issuer one request per period.
//! - A failed fetch keeps the last good keys until they are a day old.
//! - One fetch at a time per issuer. Only a request that needs it (its `kid` is unknown)
//!   waits for it: every other reads the current key set without waiting, so a slow or
//!   unreachable issuer delays nobody whose key is already known.
//! - A fetch that brings the same keys changes nothing: the key set's generation (which
//!   the cache of verified tokens checks) moves only when the keys did.
//! - Every usable key of the set is kept (the document is bounded, 256 KiB), so a key
//!   after many others is found.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use http::{Request, StatusCode, header};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use sha2::{Digest, Sha256};

use tokenizer_http::body::{self, Budget, Read, read_bounded};
use tokenizer_net::upstream::Upstream;

/// Keys are fetched again when this old.
const FRESH: Duration = Duration::from_secs(3600);
/// Keys are used at most this long after their fetch, whatever happens.
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// The largest discovery document or JWKS read.
const MAX_DOCUMENT: usize = 256 * 1024;
/// How long a fetch (discovery and JWKS) may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct IssuerKeys {
    issuer: String,
    refresh: Duration,
    /// The key set in use: read without waiting, replaced whole after a fetch.
    current: RwLock<Arc<KeySet>>,
    /// Held for the length of one fetch.
    fetching: Arc<tokio::sync::Mutex<()>>,
    /// When a fetch was last started.
    attempted: Mutex<Option<Instant>>,
}

/// The keys of one fetch.
#[derive(Default)]
struct KeySet {
    keys: Vec<Key>,
    fetched: Option<Instant>,
    /// SHA-256 over the keys' JWKs: a fetch with the same one changes nothing.
    fingerprint: [u8; 32],
    /// Bumped when a fetch brings other keys: a token verified under an older set is
    /// checked again.
    generation: u64,
}

#[derive(Clone)]
struct Key {
    kid: Option<String>,
    /// The JWK's `alg`, when it names one.
    alg: Option<Algorithm>,
    key: DecodingKey,
    kind: Kind,
}

/// Which algorithms a key can verify.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rsa,
    Ec,
    Ed,
}

impl Kind {
    fn of(alg: Algorithm) -> Option<Self> {
        match alg {
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => Some(Self::Rsa),
            Algorithm::ES256 | Algorithm::ES384 => Some(Self::Ec),
            Algorithm::EdDSA => Some(Self::Ed),
            _ => None,
        }
    }
}

impl IssuerKeys {
    pub(super) fn new(issuer: String, refresh: Duration) -> Self {
        Self {
            issuer,
            refresh,
            current: RwLock::default(),
            fetching: Arc::new(tokio::sync::Mutex::new(())),
            attempted: Mutex::new(None),
        }
    }

    pub(super) fn issuer(&self) -> &str {
        &self.issuer
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Which key set is in use (moves only when a fetch brings other keys).
    pub(super) fn generation(&self) -> u64 {
        self.snapshot().generation
    }

    /// May a fetch start now (none started within `refresh`)? Marks it started if so.
    fn start_attempt(&self, now: Instant) -> bool {
        let mut attempted = self.attempted.lock().unwrap_or_else(|p| p.into_inner());
        if attempted.is_some_and(|a| now.saturating_duration_since(a) < self.refresh) {
            return false;
        }
        *attempted = Some(now);
        true
    }

    /// The key for a token's `kid` and `alg`, and the generation of the key set it came
    /// from. Waits for a fetch only when the key is not known.
    pub(super) async fn key_for(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
        upstream: &Upstream,
        budget: &Budget,
    ) -> Result<(DecodingKey, u64), String> {
        let kind = Kind::of(alg).ok_or("algorithm not accepted")?;
        let set = self.snapshot();
        if let Some(key) = set.find(kid, alg, kind, Instant::now()) {
            if set.stale(Instant::now()) {
                self.refresh_in_background(upstream, budget);
            }
            return Ok((key, set.generation));
        }
        // This request needs keys it does not have: wait for a fetch under way, or run
        // one if none ran within `refresh`.
        let _fetch = match self.fetching.try_lock() {
            Ok(guard) => {
                if !self.start_attempt(Instant::now()) {
                    return Err(set.missing(Instant::now()));
                }
                self.fetch_and_install(upstream, budget).await;
                guard
            }
            Err(_) => self.fetching.lock().await,
        };
        let set = self.snapshot();
        let now = Instant::now();
        set.find(kid, alg, kind, now)
            .map(|k| (k, set.generation))
            .ok_or_else(|| set.missing(now))
    }

    /// Fetch again without making anyone wait (keys older than [`FRESH`]).
    fn refresh_in_background(self: &Arc<Self>, upstream: &Upstream, budget: &Budget) {
        let Ok(guard) = self.fetching.clone().try_lock_owned() else {
            return;
        };
        if !self.start_attempt(Instant::now()) {
            return;
        }
        let (this, upstream, budget) = (self.clone(), upstream.clone(), budget.clone());
        tokio::spawn(async move {
            this.fetch_and_install(&upstream, &budget).await;
            drop(guard);
        });
    }

    /// One fetch (the caller holds `fetching`); the new set replaces the current one.
    async fn fetch_and_install(&self, upstream: &Upstream, budget: &Budget) {
        let fetched = tokio::time::timeout(FETCH_TIMEOUT, self.fetch(upstream, budget)).await;
        let (keys, fingerprint) = match fetched {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "OIDC keys: fetch failed");
                return;
            }
            Err(_) => {
                tracing::warn!(issuer = %self.issuer, "OIDC keys: fetch timed out");
                return;
            }
        };
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        let same = current.fetched.is_some() && current.fingerprint == fingerprint;
        let generation = if same {
            current.generation
        } else {
            tracing::info!(issuer = %self.issuer, keys = keys.len(), "OIDC keys fetched");
            current.generation + 1
        };
        *current = Arc::new(KeySet {
            keys,
            fetched: Some(Instant::now()),
            fingerprint,
            generation,
        });
    }

    async fn fetch(
        &self,
        upstream: &Upstream,
        budget: &Budget,
    ) -> Result<(Vec<Key>, [u8; 32]), String> {
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let doc: serde_json::Value = get_json(&discovery, upstream, budget).await?;
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or("discovery document has no jwks_uri")?;
        if !jwks_uri.starts_with("https://") {
            return Err("jwks_uri is not https".to_owned());
        }
        let set: JwkSet = get_json(jwks_uri, upstream, budget).await?;
        let mut fingerprint = Sha256::new();
        let mut keys = Vec::new();
        for jwk in &set.keys {
            if let Some(key) = Key::from_jwk(jwk) {
                fingerprint.update(serde_json::to_vec(jwk).unwrap_or_default());
                fingerprint.update(b"\0");
                keys.push(key);
            }
        }
        Ok((keys, fingerprint.finalize().into()))
    }
}

impl KeySet {
    /// A key for `kid` (any key of the right kind when the token names none) that can
    /// verify `alg`, if the set is not too old to use.
    fn find(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        kind: Kind,
        now: Instant,
    ) -> Option<DecodingKey> {
        if self
            .fetched
            .is_none_or(|f| now.saturating_duration_since(f) >= MAX_AGE)
        {
            return None;
        }
        self.keys
            .iter()
            .filter(|k| k.kind == kind && k.alg.is_none_or(|a| a == alg))
            .find(|k| kid.is_none() || k.kid.as_deref() == kid)
            .map(|k| k.key.clone())
    }

    /// Due for a fetch.
    fn stale(&self, now: Instant) -> bool {
        self.fetched
            .is_none_or(|f| now.saturating_duration_since(f) >= FRESH)
    }

    /// Why no key was found.
    fn missing(&self, now: Instant) -> String {
        if self
            .fetched
            .is_none_or(|f| now.saturating_duration_since(f) >= MAX_AGE)
        {
            "the issuer's keys are unavailable".to_owned()
        } else {
            "unknown signing key".to_owned()
        }
    }
}

impl Key {
    /// Signature keys only: RSA, EC and OKP (never a symmetric `oct` key).
    fn from_jwk(jwk: &Jwk) -> Option<Self> {
        if matches!(
            jwk.common.public_key_use,
            Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
        ) {
            return None;
        }
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Kind::Rsa,
            AlgorithmParameters::EllipticCurve(_) => Kind::Ec,
            AlgorithmParameters::OctetKeyPair(_) => Kind::Ed,
            AlgorithmParameters::OctetKey(_) => return None,
        };
        let alg = match jwk.common.key_algorithm {
            Some(a) => Some(a.to_string().parse::<Algorithm>().ok()?),
            None => None,
        };
        if alg.is_some_and(|a| Kind::of(a) != Some(kind)) {
            return None;
        }
        Some(Self {
            kid: jwk.common.key_id.clone(),
            alg,
            key: DecodingKey::from_jwk(jwk).ok()?,
            kind,
        })
    }
}

/// GET `url` through the upstream client and parse the JSON body (at most
/// [`MAX_DOCUMENT`] bytes).
async fn get_json<T: serde::de::DeserializeOwned>(
    url: &str,
    upstream: &Upstream,
    budget: &Budget,
) -> Result<T, String> {
    let req = Request::get(url)
        .header(header::ACCEPT, "application/json")
        .body(body::empty())
        .map_err(|_| format!("bad URL {url}"))?;
    let resp = upstream.send(req).await.map_err(|e| e.to_string())?;
    if resp.status() != StatusCode::OK {
        return Err(format!("{url}: status {}", resp.status()));
    }
    let bytes = match read_bounded(resp.into_body(), MAX_DOCUMENT, None, budget, false, |_| {})
        .await
        .map_err(|e| format!("{url}: {e:?}"))?
    {
        Read::Complete(b) => b.bytes,
        Read::Partial { .. } => return Err(format!("{url}: larger than {MAX_DOCUMENT} bytes")),
    };
    serde_json::from_slice(&bytes).map_err(|e| format!("{url}: {e}"))
}
