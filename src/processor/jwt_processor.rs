//! `jwt_processor`: the RFC 7523 JWT-bearer grant (Google service accounts). The request
//! body becomes `assertion=<signed JWT>&grant_type=…jwt-bearer`; the token response is
//! sealed (see [`super::token_response`]). `token_url` is only the JWT's `aud`: the
//! client sends the request to the token endpoint itself.

use http::HeaderValue;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::jwt_sign::{JwtKey, now};
use super::{ProcessorError, Step};
use crate::secret::{Params, SecretBytes};

pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtConfig {
    /// PEM text, base64-encoded on the wire (a Go `[]byte`).
    #[serde(default)]
    pub private_key: SecretBytes,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub scopes: String,
    #[serde(default)]
    pub token_url: String,
}

impl JwtConfig {
    pub fn build(&self, params: &Params, out: &mut Vec<Step>) -> Result<(), ProcessorError> {
        let key = JwtKey::from_pem(self.private_key.expose())?;
        if self.email.is_empty() {
            return Err(ProcessorError::BadConfig("missing email".to_owned()));
        }
        let sub = params.get("sub").unwrap_or(&self.sub);
        let scopes = params.get("scopes").unwrap_or(&self.scopes);
        let aud = if self.token_url.is_empty() {
            DEFAULT_TOKEN_URL
        } else {
            &self.token_url
        };
        let iat = now();
        let mut claims = json!({
            "iss": self.email,
            "scope": scopes,
            "aud": aud,
            "iat": iat,
            "exp": iat + 3600,
        });
        if !sub.is_empty() {
            claims["sub"] = json!(sub);
        }
        let jwt = key.sign(&claims);
        let body = form(&[
            ("assertion", jwt.as_str()),
            ("grant_type", GRANT_JWT_BEARER),
        ]);
        out.extend(exchange_body(body));
        Ok(())
    }

    pub fn stripped(&self) -> Self {
        Self {
            private_key: SecretBytes::redacted(),
            ..self.clone()
        }
    }
}

/// `application/x-www-form-urlencoded`, keys in the given (sorted) order.
pub(super) fn form(pairs: &[(&str, &str)]) -> zeroize::Zeroizing<String> {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    zeroize::Zeroizing::new(s.finish())
}

/// The steps of a token exchange request: the form body, and no compression (the
/// response is read to be sealed).
pub(super) fn exchange_body(body: zeroize::Zeroizing<String>) -> [Step; 2] {
    [
        Step::SetBody {
            body: SecretBytes::new(body.as_bytes().to_vec()),
            content_type: Some(HeaderValue::from_static(
                "application/x-www-form-urlencoded",
            )),
        },
        Step::RemoveHeader(http::header::ACCEPT_ENCODING),
    ]
}
