//! One issuer's signing keys: discovery (`/.well-known/openid-configuration`) and the
//! JWKS it names, fetched through the upstream client (so the destination guard,
//! `UPSTREAM_CA_FILE` and `UPSTREAM_RESOLVE` apply), and cached.
//!
//! - The keys are fetched when first needed, and again when they are an hour old.
//! - A token whose `kid` is not among them triggers a fetch, at most once per `refresh`
//!   (30 s by default): a flood of made-up `kid`s costs the issuer one request per period.
//! - A failed fetch keeps the last good keys until they are a day old.
//! - One fetch at a time per issuer; requests that need it wait for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{Request, StatusCode, header};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;

use crate::body::{self, Budget, Read, read_bounded};
use crate::upstream::Upstream;

/// Keys are fetched again when this old.
const FRESH: Duration = Duration::from_secs(3600);
/// Keys are used at most this long after their fetch, whatever happens.
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// The largest discovery document or JWKS read.
const MAX_DOCUMENT: usize = 256 * 1024;
/// The most keys kept per issuer.
const MAX_KEYS: usize = 64;
/// How long a fetch (discovery and JWKS) may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct IssuerKeys {
    issuer: String,
    refresh: Duration,
    state: Mutex<State>,
    /// Counts successful fetches: a token verified under an older set is checked again.
    generation: AtomicU64,
}

#[derive(Default)]
struct State {
    keys: Vec<Key>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
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
            state: Mutex::new(State::default()),
            generation: AtomicU64::new(0),
        }
    }

    pub(super) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Which fetch of the keys is in use (bumped by every successful fetch).
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The key for a token's `kid` and `alg`, fetching the keys when the cache says so,
    /// and the generation of the key set it came from.
    pub(super) async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        upstream: &Upstream,
        budget: &Budget,
    ) -> Result<(DecodingKey, u64), String> {
        let kind = Kind::of(alg).ok_or("algorithm not accepted")?;
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let age = state.fetched.map(|f| now.saturating_duration_since(f));
        let since_attempt = state.attempted.map(|a| now.saturating_duration_since(a));
        let found = state.find(kid, alg, kind);
        let stale = age.is_none_or(|a| a >= FRESH);
        let may_retry = since_attempt.is_none_or(|a| a >= self.refresh);
        if (stale || found.is_none()) && may_retry {
            state.attempted = Some(now);
            match tokio::time::timeout(FETCH_TIMEOUT, self.fetch(upstream, budget)).await {
                Ok(Ok(keys)) => {
                    tracing::info!(issuer = %self.issuer, keys = keys.len(), "OIDC keys fetched");
                    state.keys = keys;
                    state.fetched = Some(now);
                    self.generation.fetch_add(1, Ordering::AcqRel);
                }
                Ok(Err(e)) => {
                    tracing::warn!(issuer = %self.issuer, error = %e, "OIDC keys: fetch failed");
                }
                Err(_) => tracing::warn!(issuer = %self.issuer, "OIDC keys: fetch timed out"),
            }
        }
        if state
            .fetched
            .is_none_or(|f| now.saturating_duration_since(f) >= MAX_AGE)
        {
            return Err("the issuer's keys are unavailable".to_owned());
        }
        // Bumped only under this lock: the generation of the keys searched.
        let generation = self.generation();
        state
            .find(kid, alg, kind)
            .map(|k| (k, generation))
            .ok_or_else(|| "unknown signing key".to_owned())
    }

    async fn fetch(&self, upstream: &Upstream, budget: &Budget) -> Result<Vec<Key>, String> {
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
        Ok(set
            .keys
            .iter()
            .filter_map(Key::from_jwk)
            .take(MAX_KEYS)
            .collect())
    }
}

impl State {
    /// A key for `kid` (any key of the right kind when the token names none) that can
    /// verify `alg`.
    fn find(&self, kid: Option<&str>, alg: Algorithm, kind: Kind) -> Option<DecodingKey> {
        self.keys
            .iter()
            .filter(|k| k.kind == kind && k.alg.is_none_or(|a| a == alg))
            .find(|k| kid.is_none() || k.kid.as_deref() == kid)
            .map(|k| k.key.clone())
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
