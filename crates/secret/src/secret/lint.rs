//! Warnings about secrets that are valid but probably not what their author meant,
//! shown by `tokenizer seal`.

use super::Secret;
use crate::auth::AuthConfig;

/// Check `secret`; each returned line is one warning.
pub fn lint(secret: &Secret) -> Vec<String> {
    let mut out = Vec::new();
    if secret.hosts.is_unrestricted() {
        out.push(
            "no allowed_hosts or allowed_host_pattern: the credential can be sent to any host"
                .to_owned(),
        );
    }
    if let Some(pattern) = &secret.hosts.allowed_host_pattern {
        let p = pattern.as_str();
        if !p.starts_with('^') || !p.ends_with('$') {
            out.push(format!(
                "allowed_host_pattern {p:?} is not anchored: it also matches hosts that merely \
                 contain it (use ^…$)"
            ));
        }
    }
    if secret.auth == AuthConfig::None {
        out.push("no_auth: anyone holding the sealed secret can use it".to_owned());
    }
    if let AuthConfig::Oidc(oidc) = &secret.auth
        && oidc.claims.is_empty()
    {
        out.push(format!(
            "oidc_auth without claims: any workload {} issues a token for (audience {}) can use it",
            oidc.issuer, oidc.audience
        ));
    }
    if secret.policy.allowed_git_refs.is_some() {
        let api = secret
            .hosts
            .allowed_hosts
            .as_ref()
            .is_none_or(|hosts| hosts.iter().any(|h| h.starts_with("api.")));
        if api && secret.policy.allowed_methods.is_none() {
            out.push(
                "allowed_git_refs judges git pushes only: on an API host (api.…) the same token                  can still change refs through the REST API; add allowed_methods (e.g. GET) or                  seal the API host separately"
                    .to_owned(),
            );
        }
    }
    let mut values = Vec::new();
    secret.processor.guard_values(&mut values);
    let min = tokenizer_http::reflection::MIN_GUARDED_LEN;
    if values
        .iter()
        .any(|v| !v.expose().is_empty() && v.expose().len() < min)
    {
        out.push(format!(
            "a credential shorter than {min} bytes: the reflection guard does not mask it if \
             the upstream echoes it (masking so short a string would corrupt responses)"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lints(json: serde_json::Value) -> Vec<String> {
        lint(&Secret::from_json(json.to_string().as_bytes()).unwrap())
    }

    #[test]
    fn flags_risky_secrets() {
        let all = lints(serde_json::json!({
            "inject_processor": {"token": "t"}, "no_auth": {}
        }));
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(
            all.iter().any(|l| l.contains("shorter than 8 bytes")),
            "{all:?}"
        );
        let pattern = lints(serde_json::json!({
            "inject_processor": {"token": "long-enough-token"}, "bearer_auth": {"digest": ""},
            "allowed_host_pattern": "example\\.com"
        }));
        assert_eq!(pattern.len(), 1);
        assert!(pattern[0].contains("not anchored"));
        let clean = lints(serde_json::json!({
            "inject_processor": {"token": "long-enough-token"}, "bearer_auth": {"digest": ""},
            "allowed_host_pattern": "^api\\.example\\.com$"
        }));
        assert!(clean.is_empty(), "{clean:?}");
        let git = |hosts: serde_json::Value| {
            lints(serde_json::json!({
                "basic_auth_processor": {"user": "x-access-token", "password": "ghs_long_token"},
                "bearer_auth": {"digest": ""}, "allowed_hosts": hosts,
                "allowed_git_refs": ["refs/heads/agent/*"]
            }))
        };
        let both = git(serde_json::json!(["github.com", "api.github.com"]));
        assert!(both.iter().any(|l| l.contains("REST API")), "{both:?}");
        assert!(git(serde_json::json!(["github.com"])).is_empty());
    }
}
