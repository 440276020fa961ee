//! `macaroon_auth`: a superfly/macaroon token minted with the sealed root key, whose
//! caveats allow the request (see [`super::macaroon`]).

use serde::{Deserialize, Serialize};

use super::macaroon::{self, Caveat, Macaroon, MacaroonError, RequestFacts};
use super::{AuthError, Candidates};
use tokenizer_core::SecretBytes;

/// `macaroon_auth` (Go's `MacaroonAuthConfig`): the caller must present a tokenizer
/// macaroon minted with the sealed key whose caveats allow the request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacaroonAuth {
    /// The HMAC root key (base64 on the wire; 32 random bytes from `macaroon genkey`).
    #[serde(default)]
    pub key: SecretBytes,
}

impl MacaroonAuth {
    /// The config whose tokens are minted with `key`.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: SecretBytes::new(key),
        }
    }

    /// Some candidate holds a macaroon minted with this key whose caveats all allow the
    /// request at `now_unix`. A refusal says why (never with key material).
    pub fn authorize_request(
        &self,
        candidates: &Candidates,
        facts: &RequestFacts<'_>,
        now_unix: i64,
    ) -> Result<(), AuthError> {
        self.check(candidates, facts, now_unix)
            .map_err(AuthError::Macaroon)
    }

    /// [`MacaroonAuth::authorize_request`] with the detailed reason.
    pub fn check(
        &self,
        candidates: &Candidates,
        facts: &RequestFacts<'_>,
        now_unix: i64,
    ) -> Result<(), MacaroonError> {
        macaroon::authorize(self.key.expose(), candidates, facts, now_unix)
    }

    /// A new token for this key (Go's `MacaroonAuthConfig.Macaroon`).
    pub fn mint(&self, caveats: Vec<Caveat>) -> Macaroon {
        macaroon::mint(self.key.expose(), caveats)
    }

    /// A copy with the key replaced by `REDACTED`, for logs.
    pub fn stripped(&self) -> Self {
        Self {
            key: SecretBytes::redacted(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::header::PROXY_AUTHORIZATION;
    use http::{HeaderMap, HeaderValue};

    use super::*;

    #[test]
    fn keeps_the_go_json_shape_and_strips_the_key() {
        let auth: MacaroonAuth = serde_json::from_str(r#"{"key":"a2V5"}"#).unwrap();
        assert_eq!(auth.key.expose(), b"key");
        assert_eq!(serde_json::to_string(&auth).unwrap(), r#"{"key":"a2V5"}"#);
        assert_eq!(
            serde_json::to_string(&auth.stripped()).unwrap(),
            r#"{"key":"REDACTED"}"#
        );
        assert_eq!(format!("{auth:?}"), "MacaroonAuth { key: REDACTED }");
    }

    #[test]
    fn authorizes_its_own_tokens_only() {
        let auth = MacaroonAuth::new(b"k".repeat(32));
        let token = auth.mint(vec![Caveat::RequestMethod(vec!["GET".to_owned()])]);
        let mut map = HeaderMap::new();
        map.append(
            PROXY_AUTHORIZATION,
            HeaderValue::from_str(&token.to_header()).unwrap(),
        );
        let candidates = Candidates::from_headers([&map]);
        let facts = |method| RequestFacts {
            method,
            path: "/",
            host: "example.com",
        };
        assert_eq!(
            auth.authorize_request(&candidates, &facts("GET"), 0),
            Ok(())
        );
        assert_eq!(
            auth.authorize_request(&candidates, &facts("PUT"), 0),
            Err(AuthError::Macaroon(MacaroonError::Denied {
                what: "method",
                value: "PUT".to_owned()
            }))
        );
        let other = MacaroonAuth::new(b"o".repeat(32));
        assert_eq!(
            other.check(&candidates, &facts("GET"), 0),
            Err(MacaroonError::UnknownKey)
        );
        assert_eq!(
            MacaroonAuth::default().check(&candidates, &facts("GET"), 0),
            Err(MacaroonError::EmptyKey)
        );
    }
}
