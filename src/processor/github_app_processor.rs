//! `github_app_processor`: a GitHub App installation-token exchange. The request gets
//! `Authorization: Bearer <RS256 app JWT>`, GitHub's headers, the installation path and
//! an empty body; the 201 response is sealed into a `token %s` secret pinned to
//! api.github.com (see [`super::token_response`]).

use http::{HeaderName, HeaderValue, header};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::jwt_sign::{JwtKey, now};
use super::{ProcessorError, Step};
use crate::secret::{Params, SecretBytes};

pub const DEFAULT_TOKEN_URL: &str =
    "https://api.github.com/app/installations/{installation_id}/access_tokens";
pub const GITHUB_API_HOST: &str = "api.github.com";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitHubAppConfig {
    /// PEM text (RSA only), base64-encoded on the wire.
    #[serde(default)]
    pub private_key: SecretBytes,
    #[serde(default)]
    pub app_id: String,
    #[serde(default)]
    pub installation_id: String,
    #[serde(default)]
    pub token_url: String,
}

impl GitHubAppConfig {
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
        let iat = now();
        let jwt = key.sign(&json!({"iss": self.app_id, "iat": iat, "exp": iat + 600}));
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", jwt.as_str()))
            .map_err(|_| ProcessorError::BadValue)?;
        auth.set_sensitive(true);
        out.extend([
            Step::SetHeader {
                name: header::AUTHORIZATION,
                value: auth,
            },
            Step::SetHeader {
                name: header::ACCEPT,
                value: HeaderValue::from_static("application/vnd.github+json"),
            },
            Step::SetHeader {
                name: HeaderName::from_static("x-github-api-version"),
                value: HeaderValue::from_static("2022-11-28"),
            },
            Step::SetPath(path.to_owned()),
            Step::SetBody {
                body: SecretBytes::default(),
                content_type: None,
            },
            Step::RemoveHeader(header::ACCEPT_ENCODING),
        ]);
        Ok(())
    }

    pub fn stripped(&self) -> Self {
        Self {
            private_key: SecretBytes::redacted(),
            ..self.clone()
        }
    }
}
