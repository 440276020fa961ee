//! Request validators: where, when and how often may a secret be used? Failures are
//! 400 (429 for rate limits and used-up `max_requests`).

pub mod git_refs;
pub mod go_regexp;
mod hosts;
pub mod limits;
pub mod mcp;
pub mod method_override;
pub mod paths;
pub mod revocation;
mod rules;

pub use git_refs::GitRefPattern;
pub use hosts::{HostPattern, HostRules};
pub use limits::{Limit, Limiter, RateLimit, Refusal};
pub use mcp::McpToolPattern;
pub use paths::{PathError, PathGlob};
pub use revocation::Revocations;
pub use rules::PolicyRules;

/// Why a secret may not be used for this request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// The request has no host to check.
    #[error("no host in request")]
    NoHost,
    /// The host is not in `allowed_hosts` / does not match `allowed_host_pattern`.
    #[error("secret not valid for {0}")]
    HostNotAllowed(String),
    /// The method is not in `allowed_methods`.
    #[error("secret not valid for method {0}")]
    MethodNotAllowed(String),
    /// The normalized path matches no `allowed_paths` glob.
    #[error("secret not valid for path {0}")]
    PathNotAllowed(String),
    /// The path cannot be normalized unambiguously.
    #[error("{0}")]
    BadPath(#[from] PathError),
    /// Before `not_before`.
    #[error("secret not yet valid")]
    NotYetValid,
    /// At or after `expires_at`.
    #[error("secret expired")]
    Expired,
    /// Listed in `REVOKED_SECRETS_FILE`.
    #[error("secret revoked")]
    Revoked,
    /// A method-override header, parameter or body field on a request with method or
    /// path rules.
    #[error("method override headers are not allowed with method or path rules")]
    MethodOverride,
    /// Under method rules, a POST body of a form or JSON type that cannot be read as
    /// one (so it cannot be checked for a method override).
    #[error("a form or JSON body that cannot be read is not allowed with method rules")]
    UnreadableBody,
    /// A push would create, update or delete a ref no `allowed_git_refs` pattern
    /// matches (403).
    #[error("secret not valid for git ref {name} ({change}); allowed_git_refs: {allowed}")]
    GitRefNotAllowed {
        /// The ref (clipped).
        name: String,
        /// What the push would do to it.
        change: git_refs::RefChange,
        /// The patterns of the secret that refused it.
        allowed: String,
    },
    /// A push under `allowed_git_refs` whose commands cannot be read as the server
    /// would read them.
    #[error("{0}")]
    GitPush(#[from] git_refs::GitPushError),
    /// A request under `allowed_mcp_tools` that is not well-formed JSON-RPC.
    #[error("{0}")]
    Mcp(#[from] mcp::McpError),
}
