//! Processors: what a secret does to the request. One file per wire key.
//!
//! A [`ProcessorConfig`] (from the sealed JSON) plus the request's params builds a flat
//! list of [`Step`]s; the steps then run in order over the request head and body.

mod basic_auth_processor;
mod client_credentials_processor;
pub mod fmt_dst;
mod github_app_processor;
mod inject_body_processor;
mod inject_hmac_processor;
mod inject_processor;
mod jwt_processor;
mod jwt_sign;
mod oauth2_body_processor;
mod oauth2_processor;
mod query_param_processor;
pub mod replace;
mod sigv4_processor;
mod step;
#[cfg(test)]
mod test_keys;

use serde::{Deserialize, Serialize, Serializer, ser::SerializeMap};

/// Which token exchange a processor performs (its response is sealed by the secret
/// model's `exchange`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// RFC 6749 token response on 200 (jwt, client credentials).
    OAuth,
    /// GitHub installation token on 201.
    GitHubApp,
}
pub use basic_auth_processor::BasicAuthConfig;
pub use client_credentials_processor::ClientCredentialsConfig;
pub use fmt_dst::FmtDst;
pub use github_app_processor::GitHubAppConfig;
pub use inject_body_processor::InjectBodyConfig;
pub use inject_hmac_processor::HmacConfig;
pub use inject_processor::InjectConfig;
pub use jwt_processor::JwtConfig;
pub use oauth2_body_processor::OAuth2BodyConfig;
pub use oauth2_processor::{OAuth2Config, OAuthToken};
pub use query_param_processor::{QueryParamConfig, set_query_param};
pub use sigv4_processor::SigV4Config;
pub use step::set_path;
pub use step::{JwtStep, JwtUse, Step, StepContext, apply, finish};

use tokenizer_core::{Params, SecretBytes};

/// Why a processor could not be built or run. Messages are fixed texts: none quotes a
/// secret or request content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProcessorError {
    /// The selected token is empty or absent.
    #[error("missing token")]
    MissingToken,
    /// `inject_hmac_processor` without a key.
    #[error("missing hmac key")]
    MissingHmacKey,
    /// `inject_hmac_processor.hash` is not `sha256`.
    #[error("unsupported hash function")]
    UnsupportedHash,
    /// The format is not allowed or not a single `%s` / `%x` / `%X`.
    #[error("bad fmt")]
    BadFmt,
    /// The destination header is not allowed or not a valid header name.
    #[error("bad dst")]
    BadDst,
    /// The rendered credential is not a valid header value (CR, LF or NUL in it).
    #[error("credential is not a valid header value")]
    BadValue,
    /// A processor needs the body, and it could not be read into memory (too large,
    /// over the process's budget, stalled or broken).
    #[error("{0}")]
    Body(tokenizer_http::body::ReadError),
    /// A processor kind this build parses but cannot run yet.
    #[error("{0} is not supported by this tokenizer yet")]
    Unsupported(&'static str),
    /// A path that is not a valid request path.
    #[error("bad path")]
    BadPath,
    /// A required configuration field is missing or invalid (never a secret value).
    #[error("{0}")]
    BadConfig(String),
    /// The client's request lacks what the processor needs (e.g. a SigV4 Authorization).
    #[error("{0}")]
    BadRequest(String),
}

/// The processor of a secret: exactly one wire key.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "WireProcessor")]
pub enum ProcessorConfig {
    /// `inject_processor`: the token into a header.
    Inject(InjectConfig),
    /// `inject_hmac_processor`: an HMAC-SHA256 of a param or the body into a header.
    InjectHmac(HmacConfig),
    /// `inject_body_processor`: the token in place of a placeholder in the body.
    InjectBody(InjectBodyConfig),
    /// `oauth2_processor`: an OAuth 2 token as a bearer header (or into the body).
    OAuth2(OAuth2Config),
    /// `oauth2_body_processor`: an OAuth 2 token in place of a placeholder in the body.
    OAuth2Body(OAuth2BodyConfig),
    /// `sigv4_processor`: re-sign an AWS SigV4 request with the sealed keys.
    SigV4(SigV4Config),
    /// `jwt_processor`: a signed JWT-bearer grant (RFC 7523); the response is sealed.
    Jwt(JwtConfig),
    /// `client_credentials_processor`: a client-credentials grant; the response is sealed.
    ClientCredentials(ClientCredentialsConfig),
    /// `github_app_processor`: a GitHub App installation-token exchange; the response is
    /// sealed.
    GitHubApp(GitHubAppConfig),
    /// `basic_auth_processor`: `Authorization: Basic base64(user:password)` (ours).
    BasicAuth(BasicAuthConfig),
    /// `query_param_processor`: the token as one named query parameter (ours).
    QueryParam(QueryParamConfig),
    /// Runs its elements in order; `[]` is a processor that does nothing.
    Multi(Vec<ProcessorConfig>),
}

/// Every processor key as an optional field, so serde can count how many are present.
#[derive(Default, Deserialize)]
pub struct WireProcessor {
    #[serde(default)]
    inject_processor: Option<InjectConfig>,
    #[serde(default)]
    inject_hmac_processor: Option<HmacConfig>,
    #[serde(default)]
    inject_body_processor: Option<InjectBodyConfig>,
    #[serde(default)]
    oauth2_processor: Option<OAuth2Config>,
    #[serde(default)]
    oauth2_body_processor: Option<OAuth2BodyConfig>,
    #[serde(default)]
    sigv4_processor: Option<SigV4Config>,
    #[serde(default)]
    jwt_processor: Option<JwtConfig>,
    #[serde(default)]
    client_credentials_processor: Option<ClientCredentialsConfig>,
    #[serde(default)]
    github_app_processor: Option<GitHubAppConfig>,
    #[serde(default)]
    basic_auth_processor: Option<BasicAuthConfig>,
    #[serde(default)]
    query_param_processor: Option<QueryParamConfig>,
    #[serde(default)]
    multi_processor: Option<Vec<ProcessorConfig>>,
}

// === impl ProcessorConfig ===

impl ProcessorConfig {
    /// The wire key, e.g. `inject_processor`.
    pub fn wire_key(&self) -> &'static str {
        match self {
            Self::Inject(_) => "inject_processor",
            Self::InjectHmac(_) => "inject_hmac_processor",
            Self::InjectBody(_) => "inject_body_processor",
            Self::OAuth2(_) => "oauth2_processor",
            Self::OAuth2Body(_) => "oauth2_body_processor",
            Self::SigV4(_) => "sigv4_processor",
            Self::Jwt(_) => "jwt_processor",
            Self::ClientCredentials(_) => "client_credentials_processor",
            Self::GitHubApp(_) => "github_app_processor",
            Self::BasicAuth(_) => "basic_auth_processor",
            Self::QueryParam(_) => "query_param_processor",
            Self::Multi(_) => "multi_processor",
        }
    }

    /// Resolve params and config into steps, appended to `out`.
    pub fn build(&self, params: &Params, out: &mut Vec<Step>) -> Result<(), ProcessorError> {
        match self {
            Self::Inject(c) => c.build(params, out),
            Self::InjectHmac(c) => c.build(params, out),
            Self::InjectBody(c) => c.build(params, out),
            Self::OAuth2(c) => c.build(params, out),
            Self::OAuth2Body(c) => c.build(params, out),
            Self::SigV4(c) => c.build(params, out),
            Self::Jwt(c) => c.build(params, out),
            Self::ClientCredentials(c) => c.build(params, out),
            Self::GitHubApp(c) => c.build(params, out),
            Self::BasicAuth(c) => c.build(out),
            Self::QueryParam(c) => c.build(out),
            Self::Multi(all) => all.iter().try_for_each(|c| c.build(params, out)),
        }
    }

    /// The path this processor sends the request to instead of the client's (GitHub App
    /// installation tokens), so that path rules judge the path that is forwarded.
    pub fn forced_path(&self) -> Option<String> {
        match self {
            Self::GitHubApp(c) => c.installation_path().ok(),
            Self::Multi(all) => all.iter().rev().find_map(Self::forced_path),
            _ => None,
        }
    }

    /// The credentials this processor sends upstream, for the reflection guard. HMAC
    /// and SigV4 keys never leave the proxy and JWT keys only sign; what they produce
    /// (signed assertions) is guarded per request, see [`StepContext::created`]. Values are
    /// guarded without surrounding spaces: a header sends them trimmed, and the trimmed
    /// value also matches wherever the untrimmed one would.
    pub fn guard_values(&self, out: &mut Vec<SecretBytes>) {
        let mut push = |s: &str| {
            out.push(SecretBytes::new(
                s.trim_matches([' ', '\t']).as_bytes().to_vec(),
            ))
        };
        match self {
            Self::Inject(c) => push(c.token.expose()),
            Self::InjectBody(c) => push(c.token.expose()),
            Self::OAuth2(OAuth2Config { token: Some(t) })
            | Self::OAuth2Body(OAuth2BodyConfig { token: Some(t), .. }) => {
                push(t.access_token.expose());
                push(t.refresh_token.expose());
            }
            Self::ClientCredentials(c) => push(c.client_secret.expose()),
            // The password alone: the guard's forms include its base64 at every
            // alignment, so `Basic base64(user:password)` is covered wherever the
            // password starts in it.
            Self::BasicAuth(c) => push(c.password.expose()),
            // The raw key: its percent-encoded form (what is sent) is one of the
            // guard's forms.
            Self::QueryParam(c) => push(c.token.expose()),
            Self::Multi(all) => all.iter().for_each(|c| c.guard_values(out)),
            Self::OAuth2(_)
            | Self::OAuth2Body(_)
            | Self::InjectHmac(_)
            | Self::SigV4(_)
            | Self::Jwt(_)
            | Self::GitHubApp(_) => {}
        }
    }

    /// A copy with every credential replaced by `REDACTED`, for logs.
    pub fn stripped(&self) -> Self {
        match self {
            Self::Inject(c) => Self::Inject(c.stripped()),
            Self::InjectHmac(c) => Self::InjectHmac(c.stripped()),
            Self::InjectBody(c) => Self::InjectBody(c.stripped()),
            Self::OAuth2(c) => Self::OAuth2(c.stripped()),
            Self::OAuth2Body(c) => Self::OAuth2Body(c.stripped()),
            Self::SigV4(c) => Self::SigV4(c.stripped()),
            Self::Jwt(c) => Self::Jwt(c.stripped()),
            Self::ClientCredentials(c) => Self::ClientCredentials(c.stripped()),
            Self::GitHubApp(c) => Self::GitHubApp(c.stripped()),
            Self::BasicAuth(c) => Self::BasicAuth(c.stripped()),
            Self::QueryParam(c) => Self::QueryParam(c.stripped()),
            Self::Multi(all) => Self::Multi(all.iter().map(Self::stripped).collect()),
        }
    }
}

impl TryFrom<WireProcessor> for ProcessorConfig {
    type Error = &'static str;

    fn try_from(w: WireProcessor) -> Result<Self, Self::Error> {
        let found = [
            w.inject_processor.map(Self::Inject),
            w.inject_hmac_processor.map(Self::InjectHmac),
            w.inject_body_processor.map(Self::InjectBody),
            w.oauth2_processor.map(Self::OAuth2),
            w.oauth2_body_processor.map(Self::OAuth2Body),
            w.sigv4_processor.map(Self::SigV4),
            w.jwt_processor.map(Self::Jwt),
            w.client_credentials_processor.map(Self::ClientCredentials),
            w.github_app_processor.map(Self::GitHubApp),
            w.basic_auth_processor.map(Self::BasicAuth),
            w.query_param_processor.map(Self::QueryParam),
            w.multi_processor.map(Self::Multi),
        ];
        let mut present = found.into_iter().flatten();
        match (present.next(), present.next()) {
            (Some(one), None) => Ok(one),
            _ => Err("bad processor config: need exactly one processor key"),
        }
    }
}

impl Serialize for ProcessorConfig {
    /// One-key object `{"<wire key>": {…}}`; flattened into the secret.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        let key = self.wire_key();
        match self {
            Self::Inject(c) => map.serialize_entry(key, c)?,
            Self::InjectHmac(c) => map.serialize_entry(key, c)?,
            Self::InjectBody(c) => map.serialize_entry(key, c)?,
            Self::OAuth2(c) => map.serialize_entry(key, c)?,
            Self::OAuth2Body(c) => map.serialize_entry(key, c)?,
            Self::SigV4(c) => map.serialize_entry(key, c)?,
            Self::Jwt(c) => map.serialize_entry(key, c)?,
            Self::ClientCredentials(c) => map.serialize_entry(key, c)?,
            Self::GitHubApp(c) => map.serialize_entry(key, c)?,
            Self::BasicAuth(c) => map.serialize_entry(key, c)?,
            Self::QueryParam(c) => map.serialize_entry(key, c)?,
            Self::Multi(all) => map.serialize_entry(key, all)?,
        }
        map.end()
    }
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

    /// The host a token exchange belongs to (from `token_url`, or its default): an
    /// exchange secret without host validators may only be sent there, so a client
    /// cannot hand the client secret or signed assertion to a server of its choosing.
    pub fn exchange_host(&self) -> Option<String> {
        let url = match self {
            Self::Jwt(c) if c.token_url.is_empty() => jwt_processor::DEFAULT_TOKEN_URL,
            Self::Jwt(c) => &c.token_url,
            Self::ClientCredentials(c) => &c.token_url,
            Self::GitHubApp(c) if c.token_url.is_empty() => github_app_processor::DEFAULT_TOKEN_URL,
            Self::GitHubApp(c) => &c.token_url,
            Self::Multi(all) => return all.iter().find_map(Self::exchange_host),
            _ => return None,
        };
        url.parse::<http::Uri>()
            .ok()
            .and_then(|u| u.host().map(str::to_ascii_lowercase))
    }

    /// How many token exchanges this processor performs.
    pub fn exchanges(&self) -> usize {
        match self {
            Self::Multi(all) => all.iter().map(Self::exchanges).sum(),
            other => usize::from(other.exchange().is_some()),
        }
    }
}
