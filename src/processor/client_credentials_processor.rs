//! `client_credentials_processor`: the OAuth 2 client-credentials grant (RFC 6749
//! §4.4). The request body becomes the grant form; the token response is sealed (see
//! [`super::token_response`]). As in Go, `token_url` is required but the request goes
//! wherever the client sent it.

use serde::{Deserialize, Serialize};

use super::jwt_processor::{exchange_body, form};
use super::{ProcessorError, Step};
use crate::secret::{Params, SecretString};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCredentialsConfig {
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: SecretString,
    #[serde(default)]
    pub token_url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scopes: String,
}

impl ClientCredentialsConfig {
    pub fn build(&self, _params: &Params, out: &mut Vec<Step>) -> Result<(), ProcessorError> {
        let missing = |f: &str| ProcessorError::BadConfig(format!("missing {f}"));
        if self.client_id.is_empty() {
            return Err(missing("client_id"));
        }
        if self.client_secret.is_empty() {
            return Err(missing("client_secret"));
        }
        if self.token_url.is_empty() {
            return Err(missing("token_url"));
        }
        let mut pairs = vec![
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("grant_type", "client_credentials"),
        ];
        if !self.scopes.is_empty() {
            pairs.push(("scope", &self.scopes));
        }
        out.extend(exchange_body(form(&pairs)));
        Ok(())
    }

    pub fn stripped(&self) -> Self {
        Self {
            client_secret: SecretString::redacted(),
            ..self.clone()
        }
    }
}
