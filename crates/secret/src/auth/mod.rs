//! Caller authentication: may this caller use this secret? Failures are 407.

mod bearer_auth;
mod candidates;
pub mod fly_src;
mod fly_src_auth;
mod flyio_macaroon_auth;
pub mod glob;
pub mod macaroon;
mod macaroon_auth;
mod mtls_auth;
mod oidc_auth;
mod verified_tokens;

use serde::{Deserialize, Serialize, Serializer, ser::SerializeMap};

pub use bearer_auth::BearerAuth;
pub use candidates::Candidates;
pub use fly_src::{FlySrc, FlySrcError, FlySrcVerifier};
pub use fly_src_auth::FlySrcAuth;
pub use flyio_macaroon_auth::FlyioMacaroonAuth;
pub use macaroon_auth::MacaroonAuth;
pub use mtls_auth::{ClientCert, MtlsAuth};
pub use oidc_auth::OidcAuth;
pub use verified_tokens::{VerifiedToken, VerifiedTokens};

/// Why a caller may not use a secret. The public message never says more than this.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Proxy-Authorization` candidate matched.
    #[error("bad or missing proxy auth")]
    BadProxyAuth,
    /// `fly_src_auth` while Fly-Src verification is off.
    #[error("no flysrc parser")]
    NoFlySrcParser,
    /// The request's Fly-Src did not verify.
    #[error("{0}")]
    FlySrc(FlySrcError),
    /// The verified Fly-Src names an org, app or instance the secret does not allow.
    #[error("{0} {1} not allowed")]
    FlySrcDenied(&'static str, String),
    /// An auth kind this build parses but cannot verify; it fails closed.
    #[error("{0} is not supported by this tokenizer")]
    Unsupported(&'static str),
    /// No presented macaroon allows the request.
    #[error("macaroon: {0}")]
    Macaroon(macaroon::MacaroonError),
    /// `flyio_macaroon_auth`: fails closed, the remote check is not available.
    #[error(
        "flyio_macaroon_auth needs Fly.io's token verification API, which this tokenizer does not call"
    )]
    NeedsFlyApi,
    /// No verified OIDC token satisfies `oidc_auth`.
    #[error("oidc: {0}")]
    Oidc(String),
    /// `mtls_auth`, but the request did not come with a verified client certificate.
    #[error("mtls: no verified client certificate (use the TLS listener)")]
    NoClientCert,
    /// The client certificate has expired (or is not yet valid): the handshake was
    /// earlier, on a kept-alive or resumed connection.
    #[error("mtls: the client certificate is not valid now")]
    ClientCertExpired,
    /// The client certificate names another workload.
    #[error("mtls: {0} not allowed")]
    ClientCertDenied(String),
}

/// The auth config of a secret: exactly one wire key.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "WireAuth")]
pub enum AuthConfig {
    /// `bearer_auth`: a token whose SHA-256 is sealed.
    Bearer(BearerAuth),
    /// `macaroon_auth`: a macaroon minted with the sealed key.
    Macaroon(MacaroonAuth),
    /// `flyio_macaroon_auth`: a Fly.io macaroon; always refused here.
    FlyioMacaroon(FlyioMacaroonAuth),
    /// `fly_src_auth`: a verified `Fly-Src` from an allowed org, app and instance.
    FlySrc(FlySrcAuth),
    /// `oidc_auth` (not in Go): a verified OIDC token with the right issuer, audience
    /// and claims.
    Oidc(OidcAuth),
    /// `mtls_auth` (not in Go): a verified client certificate with a matching SAN.
    Mtls(MtlsAuth),
    /// `no_auth`: anyone may use the secret.
    None,
}

/// What the request offers to prove who the caller is.
pub struct AuthInput<'a> {
    /// The credentials of the request's `Proxy-Authorization` lines.
    pub candidates: &'a Candidates,
    /// The request's Fly-Src, verified; `None` when verification is off.
    pub flysrc: Option<&'a Result<FlySrc, FlySrcError>>,
    /// Method and escaped path; `None` while a CONNECT is checked, in which case
    /// macaroon caveats are checked on each request inside the tunnel instead.
    pub request: Option<(&'a str, &'a str)>,
    /// Unix seconds.
    pub now: i64,
    /// The request's OIDC tokens, verified (issuer, signature, validity).
    pub oidc: &'a VerifiedTokens,
    /// The client certificate the TLS listener verified, if any.
    pub cert: Option<&'a ClientCert>,
}

#[derive(Default, Deserialize)]
pub(crate) struct WireAuth {
    #[serde(default)]
    bearer_auth: Option<BearerAuth>,
    #[serde(default)]
    macaroon_auth: Option<MacaroonAuth>,
    #[serde(default)]
    flyio_macaroon_auth: Option<FlyioMacaroonAuth>,
    #[serde(default)]
    fly_src_auth: Option<FlySrcAuth>,
    #[serde(default)]
    oidc_auth: Option<OidcAuth>,
    #[serde(default)]
    mtls_auth: Option<MtlsAuth>,
    #[serde(default)]
    no_auth: Option<serde_json::Map<String, serde_json::Value>>,
}

// === impl AuthConfig ===

impl AuthConfig {
    /// The JSON key this config is sealed under (`bearer_auth`, `no_auth`, …).
    pub fn wire_key(&self) -> &'static str {
        match self {
            Self::Bearer(_) => "bearer_auth",
            Self::Macaroon(_) => "macaroon_auth",
            Self::FlyioMacaroon(_) => "flyio_macaroon_auth",
            Self::FlySrc(_) => "fly_src_auth",
            Self::Oidc(_) => "oidc_auth",
            Self::Mtls(_) => "mtls_auth",
            Self::None => "no_auth",
        }
    }

    /// May the caller use the secret for a request to `host` (as the client wrote it)?
    pub fn authorize(&self, input: &AuthInput<'_>, host: &str) -> Result<(), AuthError> {
        match self {
            Self::Bearer(c) => c.authorize(input.candidates),
            Self::Macaroon(c) => match input.request {
                Some((method, path)) => {
                    let facts = macaroon::RequestFacts { method, path, host };
                    c.authorize_request(input.candidates, &facts, input.now)
                }
                None => Ok(()),
            },
            Self::FlyioMacaroon(c) => c.authorize(),
            Self::FlySrc(c) => c.authorize(input.flysrc),
            Self::Oidc(c) => c.authorize(input.oidc),
            Self::Mtls(c) => c.authorize(input.cert, input.now),
            Self::None => Ok(()),
        }
    }

    /// A copy with key material replaced by `REDACTED`, for logs.
    pub fn stripped(&self) -> Self {
        match self {
            Self::Bearer(c) => Self::Bearer(c.stripped()),
            Self::Macaroon(c) => Self::Macaroon(c.stripped()),
            other => other.clone(),
        }
    }
}

impl TryFrom<WireAuth> for AuthConfig {
    type Error = &'static str;

    fn try_from(w: WireAuth) -> Result<Self, Self::Error> {
        let found = [
            w.bearer_auth.map(Self::Bearer),
            w.macaroon_auth.map(Self::Macaroon),
            w.flyio_macaroon_auth.map(Self::FlyioMacaroon),
            w.fly_src_auth.map(Self::FlySrc),
            w.oidc_auth.map(Self::Oidc),
            w.mtls_auth.map(Self::Mtls),
            w.no_auth.map(|_| Self::None),
        ];
        let mut present = found.into_iter().flatten();
        match (present.next(), present.next()) {
            (Some(one), None) => Ok(one),
            _ => Err("bad auth config: need exactly one auth key"),
        }
    }
}

impl Serialize for AuthConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        let key = self.wire_key();
        match self {
            Self::Bearer(c) => map.serialize_entry(key, c)?,
            Self::Macaroon(c) => map.serialize_entry(key, c)?,
            Self::FlyioMacaroon(c) => map.serialize_entry(key, c)?,
            Self::FlySrc(c) => map.serialize_entry(key, c)?,
            Self::Oidc(c) => map.serialize_entry(key, c)?,
            Self::Mtls(c) => map.serialize_entry(key, c)?,
            Self::None => map.serialize_entry(key, &serde_json::Map::new())?,
        }
        map.end()
    }
}
