//! `client_credentials_processor`: the OAuth 2 client-credentials grant (RFC 6749
//! §4.4). The request body becomes the grant form; the token response is sealed (see
//! [`super::token_response`]). As in Go, `token_url` is required but the request goes
//! wherever the client sent it.

use serde::{Deserialize, Serialize};

use super::jwt_processor::{exchange_body, form};
use super::{ProcessorError, Step};
use tokenizer_core::{Params, SecretString};

/// The sealed `client_credentials_processor` object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCredentialsConfig {
    /// The form's `client_id`; required.
    #[serde(default)]
    pub client_id: String,
    /// The form's `client_secret`; required.
    #[serde(default)]
    pub client_secret: SecretString,
    /// The token endpoint; required (as in Go) but not used to route the request.
    #[serde(default)]
    pub token_url: String,
    /// The form's `scope`, sent only when not empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scopes: String,
}

impl ClientCredentialsConfig {
    /// Push the steps that make the body the grant form (and drop `Accept-Encoding`).
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

    /// A copy with every credential replaced by `REDACTED`, for logs.
    pub fn stripped(&self) -> Self {
        Self {
            client_secret: SecretString::redacted(),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::processor::test_keys::WireSecret as Secret;
    use crate::processor::test_keys::{build_error, form_pairs, params, request, run};
    use crate::processor::{Exchange, ProcessorConfig};

    fn config(scopes: &str) -> ClientCredentialsConfig {
        ClientCredentialsConfig {
            client_id: "my-client".to_owned(),
            client_secret: SecretString::new("s3cr3t &=+%/?"),
            token_url: "https://auth.example.test/oauth/token".to_owned(),
            scopes: scopes.to_owned(),
        }
    }

    async fn body_of(config: ClientCredentialsConfig) -> (http::request::Parts, String) {
        let req = request(
            "POST",
            "https://elsewhere.example.test/token",
            &[
                ("content-type", "application/json"),
                ("transfer-encoding", "chunked"),
                ("accept-encoding", "br"),
            ],
            r#"{"grant_type":"password","client_secret":"stale"}"#,
        );
        let (parts, body) = run(
            &ProcessorConfig::ClientCredentials(config),
            &Params::new(),
            req,
        )
        .await;
        assert_eq!(
            parts.headers["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(
            parts.headers["content-length"],
            body.len().to_string().as_str()
        );
        assert!(parts.headers.get("transfer-encoding").is_none());
        assert!(parts.headers.get("accept-encoding").is_none());
        // token_url is never used: the request goes where the client sent it.
        assert_eq!(parts.uri, "https://elsewhere.example.test/token");
        assert_eq!(parts.method, "POST");
        (parts, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn body_is_the_grant_form_without_scope_when_unset() {
        let (_, body) = body_of(config("")).await;
        assert_eq!(
            body,
            "client_id=my-client&client_secret=s3cr3t+%26%3D%2B%25%2F%3F&grant_type=client_credentials"
        );
        assert_eq!(
            form_pairs(body.as_bytes()),
            [
                ("client_id".to_owned(), "my-client".to_owned()),
                ("client_secret".to_owned(), "s3cr3t &=+%/?".to_owned()),
                ("grant_type".to_owned(), "client_credentials".to_owned()),
            ]
        );
    }

    #[tokio::test]
    async fn scope_only_when_set() {
        let (_, body) = body_of(config("read:all write")).await;
        assert!(
            body.ends_with("&grant_type=client_credentials&scope=read%3Aall+write"),
            "{body}"
        );
        let pairs = form_pairs(body.as_bytes());
        assert_eq!(pairs.len(), 4);
        assert_eq!(pairs[3], ("scope".to_owned(), "read:all write".to_owned()));
    }

    #[tokio::test]
    async fn params_do_not_change_the_grant() {
        let req = request("POST", "https://auth.example.test/t", &[], "");
        let p = params(&[("scopes", "admin"), ("sub", "root")]);
        let (_, body) = run(&ProcessorConfig::ClientCredentials(config("")), &p, req).await;
        let pairs = form_pairs(&body);
        assert!(
            pairs.iter().all(|(k, _)| k != "scope" && k != "sub"),
            "{pairs:?}"
        );
    }

    #[test]
    fn each_required_field_missing_is_an_error() {
        let cases = [
            (
                ClientCredentialsConfig {
                    client_id: String::new(),
                    ..config("s")
                },
                "missing client_id",
            ),
            (
                ClientCredentialsConfig {
                    client_secret: SecretString::default(),
                    ..config("s")
                },
                "missing client_secret",
            ),
            (
                ClientCredentialsConfig {
                    token_url: String::new(),
                    ..config("s")
                },
                "missing token_url",
            ),
        ];
        for (c, want) in cases {
            let err = build_error(&ProcessorConfig::ClientCredentials(c));
            assert_eq!(err, want);
            assert!(!err.contains("s3cr3t"));
        }
        // Scopes are optional.
        let mut steps = Vec::new();
        config("").build(&Params::new(), &mut steps).unwrap();
    }

    #[test]
    fn strip_redacts_only_the_client_secret() {
        let full = config("read");
        let stripped = full.stripped();
        assert_eq!(stripped.client_secret.expose(), "REDACTED");
        assert_eq!(
            ClientCredentialsConfig {
                client_secret: full.client_secret.clone(),
                ..stripped.clone()
            },
            full
        );
        assert_eq!(
            serde_json::to_value(&stripped).unwrap(),
            json!({
                "client_id": "my-client",
                "client_secret": "REDACTED",
                "token_url": "https://auth.example.test/oauth/token",
                "scopes": "read",
            })
        );
    }

    #[test]
    fn json_round_trip_with_scopes_omitted_when_empty() {
        let wire = json!({
            "client_credentials_processor": {
                "client_id": "id",
                "client_secret": "cs",
                "token_url": "https://t.example/token",
                "scopes": "a b",
            },
            "bearer_auth": {"digest": "K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols="},
        });
        let secret = Secret::from_json(wire.to_string().as_bytes()).unwrap();
        let out: Value = serde_json::from_str(&secret.to_json()).unwrap();
        assert_eq!(
            out["client_credentials_processor"],
            wire["client_credentials_processor"]
        );
        assert_eq!(
            Secret::from_json(secret.to_json().as_bytes()).unwrap(),
            secret
        );

        let no_scopes = json!({
            "client_credentials_processor": {
                "client_id": "id", "client_secret": "cs", "token_url": "https://t.example/token"
            },
            "no_auth": {},
        });
        let secret = Secret::from_json(no_scopes.to_string().as_bytes()).unwrap();
        let out: Value = serde_json::from_str(&secret.to_json()).unwrap();
        assert_eq!(
            out["client_credentials_processor"],
            no_scopes["client_credentials_processor"]
        );
        assert_eq!(secret.processor.exchange(), Some(Exchange::OAuth));
    }
}
