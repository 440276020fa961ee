//! `flyio_macaroon_auth`: Fly.io macaroons checked by Fly's API. That remote check is
//! not available here, so the JSON round-trips and authorization fails closed (407).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::AuthError;

/// `flyio_macaroon_auth` (Go's `FlyioMacaroonAuthConfig`): kept so such secrets
/// decode and re-encode, but never authorizes (see [`FlyioMacaroonAuth::authorize`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlyioMacaroonAuth {
    /// The `access` object (action, orgid, appid, …), kept as given.
    #[serde(default)]
    pub access: Map<String, Value>,
}

impl FlyioMacaroonAuth {
    /// Always refused: verifying needs Fly.io's token API, which is not called.
    pub fn authorize(&self) -> Result<(), AuthError> {
        Err(AuthError::NeedsFlyApi)
    }
}
