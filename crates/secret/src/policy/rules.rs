//! Our rule extensions inside the seal (the Go tool ignores these keys, so a secret
//! relying on them must only be given to this tokenizer): methods, paths, a validity
//! window, an id for audit and revocation, a rate limit and a lifetime cap on uses.

use serde::{Deserialize, Serialize};

use super::PolicyError;
use super::git_refs::GitRefPattern;
use super::limits::RateLimit;
use super::mcp::McpToolPattern;
use super::paths::PathGlob;
use tokenizer_core::time::deserialize_timestamp;

/// A secret's rule extensions (ignored by Go), flattened into the secret's top-level
/// JSON; every key is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRules {
    /// Methods the secret may be used with (case-insensitive). `[]` allows none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_methods: Option<Vec<String>>,
    /// Path globs, matched on the normalized path. `[]` allows none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_paths: Option<Vec<PathGlob>>,
    /// Ref patterns a push (`git-receive-pack`) may create, update or delete; any
    /// other ref in a push refuses it whole. `[]` allows no push (clones and fetches
    /// still work).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_git_refs: Option<Vec<GitRefPattern>>,
    /// MCP tools (names, `*` patterns) a `tools/call` may run; `tools/list` answers are
    /// filtered to them. `[]` allows no tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_mcp_tools: Option<Vec<McpToolPattern>>,
    /// Unix seconds (RFC 3339 accepted on input) before which the secret is refused.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_timestamp"
    )]
    pub not_before: Option<i64>,
    /// Unix seconds (RFC 3339 accepted on input) from which the secret is refused.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_timestamp"
    )]
    pub expires_at: Option<i64>,
    /// A name for audit logs, revocation and rate limiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Requests per period, per secret: across the fleet with `REDIS_URL`, else per
    /// tokenizer instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Requests this secret may ever make: across the fleet with `REDIS_URL`, else per
    /// instance. The count is kept until `expires_at`, or `MAX_REQUESTS_RETENTION` after
    /// the last use when the secret does not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u64>,
    /// PII scanning for requests using this secret, overriding `PII_ACTION`/`PII_KINDS`:
    /// `{"action":"redact"|"block"|"off","kinds":["email",…]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii: Option<tokenizer_processor::pii::PiiPolicy>,
    /// Set by this tokenizer in a token it derives from an exchange secret: the digest
    /// of that secret's sealed text, so revoking the parent revokes the token too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived_from: Option<String>,
    /// Set by this tokenizer in a derived token: the rate-limit counter (hex) it shares
    /// with the secret it came from. A keyed hash no client can compute, and never
    /// logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_key: Option<String>,
}

impl PolicyRules {
    /// The validity window at `now` (unix seconds).
    pub fn check_time(&self, now: i64) -> Result<(), PolicyError> {
        if self.not_before.is_some_and(|t| now < t) {
            return Err(PolicyError::NotYetValid);
        }
        if self.expires_at.is_some_and(|t| now >= t) {
            return Err(PolicyError::Expired);
        }
        Ok(())
    }

    /// Is `method` in `allowed_methods` (case-insensitive)? Without the list, any method is.
    pub fn check_method(&self, method: &str) -> Result<(), PolicyError> {
        match &self.allowed_methods {
            Some(allowed) if !allowed.iter().any(|m| m.eq_ignore_ascii_case(method)) => {
                Err(PolicyError::MethodNotAllowed(method.to_owned()))
            }
            _ => Ok(()),
        }
    }

    /// `path` must already be normalized.
    pub fn check_path(&self, path: &str) -> Result<(), PolicyError> {
        match &self.allowed_paths {
            Some(globs) if !globs.iter().any(|g| g.matches(path)) => {
                Err(PolicyError::PathNotAllowed(path.to_owned()))
            }
            _ => Ok(()),
        }
    }

    /// Do any rules need the request path?
    pub fn needs_path(&self) -> bool {
        self.allowed_paths.is_some()
    }

    /// Are there method or path rules (which an upstream could be made to read
    /// differently)?
    pub fn restricts_request(&self) -> bool {
        self.allowed_methods.is_some() || self.allowed_paths.is_some()
    }

    /// Are there method rules (which a method override could get around)?
    pub fn restricts_method(&self) -> bool {
        self.allowed_methods.is_some()
    }

    /// A copy safe to log: the rate-limit counter's key is redacted.
    pub fn stripped(&self) -> Self {
        Self {
            rate_limit_key: self
                .rate_limit_key
                .as_ref()
                .map(|_| tokenizer_core::REDACTED.to_owned()),
            ..self.clone()
        }
    }

    /// True when no rule is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> PolicyRules {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn methods_and_paths() {
        let r = rules(r#"{"allowed_methods":["get","POST"],"allowed_paths":["/v1/**"]}"#);
        assert!(r.check_method("GET").is_ok());
        assert!(r.check_method("post").is_ok());
        assert!(r.check_method("DELETE").is_err());
        assert!(r.check_path("/v1/models").is_ok());
        assert!(r.check_path("/admin").is_err());
        let none = rules(r#"{"allowed_methods":[],"allowed_paths":[]}"#);
        assert!(none.check_method("GET").is_err());
        assert!(none.check_path("/").is_err());
        assert!(PolicyRules::default().check_path("/anything").is_ok());
    }

    #[test]
    fn validity_window() {
        let r = rules(r#"{"not_before":100,"expires_at":"1970-01-01T00:03:20Z"}"#);
        assert_eq!(r.expires_at, Some(200));
        assert_eq!(r.check_time(99), Err(PolicyError::NotYetValid));
        assert!(r.check_time(100).is_ok());
        assert_eq!(r.check_time(200), Err(PolicyError::Expired));
        let out = serde_json::to_string(&r).unwrap();
        assert_eq!(out, r#"{"not_before":100,"expires_at":200}"#);
    }

    #[test]
    fn malformed_rules_are_refused() {
        for bad in [
            r#"{"allowed_methods":"GET"}"#,
            r#"{"allowed_paths":["v1"]}"#,
            r#"{"expires_at":"soon"}"#,
            r#"{"rate_limit":"lots"}"#,
            r#"{"id":5}"#,
        ] {
            assert!(serde_json::from_str::<PolicyRules>(bad).is_err(), "{bad}");
        }
    }
}
