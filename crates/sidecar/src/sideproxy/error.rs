//! Everything that can stop a request at the sidecar, and how each becomes a response
//! and an audit decision.

use http::{Response, StatusCode};

use super::TokenizerError;
use tokenizer_audit::audit::{Decision, IntoErrorResponse, error_response};
use tokenizer_http::body::Body;
use tokenizer_net::upstream::DialError;

/// Everything that can stop a request at the sidecar.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// The host is neither a target nor (for CONNECT) a passthrough host.
    #[error("host not allowed: {0}")]
    NotAllowed(String),
    /// The request cannot be handled as sent.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Forwarding through the tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// A passthrough dial failed or was refused by the destination guard.
    #[error("passthrough: {0}")]
    Passthrough(#[from] DialError),
    /// A DNS name that is neither a target, a passthrough host nor in `DNS_ALLOW`.
    #[error("dns: name not allowed (not a target, passthrough host or DNS_ALLOW name)")]
    DnsRefused,
    /// A plain-HTTP passthrough request got no answer from the upstream.
    #[error("passthrough: the upstream did not answer")]
    PassthroughFailed,
}

impl SidecarError {
    /// The HTTP status the client gets for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotAllowed(_) | Self::DnsRefused | Self::Passthrough(DialError::Denied(_)) => {
                StatusCode::FORBIDDEN
            }
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Tokenizer(TokenizerError::Timeout) | Self::Passthrough(DialError::Timeout) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Self::Tokenizer(_) | Self::Passthrough(_) | Self::PassthroughFailed => {
                StatusCode::BAD_GATEWAY
            }
        }
    }

    /// The one-line body the client sees (a denied address stays in the log only).
    pub fn public_message(&self) -> String {
        match self {
            Self::Passthrough(DialError::Denied(_)) => "destination not allowed (a loopback, \
                 private or reserved address; UPSTREAM_ALLOW_CIDRS admits it)"
                .to_owned(),
            other => other.to_string(),
        }
    }

    /// The plain-text error response.
    pub fn into_response(self) -> Response<Body> {
        error_response(self.status(), &self.public_message())
    }
}

impl IntoErrorResponse for SidecarError {
    fn into_error_response(self) -> Response<Body> {
        self.into_response()
    }

    fn decision(&self) -> Decision {
        match self {
            Self::NotAllowed(_)
            | Self::DnsRefused
            | Self::BadRequest(_)
            | Self::Passthrough(DialError::Denied(_)) => Decision::Denied,
            Self::Tokenizer(_) | Self::Passthrough(_) | Self::PassthroughFailed => Decision::Error,
        }
    }
}
