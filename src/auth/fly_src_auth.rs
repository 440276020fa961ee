//! `fly_src_auth`: the caller's verified `Fly-Src` must name an allowed org, app and
//! instance (an empty or null list does not restrict).
//!
//! Fly-Src verification is not wired into this build yet, so there is never a verified
//! source and the check fails closed with 407, as Go does without a parser.

use serde::{Deserialize, Serialize};

use super::AuthError;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlySrcAuth {
    #[serde(default)]
    pub allowed_orgs: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_apps: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_instances: Option<Vec<String>>,
}

impl FlySrcAuth {
    pub fn authorize(&self) -> Result<(), AuthError> {
        Err(AuthError::NoFlySrcParser)
    }
}
