//! Reading token responses: the expected shapes (RFC 6749, GitHub's installation
//! token), and spotting a credential in anything else.

use serde::Deserialize;
use serde_json::Value;

use super::TokenResponseError;
use tokenizer_core::SecretString;
use tokenizer_core::time::now_unix;

/// Lifetime assumed when the response does not say.
pub(super) const DEFAULT_LIFETIME: i64 = 3600;
/// Field names that carry credentials in token responses.
const TOKEN_FIELDS: &[&str] = &["access_token", "refresh_token", "id_token", "token"];

/// `{"access_token": …, "expires_in": N}`.
pub(super) fn oauth_token(bytes: &[u8]) -> Result<(SecretString, i64), TokenResponseError> {
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
pub(super) fn github_token(bytes: &[u8]) -> Result<(SecretString, i64), TokenResponseError> {
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
        .and_then(|t| tokenizer_core::time::parse_timestamp(&t).ok())
        .map(|t| t - now_unix())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_LIFETIME);
    Ok((wire.token, lifetime))
}

/// Does a body that is not the expected token response still carry a credential?
/// JSON with a token field at any depth, or a string value inside it that quotes one; a
/// form body (`access_token=…`); or any other text quoting a token field (an error page
/// that echoes the upstream's answer).
pub(super) fn carries_token(bytes: &[u8]) -> bool {
    fn walk(v: &Value) -> bool {
        match v {
            Value::Object(map) => map.iter().any(|(k, v)| {
                (TOKEN_FIELDS.contains(&k.to_ascii_lowercase().as_str())
                    && !matches!(v, Value::Null))
                    || walk(v)
            }),
            Value::Array(items) => items.iter().any(walk),
            Value::String(s) => quotes_token_field(s.as_bytes()),
            _ => false,
        }
    }
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return walk(&v);
    }
    form_urlencoded::parse(bytes)
        .any(|(k, v)| TOKEN_FIELDS.contains(&k.to_ascii_lowercase().as_str()) && !v.is_empty())
        || quotes_token_field(bytes)
}

/// A token field name as a whole word, followed (past closing quotes, backslashes and
/// blanks) by `=` or `:`: `access_token=…`, `"access_token": …`, `\"token\":…`. A bare
/// `token:` in prose ("invalid token: expired") does not count; a quoted one does.
fn quotes_token_field(text: &[u8]) -> bool {
    let lower = text.to_ascii_lowercase();
    TOKEN_FIELDS.iter().any(|field| {
        memchr::memmem::find_iter(&lower, field.as_bytes()).any(|at| {
            let before = at.checked_sub(1).map(|i| lower[i]);
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
                return false;
            }
            let quoted = matches!(before, Some(b'"' | b'\'' | b'\\'));
            let next = lower[at + field.len()..]
                .iter()
                .find(|c| !matches!(c, b'"' | b'\'' | b'\\' | b' ' | b'\t'));
            match next {
                Some(b'=') => true,
                Some(b':') => quoted || *field != "token",
                _ => false,
            }
        })
    })
}
