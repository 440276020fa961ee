//! `fly_src_auth`: the caller's verified `Fly-Src` must name an allowed org, app and
//! instance (an empty or null list does not restrict).

use serde::{Deserialize, Serialize};

use super::AuthError;
use super::fly_src::{FlySrc, FlySrcError};

/// `fly_src_auth` (Go's `FlySrcAuthConfig`): the caller's verified `Fly-Src` must name
/// an allowed org, app and instance. Each list is matched exactly; an empty or absent
/// list does not restrict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlySrcAuth {
    /// `allowed_orgs`: the organizations that may use the secret.
    #[serde(default)]
    pub allowed_orgs: Option<Vec<String>>,
    /// `allowed_apps`: the apps that may use the secret.
    #[serde(default)]
    pub allowed_apps: Option<Vec<String>>,
    /// `allowed_instances`: the machines that may use the secret.
    #[serde(default)]
    pub allowed_instances: Option<Vec<String>>,
}

impl FlySrcAuth {
    /// `source` is `None` when Fly-Src verification is off (`USE_FLYSRC` unset).
    pub fn authorize(&self, source: Option<&Result<FlySrc, FlySrcError>>) -> Result<(), AuthError> {
        let src = match source {
            None => return Err(AuthError::NoFlySrcParser),
            Some(Err(e)) => return Err(AuthError::FlySrc(e.clone())),
            Some(Ok(src)) => src,
        };
        let check =
            |list: &Option<Vec<String>>, value: &str, what: &'static str| match list.as_deref() {
                Some(allowed) if !allowed.is_empty() && !allowed.iter().any(|a| a == value) => {
                    Err(AuthError::FlySrcDenied(what, value.to_owned()))
                }
                _ => Ok(()),
            };
        check(&self.allowed_orgs, &src.org, "org")?;
        check(&self.allowed_apps, &src.app, "app")?;
        check(&self.allowed_instances, &src.instance, "instance")
    }
}
