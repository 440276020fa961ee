//! Who is calling, as the connection proves it: the verified Fly-Src and the verified
//! TLS client certificate. (OIDC tokens are verified per request, from the
//! `Proxy-Authorization` values, in the pipeline.)

use std::sync::Arc;

use tokenizer_secret::auth::{ClientCert, FlySrc, FlySrcError};

/// The identity a client connection proves, checked against secrets' auth rules.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// The request's Fly-Src, verified; `None` when verification is off.
    pub flysrc: Option<Result<FlySrc, FlySrcError>>,
    /// The client certificate the TLS listener verified (`CLIENT_CA_FILE`).
    pub cert: Option<Arc<ClientCert>>,
}
