//! Sealing token-exchange responses (`jwt_processor`, `client_credentials_processor`,
//! `github_app_processor`): the access token never reaches the client in plaintext.
//!
//! The expected response (200 `{"access_token",…}`, or 201 `{"token",…}` from GitHub)
//! is replaced by `{"sealed_token","expires_in","token_type":"sealed"}`, where the sealed
//! token is a new `inject_processor` secret for this tokenizer. A derived token is never
//! broader than the secret it came from: it keeps that secret's auth, every rule
//! (methods, paths, validity, PII, rate limit — counted on the parent's counter), its
//! id, and is revoked with it; its hosts are the parent's, or when the parent had none,
//! the token URL's site (see [`derived_hosts`]). Fail closed: any other response that
//! carries something token-shaped is refused with 502; other responses (errors) pass
//! through.
//!
//! Which processors exchange tokens is the processor's business
//! ([`tokenizer_processor::processor::ProcessorConfig::exchange`]); this module handles the answer.

mod derived;
mod response;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

pub use derived::derived_hosts;

use crate::auth::AuthConfig;
use crate::policy::{HostRules, PolicyRules};
use crate::secret::Secret;
use tokenizer_core::time::now_unix;
use tokenizer_core::{SealKey, SecretString};
use tokenizer_http::body::{self, Body, Budget, Read, ReadError, read_bounded};
pub use tokenizer_processor::processor::Exchange;
use tokenizer_processor::processor::{FmtDst, InjectConfig, ProcessorConfig};

/// Token responses larger than this are refused (they are buffered to be sealed).
const MAX_TOKEN_RESPONSE: usize = 1 << 20;

/// Why a token response was refused (502). Fixed texts: never the response body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenResponseError {
    /// The response body failed while being read.
    #[error("token response could not be read")]
    Read,
    /// The response body is over 1 MiB, or over the request's memory budget.
    #[error("token response too large")]
    TooLarge,
    /// The expected response has a `Content-Encoding` other than `identity`.
    #[error("token response is compressed")]
    Encoded,
    /// The expected response is not a JSON object of the expected shape.
    #[error("token response is not the expected JSON")]
    NotJson,
    /// The expected response lacks its token field (`access_token`, or `token` from
    /// GitHub), or it is empty; names the field.
    #[error("token response missing {0}")]
    MissingToken(&'static str),
    /// Another status, with a body that carries a token-shaped field (or is compressed,
    /// so it cannot be checked).
    #[error("unexpected token response refused: it carries a credential")]
    Unexpected,
}

/// Seals the response of one token exchange.
#[derive(Debug)]
pub struct TokenSealer {
    kind: Exchange,
    auth: AuthConfig,
    hosts: HostRules,
    /// The parent's rules, carried into the token.
    policy: PolicyRules,
}

// === impl TokenSealer ===

impl TokenSealer {
    /// The sealer for `secret`, which performs `kind`; `digest` is its sealed text's
    /// and `limit_key` its rate-limit counter, both carried into the token.
    pub fn new(kind: Exchange, secret: &Secret, digest: &str, limit_key: &[u8; 32]) -> Self {
        let hosts = derived_hosts(kind, secret);
        let policy = PolicyRules {
            derived_from: Some(
                secret
                    .policy
                    .derived_from
                    .clone()
                    .unwrap_or_else(|| digest.to_owned()),
            ),
            rate_limit_key: secret.policy.rate_limit.map(|_| hex::encode(limit_key)),
            ..secret.policy.clone()
        };
        Self {
            kind,
            auth: secret.auth.clone(),
            hosts,
            policy,
        }
    }

    /// Replace a token response by its sealed form, pass other responses through, and
    /// refuse anything that would leak a credential.
    /// The response is read into memory (at most 1 MiB, charged to `budget`).
    pub async fn seal(
        &self,
        response: Response<Body>,
        seal_key: &SealKey,
        budget: &Budget,
    ) -> Result<Response<Body>, TokenResponseError> {
        let (mut head, body) = response.into_parts();
        let encoded = tokenizer_http::headers::has_content_coding(&head.headers);
        let bytes = read_response(body, budget).await?;
        let expected = match self.kind {
            Exchange::OAuth => StatusCode::OK,
            Exchange::GitHubApp => StatusCode::CREATED,
        };
        if head.status != expected {
            if encoded || response::carries_token(&bytes) {
                return Err(TokenResponseError::Unexpected);
            }
            return Ok(Response::from_parts(head, body::full(bytes)));
        }
        if encoded {
            return Err(TokenResponseError::Encoded);
        }
        let (token, lifetime) = match self.kind {
            Exchange::OAuth => response::oauth_token(&bytes)?,
            Exchange::GitHubApp => response::github_token(&bytes)?,
        };
        let sealed = self.sealed_secret(token, lifetime).seal(seal_key);
        let shown = if lifetime > 60 {
            lifetime - 60
        } else {
            lifetime
        };
        let out = json!({"sealed_token": sealed, "expires_in": shown, "token_type": "sealed"})
            .to_string();
        head.headers.remove(header::CONTENT_ENCODING);
        head.headers.remove(header::TRANSFER_ENCODING);
        head.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        head.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
        Ok(Response::from_parts(head, body::full(out)))
    }

    fn sealed_secret(&self, token: SecretString, lifetime: i64) -> Secret {
        let fmt_dst = match self.kind {
            Exchange::OAuth => FmtDst::default(),
            Exchange::GitHubApp => FmtDst {
                fmt: "token %s".to_owned(),
                ..FmtDst::default()
            },
        };
        let until = now_unix() + lifetime;
        Secret {
            processor: ProcessorConfig::Inject(InjectConfig { token, fmt_dst }),
            auth: self.auth.clone(),
            hosts: self.hosts.clone(),
            policy: PolicyRules {
                // A sealed token never outlives its parent.
                expires_at: Some(self.policy.expires_at.map_or(until, |t| t.min(until))),
                ..self.policy.clone()
            },
        }
    }
}

async fn read_response(body: Body, budget: &Budget) -> Result<Bytes, TokenResponseError> {
    match read_bounded(body, MAX_TOKEN_RESPONSE, None, budget, false, |_| {}).await {
        Ok(Read::Complete(buffered)) => Ok(buffered.bytes),
        Ok(Read::Partial { .. }) | Err(ReadError::TooLarge) => Err(TokenResponseError::TooLarge),
        Err(_) => Err(TokenResponseError::Read),
    }
}

#[cfg(test)]
mod tests;
