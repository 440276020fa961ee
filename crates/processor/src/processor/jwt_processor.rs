//! `jwt_processor`: the RFC 7523 JWT-bearer grant (Google service accounts). The request
//! body becomes `assertion=<signed JWT>&grant_type=…jwt-bearer`; the token response is
//! sealed (see [`super::token_response`]). `token_url` is only the JWT's `aud`: the
//! client sends the request to the token endpoint itself.

use http::HeaderValue;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::jwt_sign::{JwtKey, now};
use super::step::{JwtStep, JwtUse};
use super::{ProcessorError, Step};
use tokenizer_core::{Params, SecretBytes};

pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// The sealed `jwt_processor` object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtConfig {
    /// PEM text, base64-encoded on the wire (a Go `[]byte`).
    #[serde(default)]
    pub private_key: SecretBytes,
    /// The service account's email: the JWT's `iss`; required.
    #[serde(default)]
    pub email: String,
    /// The user to act as: the JWT's `sub` (left out when empty); a `sub` param overrides it.
    #[serde(default)]
    pub sub: String,
    /// The JWT's `scope`; a `scopes` param overrides it.
    #[serde(default)]
    pub scopes: String,
    /// The JWT's `aud`. Empty: `https://oauth2.googleapis.com/token`.
    #[serde(default)]
    pub token_url: String,
}

impl JwtConfig {
    /// Push the steps of the grant: sign the assertion (valid one hour) into the body,
    /// and drop `Accept-Encoding`.
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
        out.extend([
            Step::SignJwt(Box::new(JwtStep {
                key: std::sync::Arc::new(key),
                claims,
                use_as: JwtUse::Assertion,
            })),
            Step::RemoveHeader(http::header::ACCEPT_ENCODING),
        ]);
        Ok(())
    }

    /// A copy with every credential replaced by `REDACTED`, for logs.
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::processor::test_keys::WireSecret as Secret;
    use crate::processor::test_keys::{
        self, TestKey, build_error, form_pairs, params, request, run,
    };
    use crate::processor::{Exchange, ProcessorConfig};

    const GRANT_ENCODED: &str = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";

    fn config(key: &TestKey) -> JwtConfig {
        JwtConfig {
            private_key: SecretBytes::new(key.pem.as_bytes().to_vec()),
            email: "svc@project.iam.gserviceaccount.com".to_owned(),
            sub: String::new(),
            scopes: "https://www.googleapis.com/auth/cloud-platform openid".to_owned(),
            token_url: "https://oauth2.example.test/token".to_owned(),
        }
    }

    /// Run `config` with `params` over a POST to the token endpoint carrying a stale
    /// body; return the verified claims, checking the request on the way.
    async fn exchange(key: &TestKey, config: JwtConfig, p: &[(&str, &str)]) -> Value {
        let req = request(
            "POST",
            "https://oauth2.example.test/token?x=1",
            &[
                ("content-type", "application/json"),
                ("content-length", "13"),
                ("accept-encoding", "gzip"),
            ],
            r#"{"stale":1}  "#,
        );
        let (parts, body) = run(&ProcessorConfig::Jwt(config), &params(p), req).await;
        // Method and URL are the client's: token_url is only the audience.
        assert_eq!(parts.method, "POST");
        assert_eq!(parts.uri, "https://oauth2.example.test/token?x=1");
        assert_eq!(
            parts.headers["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(
            parts.headers["content-length"],
            body.len().to_string().as_str()
        );
        assert!(parts.headers.get("accept-encoding").is_none());
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.contains(GRANT_ENCODED), "{text}");
        let pairs = form_pairs(&body);
        assert_eq!(pairs.len(), 2, "{text}");
        assert_eq!(pairs[0].0, "assertion");
        assert_eq!(
            pairs[1],
            (
                "grant_type".to_owned(),
                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned()
            )
        );
        // Exactly Go's body: the JWT needs no escaping.
        assert_eq!(text, format!("assertion={}&{GRANT_ENCODED}", pairs[0].1));
        let (_, claims) = key.verify(&pairs[0].1);
        claims
    }

    fn assert_lifetime(claims: &Value) {
        let now = tokenizer_core::time::now_unix();
        let iat = claims["iat"].as_i64().expect("iat is a number");
        let exp = claims["exp"].as_i64().expect("exp is a number");
        assert!((now - 5..=now + 1).contains(&iat), "iat {iat}, now {now}");
        assert!((3599..=3601).contains(&(exp - iat)), "{claims}");
    }

    #[tokio::test]
    async fn rs256_claims_body_and_headers() {
        let key = test_keys::rsa_pkcs1();
        let claims = exchange(key, config(key), &[]).await;
        assert_eq!(claims["iss"], "svc@project.iam.gserviceaccount.com");
        assert_eq!(
            claims["scope"],
            "https://www.googleapis.com/auth/cloud-platform openid"
        );
        assert_eq!(claims["aud"], "https://oauth2.example.test/token");
        assert!(claims.get("sub").is_none(), "{claims}");
        assert_lifetime(&claims);
        let keys: Vec<&String> = claims.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5, "{claims}");
    }

    #[tokio::test]
    async fn default_aud_is_google() {
        let key = test_keys::rsa_pkcs1();
        let claims = exchange(
            key,
            JwtConfig {
                token_url: String::new(),
                ..config(key)
            },
            &[],
        )
        .await;
        assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");
        assert_eq!(DEFAULT_TOKEN_URL, "https://oauth2.googleapis.com/token");
    }

    #[tokio::test]
    async fn scope_is_always_present() {
        let key = test_keys::rsa_pkcs1();
        let claims = exchange(
            key,
            JwtConfig {
                scopes: String::new(),
                ..config(key)
            },
            &[],
        )
        .await;
        assert_eq!(claims["scope"], "");
    }

    #[tokio::test]
    async fn sub_and_scopes_params_override_the_config() {
        let key = test_keys::ed25519();
        let configured = JwtConfig {
            sub: "config-user@example.com".to_owned(),
            scopes: "config-scope".to_owned(),
            ..config(key)
        };
        // The config's sub is used without a param.
        let claims = exchange(key, configured.clone(), &[]).await;
        assert_eq!(claims["sub"], "config-user@example.com");
        assert_eq!(claims["scope"], "config-scope");

        let claims = exchange(
            key,
            configured.clone(),
            &[("sub", "param-user@example.com"), ("scopes", "a b")],
        )
        .await;
        assert_eq!(claims["sub"], "param-user@example.com");
        assert_eq!(claims["scope"], "a b");

        // A param sub without a config sub.
        let claims = exchange(key, config(key), &[("sub", "param-user@example.com")]).await;
        assert_eq!(claims["sub"], "param-user@example.com");

        // The key's presence is what counts: an empty param clears the config value.
        let claims = exchange(key, configured, &[("sub", ""), ("scopes", "")]).await;
        assert!(claims.get("sub").is_none(), "{claims}");
        assert_eq!(claims["scope"], "");

        // Other params are ignored.
        let claims = exchange(key, config(key), &[("aud", "x"), ("iss", "y")]).await;
        assert_eq!(claims["aud"], "https://oauth2.example.test/token");
        assert_eq!(claims["iss"], "svc@project.iam.gserviceaccount.com");
    }

    #[tokio::test]
    async fn the_algorithm_follows_the_key() {
        for key in test_keys::all() {
            let claims = exchange(key, config(key), &[]).await;
            assert_eq!(claims["iss"], "svc@project.iam.gserviceaccount.com");
            assert_lifetime(&claims);
        }
    }

    #[tokio::test]
    async fn only_the_first_pem_block_counts() {
        let key = test_keys::p384();
        let mut two = config(key);
        let both = format!("{}{}", key.pem, test_keys::rsa_pkcs1().pem);
        two.private_key = SecretBytes::new(both.into_bytes());
        exchange(key, two, &[]).await;
    }

    #[test]
    fn build_errors() {
        let key = test_keys::rsa_pkcs1();
        let cases = [
            (
                JwtConfig {
                    private_key: SecretBytes::default(),
                    ..config(key)
                },
                "missing private key",
            ),
            (
                JwtConfig {
                    private_key: SecretBytes::new(b"not-a-real-key".to_vec()),
                    ..config(key)
                },
                "invalid PEM-encoded private key",
            ),
            (
                JwtConfig {
                    private_key: SecretBytes::new(
                        b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\n"
                            .to_vec(),
                    ),
                    ..config(key)
                },
                "unsupported private key format",
            ),
            (
                JwtConfig {
                    email: String::new(),
                    ..config(key)
                },
                "missing email",
            ),
        ];
        for (config, want) in cases {
            let err = build_error(&ProcessorConfig::Jwt(config));
            assert_eq!(err, want);
        }
    }

    #[test]
    fn strip_redacts_only_the_key() {
        let key = test_keys::rsa_pkcs1();
        let full = JwtConfig {
            sub: "user".to_owned(),
            ..config(key)
        };
        let stripped = full.stripped();
        assert_eq!(stripped.private_key, SecretBytes::redacted());
        assert_eq!(
            JwtConfig {
                private_key: full.private_key.clone(),
                ..stripped.clone()
            },
            full
        );
        let json = serde_json::to_value(&stripped).unwrap();
        assert_eq!(json["private_key"], "REDACTED");
        assert_eq!(json["email"], "svc@project.iam.gserviceaccount.com");
        assert_eq!(json["sub"], "user");
        assert_eq!(json["token_url"], "https://oauth2.example.test/token");
        let secret = Secret::from_json(
            json!({"jwt_processor": serde_json::to_value(&full).unwrap(), "no_auth": {}})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let logged = secret.stripped_json();
        assert!(!logged.contains(&key.b64()), "{logged}");
        assert!(logged.contains(r#""private_key":"REDACTED""#), "{logged}");
    }

    #[test]
    fn json_round_trip() {
        let key = test_keys::rsa_pkcs1();
        let wire = json!({
            "jwt_processor": {
                "private_key": key.b64(),
                "email": "svc@example.com",
                "sub": "",
                "scopes": "a b",
                "token_url": "",
            },
            "bearer_auth": {"digest": "K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols="},
            "allowed_hosts": ["oauth2.googleapis.com"],
        });
        let secret = Secret::from_json(wire.to_string().as_bytes()).unwrap();
        let ProcessorConfig::Jwt(c) = &secret.processor else {
            panic!("not a jwt_processor: {secret:?}");
        };
        assert_eq!(c.private_key.expose(), key.pem.as_bytes());
        assert_eq!(c.scopes, "a b");
        let out: Value = serde_json::from_str(&secret.to_json()).unwrap();
        // Every field is always emitted, as in Go.
        assert_eq!(out["jwt_processor"], wire["jwt_processor"]);
        assert_eq!(
            Secret::from_json(secret.to_json().as_bytes()).unwrap(),
            secret
        );
        // Absent fields decode as empty.
        let sparse = Secret::from_json(
            json!({"jwt_processor": {"email": "e"}, "no_auth": {}})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let out: Value = serde_json::from_str(&sparse.to_json()).unwrap();
        assert_eq!(
            out["jwt_processor"],
            json!({"private_key": "", "email": "e", "sub": "", "scopes": "", "token_url": ""})
        );
    }

    #[test]
    fn is_an_oauth_exchange_top_level_or_nested() {
        let jwt = ProcessorConfig::Jwt(JwtConfig::default());
        assert_eq!(jwt.exchange(), Some(Exchange::OAuth));
        let multi = ProcessorConfig::Multi(vec![
            ProcessorConfig::Multi(vec![]),
            ProcessorConfig::Multi(vec![jwt.clone()]),
        ]);
        assert_eq!(multi.exchange(), Some(Exchange::OAuth));
        assert_eq!(multi.exchanges(), 1);
        assert_eq!(
            ProcessorConfig::Multi(vec![jwt.clone(), jwt]).exchanges(),
            2
        );
    }
}
