//! Verifying OIDC workload tokens (`oidc_auth`) before the secrets are checked: the
//! verifier, the issuers' key sets and the cache of verified tokens. What a token proved
//! ([`VerifiedTokens`]) is the auth model's; fetching keys is the proxy's (it goes
//! through the upstream client).
//!
//! Only issuers the operator lists in `OIDC_ISSUERS` are ever contacted: a sealed secret
//! names an issuer, but cannot make the proxy fetch anything. For each `Proxy-Authorization`
//! bearer value shaped like a JWT whose (unverified) `iss` is such an issuer, the token is
//! verified with the `jsonwebtoken` crate against the issuer's JWKS ([`keys`]): signature
//! (RS256/384/512, ES256/384, EdDSA only — `none` and HMAC are refused, so a token
//! "signed" with a public key as an HMAC secret goes nowhere), `iss`, `exp` and `nbf`
//! (60 s of clock skew). The audience and claims are each secret's own and are checked
//! in [`super::oidc_auth`]. A token that verified is remembered ([`cache`]) until it
//! expires (at most five minutes), so a workload that sends the same token with every
//! request pays for one signature check.

mod cache;
mod keys;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use cache::VerifiedCache;
use keys::IssuerKeys;
use tokenizer_http::body::Budget;
use tokenizer_net::upstream::Upstream;
use tokenizer_secret::auth::{Candidates, VerifiedToken, VerifiedTokens};

/// Clock skew allowed on `exp` and `nbf`.
pub(crate) const LEEWAY_SECS: u64 = 60;
/// The longest token looked at.
const MAX_TOKEN: usize = 16 * 1024;
/// At most this many bearer values of one request are tried as tokens.
const MAX_TOKENS: usize = 8;
/// The signature algorithms accepted.
const ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The issuers of `OIDC_ISSUERS` and their keys.
pub struct OidcVerifier {
    names: Arc<[String]>,
    issuers: Vec<Arc<IssuerKeys>>,
    verified: VerifiedCache,
}

impl OidcVerifier {
    /// `issuers`: exact `iss` values (https URLs). `refresh`: the least time between two
    /// fetches of an issuer's keys for an unknown `kid`.
    pub fn new(issuers: &[String], refresh: Duration) -> Self {
        Self {
            names: issuers.iter().cloned().collect(),
            issuers: issuers
                .iter()
                .map(|i| Arc::new(IssuerKeys::new(i.clone(), refresh)))
                .collect(),
            verified: VerifiedCache::default(),
        }
    }

    /// Nothing to verify without issuers.
    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Verify every JWT-shaped bearer value from a configured issuer.
    pub async fn verify(
        &self,
        candidates: &Candidates,
        upstream: &Upstream,
        budget: &Budget,
    ) -> VerifiedTokens {
        let mut out = VerifiedTokens::for_issuers(self.names.clone());
        if self.issuers.is_empty() {
            return out;
        }
        for value in candidates
            .values()
            .map(|v| v.expose())
            .filter(|v| looks_like_jwt(v))
            .take(MAX_TOKENS)
        {
            let now = unix_now();
            let generation = |issuer: &str| {
                self.issuers
                    .iter()
                    .find(|k| k.issuer() == issuer)
                    .map(|k| k.generation())
            };
            if let Some(token) = self.verified.get(value, now, generation) {
                out.push_cached(token);
                continue;
            }
            let Some(issuer) = unverified_issuer(value) else {
                continue;
            };
            let Some(keys) = self.issuers.iter().find(|k| k.issuer() == issuer) else {
                continue;
            };
            match verify_one(value, keys, upstream, budget).await {
                Ok((claims, generation)) => {
                    let token = VerifiedToken { issuer, claims };
                    self.verified.insert(value, &token, generation, now);
                    out.push(token);
                }
                Err(why) => out.push_failure(issuer, why),
            }
        }
        out
    }
}

/// Now, in Unix seconds.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Three base64url parts, within the size limit.
fn looks_like_jwt(value: &str) -> bool {
    value.len() <= MAX_TOKEN
        && value.split('.').count() == 3
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The payload's `iss`, read without verifying anything (to pick the keys).
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let doc: Value = serde_json::from_slice(&bytes).ok()?;
    doc.get("iss")?.as_str().map(str::to_owned)
}

/// The claims of a token that verified, and the generation of the issuer's key set it
/// verified with.
async fn verify_one(
    token: &str,
    keys: &Arc<IssuerKeys>,
    upstream: &Upstream,
    budget: &Budget,
) -> Result<(Map<String, Value>, u64), String> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed token".to_owned())?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(format!("algorithm {:?} is not accepted", header.alg));
    }
    let (key, generation) = keys
        .key_for(header.kid.as_deref(), header.alg, upstream, budget)
        .await?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = LEEWAY_SECS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.set_issuer(&[keys.issuer()]);
    validation.set_required_spec_claims(&["exp", "iss"]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .map_err(|e| token_error(&e))?;
    check_times(&data.claims, unix_now())?;
    Ok((data.claims, generation))
}

/// `exp`, `nbf` and `iat` as RFC 7519 has them: numbers (integer or fractional
/// seconds). The JWT library skips a `nbf` it cannot read as an integer (a string, a
/// fraction); here any of them that is not a number refuses the token, and `nbf` and
/// `exp` are checked as numbers whatever their form.
fn check_times(claims: &Map<String, Value>, now: i64) -> Result<(), String> {
    for name in ["exp", "nbf", "iat"] {
        if claims.get(name).is_some_and(|v| !v.is_number()) {
            return Err(format!("token {name} is not a number"));
        }
    }
    let secs = |name: &str| claims.get(name).and_then(Value::as_f64);
    let now = now as f64;
    let leeway = LEEWAY_SECS as f64;
    if secs("nbf").is_some_and(|nbf| nbf > now + leeway) {
        return Err("token not yet valid".to_owned());
    }
    match secs("exp") {
        Some(exp) if exp + leeway > now => Ok(()),
        Some(_) => Err("token expired".to_owned()),
        None => Err("token has no exp".to_owned()),
    }
}

/// A short public reason.
fn token_error(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "token expired".to_owned(),
        ErrorKind::ImmatureSignature => "token not yet valid".to_owned(),
        ErrorKind::InvalidSignature => "bad signature".to_owned(),
        ErrorKind::InvalidIssuer => "wrong issuer".to_owned(),
        ErrorKind::InvalidAlgorithm => "key and algorithm do not match".to_owned(),
        ErrorKind::MissingRequiredClaim(c) => format!("token has no {c}"),
        _ => "invalid token".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_claims_must_be_numbers_and_hold_in_every_form() {
        let now = 1_000_000;
        let claims = |v: Value| v.as_object().unwrap().clone();
        let ok = claims(serde_json::json!({"exp": now + 100, "nbf": now - 10, "iat": now}));
        assert_eq!(check_times(&ok, now), Ok(()));
        let fractional = claims(serde_json::json!({"exp": (now + 100) as f64 + 0.5}));
        assert_eq!(check_times(&fractional, now), Ok(()));
        for (bad, why) in [
            (
                serde_json::json!({"exp": now + 100, "nbf": (now + 3600).to_string()}),
                "nbf is not a number",
            ),
            (
                serde_json::json!({"exp": now + 100, "nbf": (now + 3600) as f64 + 0.5}),
                "not yet valid",
            ),
            (
                serde_json::json!({"exp": (now + 100).to_string()}),
                "exp is not a number",
            ),
            (
                serde_json::json!({"exp": now + 100, "iat": "now"}),
                "iat is not a number",
            ),
            (
                serde_json::json!({"exp": (now - 3600) as f64 + 0.5}),
                "expired",
            ),
            (serde_json::json!({"exp": null}), "exp is not a number"),
        ] {
            let got = check_times(&claims(bad.clone()), now).unwrap_err();
            assert!(got.contains(why), "{bad}: {got}");
        }
    }

    #[test]
    fn only_jwt_shapes_from_a_readable_payload_are_tried() {
        assert!(!looks_like_jwt("caller-password"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c d"));
        assert!(looks_like_jwt("eyJh.eyJp.sig"));
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://issuer.test"}"#);
        assert_eq!(
            unverified_issuer(&format!("eyJhbGciOiJub25lIn0.{payload}.")).as_deref(),
            Some("https://issuer.test")
        );
        assert_eq!(unverified_issuer("a.!!.c"), None);
    }
}
