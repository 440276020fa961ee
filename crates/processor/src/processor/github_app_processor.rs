//! `github_app_processor`: a GitHub App installation-token exchange. The request gets
//! `Authorization: Bearer <RS256 app JWT>`, GitHub's headers, the installation path and
//! an empty body; the 201 response is sealed into a `token %s` secret pinned to the
//! secret's hosts, or the token URL's host (see [`super::token_response`]).

use http::{HeaderName, HeaderValue, header};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::jwt_sign::{JwtKey, now};
use super::step::{JwtStep, JwtUse};
use super::{ProcessorError, Step};
use tokenizer_core::{Params, SecretBytes};

pub const DEFAULT_TOKEN_URL: &str =
    "https://api.github.com/app/installations/{installation_id}/access_tokens";

/// The sealed `github_app_processor` object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitHubAppConfig {
    /// PEM text (RSA only), base64-encoded on the wire.
    #[serde(default)]
    pub private_key: SecretBytes,
    /// The App's id: the app JWT's `iss`; required.
    #[serde(default)]
    pub app_id: String,
    /// The installation whose token is requested (fills `{installation_id}`); required.
    #[serde(default)]
    pub installation_id: String,
    /// The token URL template; only its path is used. Empty: GitHub.com's
    /// `/app/installations/{installation_id}/access_tokens`.
    #[serde(default)]
    pub token_url: String,
}

impl GitHubAppConfig {
    /// Push the steps of the exchange: the app JWT as bearer, GitHub's headers, the
    /// installation path and an empty body.
    pub fn build(&self, _params: &Params, out: &mut Vec<Step>) -> Result<(), ProcessorError> {
        let missing = |f: &str| ProcessorError::BadConfig(format!("missing {f}"));
        if self.private_key.is_empty() {
            return Err(missing("private key"));
        }
        if self.app_id.is_empty() {
            return Err(missing("app_id"));
        }
        if self.installation_id.is_empty() {
            return Err(missing("installation_id"));
        }
        let key = JwtKey::from_pem(self.private_key.expose())?;
        if !key.is_rsa() {
            return Err(ProcessorError::BadConfig(
                "GitHub App requires an RSA private key".to_owned(),
            ));
        }
        let path = self.installation_path()?;
        let iat = now();
        out.extend([
            Step::SignJwt(Box::new(JwtStep {
                key: std::sync::Arc::new(key),
                claims: json!({"iss": self.app_id, "iat": iat, "exp": iat + 600}),
                use_as: JwtUse::Bearer,
            })),
            Step::SetHeader {
                name: header::ACCEPT,
                value: HeaderValue::from_static("application/vnd.github+json"),
            },
            Step::SetHeader {
                name: HeaderName::from_static("x-github-api-version"),
                value: HeaderValue::from_static("2022-11-28"),
            },
            Step::SetPath(path),
            Step::SetBody {
                body: SecretBytes::default(),
                content_type: None,
            },
            Step::RemoveHeader(header::ACCEPT_ENCODING),
        ]);
        Ok(())
    }

    /// The path the request is sent to: `token_url`'s, with the installation id.
    pub fn installation_path(&self) -> Result<String, ProcessorError> {
        let template = if self.token_url.is_empty() {
            DEFAULT_TOKEN_URL
        } else {
            &self.token_url
        };
        let url: http::Uri = template
            .replace("{installation_id}", &self.installation_id)
            .parse()
            .map_err(|_| ProcessorError::BadConfig("invalid token_url".to_owned()))?;
        let path = url.path();
        if path.is_empty() || path == "/" && !template.ends_with('/') {
            return Err(ProcessorError::BadConfig(
                "token_url must include a path".to_owned(),
            ));
        }
        Ok(path.to_owned())
    }

    /// A copy with every credential replaced by `REDACTED`, for logs.
    pub fn stripped(&self) -> Self {
        Self {
            private_key: SecretBytes::redacted(),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::processor::test_keys::WireSecret as Secret;
    use crate::processor::test_keys::{self, TestKey, build_error, request, run};
    use crate::processor::{Exchange, ProcessorConfig};

    fn config(key: &TestKey) -> GitHubAppConfig {
        GitHubAppConfig {
            private_key: SecretBytes::new(key.pem.as_bytes().to_vec()),
            app_id: "123456".to_owned(),
            installation_id: "789012".to_owned(),
            token_url: String::new(),
        }
    }

    /// Run `config` over a client POST with a stale JSON body and other headers.
    async fn exchange(config: GitHubAppConfig, uri: &str) -> (http::request::Parts, bytes::Bytes) {
        let req = request(
            "POST",
            uri,
            &[
                ("content-type", "application/json"),
                ("content-length", "17"),
                ("accept", "*/*"),
                ("accept-encoding", "gzip"),
                ("authorization", "token stale"),
                ("x-github-api-version", "2020-01-01"),
            ],
            r#"{"repository":1} "#,
        );
        run(&ProcessorConfig::GitHubApp(config), &Params::new(), req).await
    }

    #[tokio::test]
    async fn app_jwt_headers_path_and_empty_body() {
        let key = test_keys::rsa_pkcs1();
        let (parts, body) = exchange(
            config(key),
            "http://api.github.com/anything/here?per_page=1",
        )
        .await;

        let auth = parts
            .headers
            .get_all("authorization")
            .iter()
            .collect::<Vec<_>>();
        assert_eq!(auth.len(), 1);
        assert!(auth[0].is_sensitive());
        let jwt = auth[0]
            .to_str()
            .unwrap()
            .strip_prefix("Bearer ")
            .expect("Bearer scheme");
        let (header, claims) = key.verify(jwt);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(claims["iss"], json!("123456"), "iss is a string");
        let now = tokenizer_core::time::now_unix();
        let iat = claims["iat"].as_i64().unwrap();
        let exp = claims["exp"].as_i64().unwrap();
        assert!((now - 5..=now + 1).contains(&iat), "{claims}");
        assert!((599..=601).contains(&(exp - iat)), "{claims}");
        for absent in ["aud", "scope", "sub"] {
            assert!(claims.get(absent).is_none(), "{absent} in {claims}");
        }
        assert_eq!(claims.as_object().unwrap().len(), 3, "{claims}");

        assert_eq!(parts.headers["accept"], "application/vnd.github+json");
        assert_eq!(parts.headers["x-github-api-version"], "2022-11-28");
        assert_eq!(parts.headers.get_all("accept").iter().count(), 1);
        assert!(parts.headers.get("accept-encoding").is_none());

        // The path is replaced; scheme, host, query and method are the client's.
        assert_eq!(
            parts.uri,
            "http://api.github.com/app/installations/789012/access_tokens?per_page=1"
        );
        assert_eq!(parts.method, "POST");

        // The stale body is cleared.
        assert!(body.is_empty());
        assert_eq!(parts.headers["content-length"], "0");
        assert!(parts.headers.get("content-type").is_none());
    }

    #[tokio::test]
    async fn custom_template_path() {
        let key = test_keys::rsa_pkcs8();
        let (parts, body) = exchange(
            GitHubAppConfig {
                token_url: "https://ghe.example.test/api/v3/app/installations/{installation_id}/access_tokens"
                    .to_owned(),
                ..config(key)
            },
            "http://ghe.example.test/",
        )
        .await;
        assert_eq!(
            parts.uri.path(),
            "/api/v3/app/installations/789012/access_tokens"
        );
        assert_eq!(parts.uri.host(), Some("ghe.example.test"));
        assert!(body.is_empty());
        let jwt = parts.headers["authorization"].to_str().unwrap()[7..].to_owned();
        key.verify(&jwt);

        // Every occurrence is replaced; a template naming another host does not move
        // the request.
        let (parts, _) = exchange(
            GitHubAppConfig {
                token_url: "https://other.example.test/i/{installation_id}/{installation_id}"
                    .to_owned(),
                ..config(key)
            },
            "http://api.github.com/x",
        )
        .await;
        assert_eq!(parts.uri, "http://api.github.com/i/789012/789012");
    }

    #[test]
    fn build_errors() {
        let rsa = test_keys::rsa_pkcs1();
        let cases = [
            (
                GitHubAppConfig {
                    private_key: SecretBytes::default(),
                    ..config(rsa)
                },
                "missing private key",
            ),
            (
                GitHubAppConfig {
                    private_key: SecretBytes::new(b"not-a-real-key".to_vec()),
                    ..config(rsa)
                },
                "invalid PEM-encoded private key",
            ),
            (
                GitHubAppConfig {
                    app_id: String::new(),
                    ..config(rsa)
                },
                "missing app_id",
            ),
            (
                GitHubAppConfig {
                    installation_id: String::new(),
                    ..config(rsa)
                },
                "missing installation_id",
            ),
            (
                config(test_keys::p256_pkcs8()),
                "GitHub App requires an RSA private key",
            ),
            (
                config(test_keys::p256_sec1()),
                "GitHub App requires an RSA private key",
            ),
            (
                config(test_keys::p384()),
                "GitHub App requires an RSA private key",
            ),
            (
                config(test_keys::ed25519()),
                "GitHub App requires an RSA private key",
            ),
            (
                GitHubAppConfig {
                    token_url: "https://ghe.example.test".to_owned(),
                    ..config(rsa)
                },
                "token_url must include a path",
            ),
            (
                GitHubAppConfig {
                    token_url: "https://bad host/{installation_id}".to_owned(),
                    ..config(rsa)
                },
                "invalid token_url",
            ),
        ];
        for (c, want) in cases {
            assert_eq!(build_error(&ProcessorConfig::GitHubApp(c)), want);
        }
    }

    #[test]
    fn strip_redacts_only_the_key() {
        let key = test_keys::rsa_pkcs1();
        let full = config(key);
        let stripped = full.stripped();
        assert_eq!(stripped.private_key, SecretBytes::redacted());
        assert_eq!(
            GitHubAppConfig {
                private_key: full.private_key.clone(),
                ..stripped.clone()
            },
            full
        );
        assert_eq!(
            serde_json::to_value(&stripped).unwrap(),
            json!({
                "private_key": "REDACTED",
                "app_id": "123456",
                "installation_id": "789012",
                "token_url": "",
            })
        );
    }

    #[test]
    fn json_round_trip() {
        let key = test_keys::rsa_pkcs1();
        let wire = json!({
            "github_app_processor": {
                "private_key": key.b64(),
                "app_id": "123456",
                "installation_id": "789012",
                "token_url": "https://ghe.example.test/api/v3/app/installations/{installation_id}/access_tokens",
            },
            "bearer_auth": {"digest": "K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols="},
        });
        let secret = Secret::from_json(wire.to_string().as_bytes()).unwrap();
        let out: Value = serde_json::from_str(&secret.to_json()).unwrap();
        assert_eq!(out["github_app_processor"], wire["github_app_processor"]);
        assert_eq!(
            Secret::from_json(secret.to_json().as_bytes()).unwrap(),
            secret
        );
        assert_eq!(secret.processor.exchange(), Some(Exchange::GitHubApp));
        assert_eq!(
            DEFAULT_TOKEN_URL,
            "https://api.github.com/app/installations/{installation_id}/access_tokens"
        );
    }
}
