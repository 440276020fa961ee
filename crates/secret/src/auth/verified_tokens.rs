//! What a request's OIDC tokens proved: the verified tokens (their issuer and claims) and
//! why the others were refused. The verification itself (signatures, issuers' keys) is
//! done before the secrets are checked, by the proxy's verifier; `oidc_auth` rules read
//! the result.

use std::sync::Arc;

use serde_json::{Map, Value};

/// A token whose signature, issuer and validity window verified.
#[derive(Clone, Debug)]
pub struct VerifiedToken {
    /// The token's `iss`, one of `OIDC_ISSUERS`.
    pub issuer: String,
    /// The token's payload: every claim, as JSON.
    pub claims: Map<String, Value>,
}

impl VerifiedToken {
    /// `issuer subject`, for audit lines.
    pub fn identity(&self) -> String {
        let sub = self
            .claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or("?");
        format!("{} {sub}", self.issuer)
    }
}

/// What one request's tokens proved, and why the others did not.
#[derive(Clone, Debug, Default)]
pub struct VerifiedTokens {
    issuers: Arc<[String]>,
    tokens: Vec<VerifiedToken>,
    /// (issuer, reason) for tokens of an allowed issuer that did not verify.
    failures: Vec<(String, String)>,
    /// Tokens taken from the cache of verified tokens (no signature check).
    cache_hits: u64,
}

impl VerifiedTokens {
    /// Is `issuer` one of `OIDC_ISSUERS`?
    pub fn issuer_allowed(&self, issuer: &str) -> bool {
        self.issuers.iter().any(|i| i == issuer)
    }

    /// The verified tokens whose issuer is exactly `issuer`.
    pub fn from_issuer<'a>(&'a self, issuer: &'a str) -> impl Iterator<Item = &'a VerifiedToken> {
        self.tokens.iter().filter(move |t| t.issuer == issuer)
    }

    /// Why a token from `issuer` was refused, if one was.
    pub fn failure(&self, issuer: &str) -> Option<&str> {
        self.failures
            .iter()
            .find(|(i, _)| i == issuer)
            .map(|(_, why)| why.as_str())
    }

    /// The verified tokens.
    pub fn tokens(&self) -> &[VerifiedToken] {
        &self.tokens
    }

    /// How many of them came from the cache of verified tokens.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits
    }
}

impl VerifiedTokens {
    /// Nothing verified yet; `issuers` are those of `OIDC_ISSUERS`.
    pub fn for_issuers(issuers: Arc<[String]>) -> Self {
        Self {
            issuers,
            ..Self::default()
        }
    }

    /// A token that verified now.
    pub fn push(&mut self, token: VerifiedToken) {
        self.tokens.push(token);
    }

    /// A token verified earlier, from the cache of verified tokens.
    pub fn push_cached(&mut self, token: VerifiedToken) {
        self.tokens.push(token);
        self.cache_hits += 1;
    }

    /// A token of an allowed issuer that did not verify, and why.
    pub fn push_failure(&mut self, issuer: String, why: String) {
        self.failures.push((issuer, why));
    }
}
