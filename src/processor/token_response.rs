//! Sealing token-exchange responses (`jwt_processor`, `client_credentials_processor`,
//! `github_app_processor`): the access token never reaches the client in plaintext.
//!
//! The expected response (200 `{"access_token",…}`, or 201 `{"token",…}` from GitHub)
//! is replaced by `{"sealed_token","expires_in","token_type":"sealed"}`, where the sealed
//! token is a new `inject_processor` secret for this tokenizer, with the original auth
//! and host validators and an `expires_at`. Fail closed: any other response that carries
//! something token-shaped is refused with 502; other responses (errors) pass through.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::github_app_processor::GITHUB_API_HOST;
use super::{FmtDst, InjectConfig, ProcessorConfig};
use crate::auth::AuthConfig;
use crate::body::{self, Body};
use crate::policy::time::now_unix;
use crate::policy::{HostRules, PolicyRules};
use crate::secret::{SealKey, Secret, SecretString};

/// Token responses larger than this are refused (they are buffered to be sealed).
const MAX_TOKEN_RESPONSE: usize = 1 << 20;
/// Lifetime assumed when the response does not say.
const DEFAULT_LIFETIME: i64 = 3600;
/// Field names that carry credentials in token responses.
const TOKEN_FIELDS: &[&str] = &["access_token", "refresh_token", "id_token", "token"];

/// Which exchange a secret performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// RFC 6749 token response on 200 (jwt, client credentials).
    OAuth,
    /// GitHub installation token on 201.
    GitHubApp,
}

/// Why a token response was refused (502). Fixed texts: never the response body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenResponseError {
    #[error("token response could not be read")]
    Read,
    #[error("token response too large")]
    TooLarge,
    #[error("token response is compressed")]
    Encoded,
    #[error("token response is not the expected JSON")]
    NotJson,
    #[error("token response missing {0}")]
    MissingToken(&'static str),
    #[error("unexpected token response refused: it carries a credential")]
    Unexpected,
}

/// Seals the response of one token exchange.
#[derive(Debug)]
pub struct TokenSealer {
    kind: Exchange,
    auth: AuthConfig,
    hosts: HostRules,
    id: Option<String>,
}

impl ProcessorConfig {
    /// The token exchange this processor performs, looking inside `multi_processor`
    /// (Go never seals nested exchanges, which leaks the token; here they are sealed).
    pub fn exchange(&self) -> Option<Exchange> {
        match self {
            Self::Jwt(_) | Self::ClientCredentials(_) => Some(Exchange::OAuth),
            Self::GitHubApp(_) => Some(Exchange::GitHubApp),
            Self::Multi(all) => all.iter().find_map(Self::exchange),
            _ => None,
        }
    }

    /// How many token exchanges this processor performs.
    pub fn exchanges(&self) -> usize {
        match self {
            Self::Multi(all) => all.iter().map(Self::exchanges).sum(),
            other => usize::from(other.exchange().is_some()),
        }
    }
}

impl TokenSealer {
    /// The sealer for a secret that performs `kind`: the sealed token inherits the
    /// secret's auth and host validators (GitHub tokens are pinned to api.github.com).
    pub fn new(kind: Exchange, secret: &Secret) -> Self {
        let hosts = match kind {
            Exchange::OAuth => secret.hosts.clone(),
            Exchange::GitHubApp => HostRules {
                allowed_hosts: Some(vec![GITHUB_API_HOST.to_owned()]),
                allowed_host_pattern: None,
            },
        };
        Self {
            kind,
            auth: secret.auth.clone(),
            hosts,
            id: secret.policy.id.clone(),
        }
    }

    /// Replace a token response by its sealed form, pass other responses through, and
    /// refuse anything that would leak a credential.
    pub async fn seal(
        &self,
        response: Response<Body>,
        seal_key: &SealKey,
    ) -> Result<Response<Body>, TokenResponseError> {
        let (mut head, body) = response.into_parts();
        let encoded = head
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        let bytes = read_bounded(body).await?;
        let expected = match self.kind {
            Exchange::OAuth => StatusCode::OK,
            Exchange::GitHubApp => StatusCode::CREATED,
        };
        if head.status != expected {
            if encoded || carries_token(&bytes) {
                return Err(TokenResponseError::Unexpected);
            }
            return Ok(Response::from_parts(head, body::full(bytes)));
        }
        if encoded {
            return Err(TokenResponseError::Encoded);
        }
        let (token, lifetime) = match self.kind {
            Exchange::OAuth => oauth_token(&bytes)?,
            Exchange::GitHubApp => github_token(&bytes)?,
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
        Secret {
            processor: ProcessorConfig::Inject(InjectConfig { token, fmt_dst }),
            auth: self.auth.clone(),
            hosts: self.hosts.clone(),
            policy: PolicyRules {
                expires_at: Some(now_unix() + lifetime),
                id: self.id.clone(),
                ..PolicyRules::default()
            },
        }
    }
}

async fn read_bounded(mut body: Body) -> Result<Bytes, TokenResponseError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| TokenResponseError::Read)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_TOKEN_RESPONSE {
                return Err(TokenResponseError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// `{"access_token": …, "expires_in": N}`.
fn oauth_token(bytes: &[u8]) -> Result<(SecretString, i64), TokenResponseError> {
    #[derive(Deserialize)]
    struct Wire {
        #[serde(default)]
        access_token: SecretString,
        #[serde(default)]
        expires_in: Option<Value>,
    }
    let wire: Wire = serde_json::from_slice(bytes).map_err(|_| TokenResponseError::NotJson)?;
    if wire.access_token.is_empty() {
        return Err(TokenResponseError::MissingToken("access_token"));
    }
    // Some servers send the number as a string.
    let lifetime = match wire.expires_in {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .filter(|n| *n > 0)
    .unwrap_or(DEFAULT_LIFETIME);
    Ok((wire.access_token, lifetime))
}

/// `{"token": …, "expires_at": RFC 3339}`.
fn github_token(bytes: &[u8]) -> Result<(SecretString, i64), TokenResponseError> {
    #[derive(Deserialize)]
    struct Wire {
        #[serde(default)]
        token: SecretString,
        #[serde(default)]
        expires_at: Option<String>,
    }
    let wire: Wire = serde_json::from_slice(bytes).map_err(|_| TokenResponseError::NotJson)?;
    if wire.token.is_empty() {
        return Err(TokenResponseError::MissingToken("token"));
    }
    let lifetime = wire
        .expires_at
        .and_then(|t| crate::policy::time::parse_timestamp(&t).ok())
        .map(|t| t - now_unix())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_LIFETIME);
    Ok((wire.token, lifetime))
}

/// Does a body that is not the expected token response still carry a credential?
/// JSON with a token field at any depth, or a form body (`access_token=…`).
fn carries_token(bytes: &[u8]) -> bool {
    fn walk(v: &Value) -> bool {
        match v {
            Value::Object(map) => map.iter().any(|(k, v)| {
                (TOKEN_FIELDS.contains(&k.to_ascii_lowercase().as_str())
                    && !matches!(v, Value::Null))
                    || walk(v)
            }),
            Value::Array(items) => items.iter().any(walk),
            _ => false,
        }
    }
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return walk(&v);
    }
    form_urlencoded::parse(bytes)
        .any(|(k, v)| TOKEN_FIELDS.contains(&k.to_ascii_lowercase().as_str()) && !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spots_tokens_in_unexpected_shapes() {
        assert!(carries_token(br#"{"access_token":"x"}"#));
        assert!(carries_token(br#"{"data":{"Token":"x"}}"#));
        assert!(carries_token(br#"[{"id_token":"x"}]"#));
        assert!(carries_token(b"access_token=x&token_type=bearer"));
        assert!(!carries_token(
            br#"{"error":"invalid_grant","error_description":"bad"}"#
        ));
        assert!(!carries_token(br#"{"token":null}"#));
        assert!(!carries_token(b"Bad Request"));
    }

    #[test]
    fn reads_lifetimes() {
        let (t, n) = oauth_token(br#"{"access_token":"a","expires_in":3599}"#).unwrap();
        assert_eq!((t.expose(), n), ("a", 3599));
        assert_eq!(
            oauth_token(br#"{"access_token":"a","expires_in":"120"}"#)
                .unwrap()
                .1,
            120
        );
        assert_eq!(
            oauth_token(br#"{"access_token":"a"}"#).unwrap().1,
            DEFAULT_LIFETIME
        );
        assert_eq!(
            oauth_token(br#"{"token":"a"}"#).unwrap_err(),
            TokenResponseError::MissingToken("access_token")
        );
        assert_eq!(
            oauth_token(b"<html>").unwrap_err(),
            TokenResponseError::NotJson
        );
        let (_, n) =
            github_token(br#"{"token":"ghs","expires_at":"2999-01-01T00:00:00Z"}"#).unwrap();
        assert!(n > 3600);
        assert_eq!(
            github_token(br#"{"token":"ghs","expires_at":"2000-01-01T00:00:00Z"}"#)
                .unwrap()
                .1,
            DEFAULT_LIFETIME
        );
    }
}
