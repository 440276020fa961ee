//! `oidc_auth`: the caller presents a workload's OIDC token (GitHub Actions, GitLab CI,
//! Kubernetes service accounts, cloud workloads) as `Proxy-Authorization: Bearer <jwt>`.
//! The token's signature, `iss`, `exp` and `nbf` are verified beforehand by
//! the proxy's verifier, for issuers in `OIDC_ISSUERS` only; here the secret's
//! own issuer, audience and claims are checked against the verified tokens.
//!
//! `{"issuer": "https://token.actions.githubusercontent.com", "audience": "tokenizer",
//!   "claims": {"repository": "acme/app", "ref": "refs/heads/*"}}`
//!
//! A claim is named by its top-level key, or by a JSON pointer (`/kubernetes.io/namespace`);
//! its value must equal the pattern or match its `*`s (an array matches when one of its
//! items does; numbers and booleans compare as text).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AuthError;
use super::VerifiedTokens;
use super::glob::AnyGlob;

/// The most claims one secret may require.
const MAX_CLAIMS: usize = 32;
/// The longest issuer or audience.
const MAX_NAME: usize = 512;

/// `oidc_auth` (not in Go): the caller must present a verified OIDC token from `issuer`,
/// for `audience`, whose claims match `claims`. Unknown keys are refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireOidc")]
pub struct OidcAuth {
    /// `issuer`: the token's `iss`, exactly (1 to 512 characters); it must also be in
    /// `OIDC_ISSUERS`.
    pub issuer: String,
    /// `audience`: must equal the token's `aud`, or one of its items (1 to 512
    /// characters).
    pub audience: String,
    /// `claims`: claim name (top-level key or JSON pointer) to the pattern its value must
    /// match; at most 32.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, AnyGlob>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireOidc {
    issuer: String,
    audience: String,
    #[serde(default)]
    claims: BTreeMap<String, AnyGlob>,
}

impl TryFrom<WireOidc> for OidcAuth {
    type Error = String;

    fn try_from(w: WireOidc) -> Result<Self, String> {
        if w.issuer.is_empty() || w.issuer.len() > MAX_NAME {
            return Err("oidc_auth: issuer must be 1 to 512 characters".to_owned());
        }
        if w.audience.is_empty() || w.audience.len() > MAX_NAME {
            return Err("oidc_auth: audience must be 1 to 512 characters".to_owned());
        }
        if w.claims.len() > MAX_CLAIMS {
            return Err(format!("oidc_auth: at most {MAX_CLAIMS} claims"));
        }
        Ok(Self {
            issuer: w.issuer,
            audience: w.audience,
            claims: w.claims,
        })
    }
}

impl OidcAuth {
    /// May one of the verified tokens use this secret?
    pub fn authorize(&self, tokens: &VerifiedTokens) -> Result<(), AuthError> {
        if !tokens.issuer_allowed(&self.issuer) {
            return Err(AuthError::Oidc(format!(
                "issuer {} is not in OIDC_ISSUERS",
                self.issuer
            )));
        }
        let mut reason = None;
        for token in tokens.from_issuer(&self.issuer) {
            match self.check(&token.claims) {
                Ok(()) => return Ok(()),
                Err(why) => reason = Some(why),
            }
        }
        let reason = reason
            .or_else(|| tokens.failure(&self.issuer).map(str::to_owned))
            .unwrap_or_else(|| format!("no token from {}", self.issuer));
        Err(AuthError::Oidc(reason))
    }

    fn check(&self, claims: &serde_json::Map<String, Value>) -> Result<(), String> {
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == self.audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&self.audience)),
            _ => false,
        };
        if !aud_ok {
            return Err("wrong audience".to_owned());
        }
        for (name, pattern) in &self.claims {
            let value = if name.starts_with('/') {
                Value::Object(claims.clone()).pointer(name).cloned()
            } else {
                claims.get(name).cloned()
            };
            let matches = |v: &Value| match v {
                Value::String(s) => pattern.0.matches(s),
                Value::Number(n) => pattern.0.matches(&n.to_string()),
                Value::Bool(b) => pattern.0.matches(&b.to_string()),
                _ => false,
            };
            let ok = match &value {
                Some(Value::Array(items)) => items.iter().any(matches),
                Some(v) => matches(v),
                None => false,
            };
            if !ok {
                return Err(format!("claim {name} does not match"));
            }
        }
        Ok(())
    }
}
