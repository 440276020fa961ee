//! The one place where a failure becomes an HTTP status and a public message.
//!
//! 400 bad request (header, secret, validator, destination), 407 caller not authorized,
//! 413 body too large to buffer, 502 upstream failure, 500 internal. Bodies are one
//! short line of text; no variant carries secret material, so none can leak it.

use http::{HeaderValue, Response, StatusCode, header};

use tokenizer_audit::audit::{Decision, IntoErrorResponse, error_response};
use tokenizer_http::body::Body;
use tokenizer_http::body::ReadError;
use tokenizer_http::reflection::GuardError;
use tokenizer_net::upstream::UpstreamError;
use tokenizer_processor::processor::ProcessorError;
use tokenizer_secret::auth::{AuthError, FlySrcError};
use tokenizer_secret::exchange::TokenResponseError;
use tokenizer_secret::policy::{PolicyError, Refusal};
use tokenizer_secret::secret::SecretError;

/// Everything that can stop a proxied request.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A `Proxy-Tokenizer` value could not be parsed, opened or decoded.
    #[error("bad request: {0}")]
    Secret(#[from] SecretError),
    /// The caller may not use a secret.
    #[error("unauthorized to use secret: not authorized: {0}")]
    Auth(#[from] AuthError),
    /// A validator refused the request.
    #[error("request validator failed: {0}")]
    Policy(#[from] PolicyError),
    /// An MCP tool call `allowed_mcp_tools` does not allow (403): the JSON-RPC error
    /// answer, and the refused tools' names for the log.
    #[error("request validator failed: mcp tool {1} not allowed")]
    McpRefused(serde_json::Value, String),
    /// A processor could not be built or run.
    #[error("bad request: {0}")]
    Processor(#[from] ProcessorError),
    /// No sealed secret and `OPEN_PROXY` is off.
    #[error("bad request: missing Proxy-Tokenizer header")]
    NoSecrets,
    /// The request cannot be proxied as sent (scheme, port, host, framing).
    #[error("bad request: {0}")]
    Target(&'static str),
    /// The Host names this tokenizer (transparent mode loop).
    #[error("circular request")]
    Circular,
    /// Upstream dial refused by the guard, or the exchange failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// `REQUIRE_FLYSRC` and the request has no valid Fly-Src.
    #[error("bad request: Fly-Src required: {0}")]
    FlySrcRequired(FlySrcError),
    /// A token-exchange response could not be sealed, or would leak a credential.
    #[error("bad gateway: {0}")]
    TokenResponse(TokenResponseError),
    /// PII scanning refused the body, or could not read it.
    #[error("{0}")]
    Pii(tokenizer_processor::pii::PiiError),
    /// A secret's `rate_limit` or `max_requests` is spent, no counter is free for it,
    /// or the fleet's counters are unreachable with `REDIS_FAILURE=closed` (503).
    #[error("{}", rate_limit_message(*.0))]
    RateLimited(Refusal),
    /// A credential the reflection guard cannot take (too long).
    #[error("bad request: {0}")]
    Guard(#[from] GuardError),
    /// A guarded response the guard cannot read (compressed, or an unknown transfer
    /// coding): the client could decode what the guard could not search.
    #[error("bad gateway: upstream sent an encoded response the reflection guard cannot read")]
    UnreadableResponse,
}

/// The challenge of every 407.
pub const PROXY_CHALLENGE: &str = "Basic realm=\"tokenizer\"";

fn rate_limit_message(refusal: Refusal) -> String {
    match refusal {
        Refusal::Wait(wait) => format!("rate limited: retry in {}s", retry_secs(wait)),
        Refusal::Full(wait) => format!(
            "rate limited: this request carries more limited secrets than RATE_LIMIT_KEYS; retry in {}s",
            retry_secs(wait)
        ),
        Refusal::Exhausted => "rate limited: this secret's max_requests are used up".to_owned(),
        Refusal::Unavailable => {
            "service unavailable: the fleet's limits and revocations cannot be checked".to_owned()
        }
    }
}

/// The status of a body that could not be read into memory.
fn read_status(e: ReadError) -> StatusCode {
    match e {
        ReadError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ReadError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        ReadError::Stalled => StatusCode::REQUEST_TIMEOUT,
        ReadError::Read => StatusCode::BAD_REQUEST,
    }
}

/// Whole seconds to wait, at least one.
fn retry_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl ProxyError {
    /// The HTTP status the client gets for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Auth(_) => StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            Self::Policy(PolicyError::GitRefNotAllowed { .. }) | Self::McpRefused(..) => {
                StatusCode::FORBIDDEN
            }
            Self::Processor(ProcessorError::Body(e))
            | Self::Pii(tokenizer_processor::pii::PiiError::Body(e)) => read_status(*e),
            Self::Upstream(UpstreamError::Failed(_))
            | Self::TokenResponse(_)
            | Self::UnreadableResponse => StatusCode::BAD_GATEWAY,
            Self::Upstream(UpstreamError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            Self::RateLimited(Refusal::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Pii(tokenizer_processor::pii::PiiError::Blocked(_)) => StatusCode::FORBIDDEN,
            Self::Pii(tokenizer_processor::pii::PiiError::TooLarge) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::FlySrcRequired(_)
            | Self::Guard(_)
            | Self::Secret(_)
            | Self::Policy(_)
            | Self::Processor(_)
            | Self::NoSecrets
            | Self::Target(_)
            | Self::Circular
            | Self::Upstream(UpstreamError::Denied(_) | UpstreamError::RequestBody) => {
                StatusCode::BAD_REQUEST
            }
        }
    }

    /// The one-line body the client sees.
    pub fn public_message(&self) -> String {
        match self {
            // The exact address stays in the log; the client learns only the rule.
            Self::Upstream(UpstreamError::Denied(_)) => "bad request: destination not allowed \
                 (a loopback, private or reserved address; UPSTREAM_ALLOW_CIDRS admits it, \
                 UPSTREAM_RESOLVE pins a name)"
                .to_owned(),
            Self::Upstream(UpstreamError::Failed(detail)) => format!("bad gateway: {detail}"),
            Self::Upstream(UpstreamError::RequestBody) => {
                "bad request: request body could not be read".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// The plain-text error response, with `Retry-After` (whole seconds) when the request
    /// was rate-limited.
    pub fn into_response(self) -> Response<Body> {
        if let Self::McpRefused(answer, _) = &self {
            // MCP clients read a JSON-RPC error: the refused call becomes a tool error.
            let mut resp = Response::new(tokenizer_http::body::full(answer.to_string()));
            *resp.status_mut() = StatusCode::FORBIDDEN;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return resp;
        }
        let mut resp = error_response(self.status(), &self.public_message());
        let retry = match self {
            Self::RateLimited(Refusal::Wait(wait) | Refusal::Full(wait)) => Some(retry_secs(wait)),
            Self::RateLimited(Refusal::Unavailable) => Some(1),
            _ => None,
        };
        if let Some(secs) = retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if resp.status() == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
            // RFC 9110 §15.5.8: a 407 carries a challenge. git, curl, pip and npm send
            // the credentials of their proxy URL only once challenged; Basic carries
            // them (the password is the bearer token).
            resp.headers_mut().insert(
                header::PROXY_AUTHENTICATE,
                HeaderValue::from_static(PROXY_CHALLENGE),
            );
        }
        resp
    }
}

impl IntoErrorResponse for ProxyError {
    fn into_error_response(self) -> Response<Body> {
        self.into_response()
    }

    fn decision(&self) -> Decision {
        match self {
            Self::RateLimited(Refusal::Unavailable) => Decision::Error,
            Self::RateLimited(_) => Decision::RateLimited,
            Self::Pii(
                tokenizer_processor::pii::PiiError::Blocked(_)
                | tokenizer_processor::pii::PiiError::TooLarge,
            ) => Decision::PiiBlocked,
            Self::Upstream(
                UpstreamError::Failed(_) | UpstreamError::Timeout | UpstreamError::RequestBody,
            )
            | Self::TokenResponse(_)
            | Self::UnreadableResponse => Decision::Error,
            _ => Decision::Denied,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(ProxyError::Auth(AuthError::BadProxyAuth).status(), 407);
        assert_eq!(ProxyError::NoSecrets.status(), 400);
        assert_eq!(
            ProxyError::Processor(ProcessorError::Body(ReadError::TooLarge)).status(),
            413
        );
        assert_eq!(
            ProxyError::Processor(ProcessorError::Body(ReadError::Busy)).status(),
            503
        );
        assert_eq!(
            ProxyError::Processor(ProcessorError::Body(ReadError::Stalled)).status(),
            408
        );
        assert_eq!(ProxyError::UnreadableResponse.status(), 502);
        assert_eq!(ProxyError::Processor(ProcessorError::BadFmt).status(), 400);
        assert_eq!(ProxyError::Secret(SecretError::Decryption).status(), 400);
        assert_eq!(
            ProxyError::Upstream(UpstreamError::Failed("x".into())).status(),
            502
        );
    }

    #[test]
    fn a_407_carries_a_challenge_and_nothing_else_does() {
        let resp = ProxyError::Auth(AuthError::BadProxyAuth).into_response();
        assert_eq!(resp.status(), 407);
        assert_eq!(
            resp.headers()[header::PROXY_AUTHENTICATE],
            "Basic realm=\"tokenizer\""
        );
        let resp = ProxyError::NoSecrets.into_response();
        assert!(!resp.headers().contains_key(header::PROXY_AUTHENTICATE));
    }

    #[test]
    fn rate_limits_say_when_to_retry() {
        let resp = ProxyError::RateLimited(Refusal::Wait(std::time::Duration::from_millis(1500)))
            .into_response();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "2");
    }

    #[test]
    fn go_compatible_messages() {
        assert_eq!(
            ProxyError::Auth(AuthError::BadProxyAuth).public_message(),
            "unauthorized to use secret: not authorized: bad or missing proxy auth"
        );
        assert_eq!(
            ProxyError::Policy(PolicyError::HostNotAllowed("h".into())).public_message(),
            "request validator failed: secret not valid for h"
        );
    }
}
