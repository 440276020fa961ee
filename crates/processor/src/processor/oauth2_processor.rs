//! `oauth2_processor`: `Authorization: Bearer <access or refresh token>`, or body
//! replacement when the request carries a non-empty `placeholder` param.

use http::HeaderValue;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::inject_body_processor::PARAM_PLACEHOLDER;
use super::{ProcessorError, Step};
use tokenizer_core::{Params, SecretString};

const PARAM_SUBTOKEN: &str = "st";

/// An OAuth 2 token pair, as sealed (by hand, or from a token exchange's response).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthToken {
    /// The token sent by default.
    #[serde(default)]
    pub access_token: SecretString,
    /// The token sent with `st=refresh`; may be empty.
    #[serde(default, skip_serializing_if = "SecretString::is_empty")]
    pub refresh_token: SecretString,
}

/// The sealed `oauth2_processor` object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuth2Config {
    /// The tokens; without them every request fails with a missing token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<OAuthToken>,
}

// === impl OAuthToken ===

impl OAuthToken {
    /// `st=refresh` selects the refresh token; anything else the access token.
    pub fn select(token: Option<&Self>, params: &Params) -> Result<SecretString, ProcessorError> {
        let token = token.ok_or(ProcessorError::MissingToken)?;
        let chosen = if params.get(PARAM_SUBTOKEN).map(String::as_str) == Some("refresh") {
            &token.refresh_token
        } else {
            &token.access_token
        };
        if chosen.is_empty() {
            return Err(ProcessorError::MissingToken);
        }
        Ok(chosen.clone())
    }

    /// Both tokens replaced by `REDACTED`, for logs.
    pub fn stripped() -> Self {
        Self {
            access_token: SecretString::redacted(),
            refresh_token: SecretString::redacted(),
        }
    }
}

// === impl OAuth2Config ===

impl OAuth2Config {
    /// Push `Authorization: Bearer <token>`, or a `Replace` step when the request has a
    /// non-empty `placeholder` param.
    pub fn build(&self, params: &Params, out: &mut Vec<Step>) -> Result<(), ProcessorError> {
        let token = OAuthToken::select(self.token.as_ref(), params)?;
        if let Some(placeholder) = params.get(PARAM_PLACEHOLDER).filter(|p| !p.is_empty()) {
            out.extend(Step::replace(placeholder, &token));
            return Ok(());
        }
        let text = Zeroizing::new(format!("Bearer {}", token.expose()));
        let mut value =
            HeaderValue::from_bytes(text.as_bytes()).map_err(|_| ProcessorError::BadValue)?;
        value.set_sensitive(true);
        out.push(Step::SetHeader {
            name: http::header::AUTHORIZATION,
            value,
        });
        Ok(())
    }

    /// A copy with every credential replaced by `REDACTED`, for logs.
    pub fn stripped(&self) -> Self {
        Self {
            token: Some(OAuthToken::stripped()),
        }
    }
}
