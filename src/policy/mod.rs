//! Request validators: where may a secret be used? Failures are 400.

mod hosts;

pub use hosts::{HostPattern, HostRules};

/// Why a secret may not be used for this request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// The request has no host to check.
    #[error("no host in request")]
    NoHost,
    /// The host is not in `allowed_hosts` / does not match `allowed_host_pattern`.
    #[error("secret not valid for {0}")]
    HostNotAllowed(String),
}
