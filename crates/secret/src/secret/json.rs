//! Go `encoding/json` decoding rules that serde does not have on its own.
//!
//! Go matches object keys to struct fields exactly first and then case-insensitively
//! (`Bearer_Auth` fills `bearer_auth`), and a JSON `null` leaves a field at its zero
//! value, which for every field of a secret means "absent". [`normalize`] rewrites a
//! parsed document into that canonical shape (keys folded to the known names, nulls
//! dropped) so that plain serde derives then behave like Go.

use serde_json::{Map, Value};

/// The keys a secret object may hold at its top level.
pub(super) const TOP_LEVEL_KEYS: &[&str] = &[
    // processors
    "inject_processor",
    "inject_hmac_processor",
    "inject_body_processor",
    "oauth2_processor",
    "oauth2_body_processor",
    "sigv4_processor",
    "jwt_processor",
    "client_credentials_processor",
    "github_app_processor",
    "basic_auth_processor",
    "query_param_processor",
    "multi_processor",
    // auth
    "bearer_auth",
    "macaroon_auth",
    "flyio_macaroon_auth",
    "fly_src_auth",
    "oidc_auth",
    "mtls_auth",
    "no_auth",
    // validators
    "allowed_hosts",
    "allowed_host_pattern",
    // our policy extensions
    "allowed_methods",
    "allowed_paths",
    "allowed_git_refs",
    "allowed_mcp_tools",
    "not_before",
    "expires_at",
    "id",
    "rate_limit",
    "max_requests",
    "pii",
];

/// Field names inside processor and auth objects, in their canonical spelling.
const FIELD_KEYS: &[&str] = &[
    // processor fields
    "token",
    "fmt",
    "allowed_fmt",
    "dst",
    "allowed_dst",
    "key",
    "hash",
    "placeholder",
    "access_token",
    "refresh_token",
    "access_key",
    "secret_key",
    "no_swap",
    "private_key",
    "email",
    "sub",
    "scopes",
    "token_url",
    "client_id",
    "client_secret",
    "app_id",
    "installation_id",
    "user",
    "password",
    "replace",
    "param",
    // auth fields
    "digest",
    "access",
    "allowed_orgs",
    "allowed_apps",
    "allowed_instances",
    "action",
    "orgid",
    "appid",
    "app_feature",
    "feature",
    "volume",
    "machine",
    "machine_feature",
    "mutation",
    "sourceMachine",
    "cluster",
    "command",
    "storage_object",
    // pii
    "kinds",
];

/// Every known key: keys that fold to one of these are renamed to it; other keys are
/// kept as they are (and ignored by the typed decoding, as Go ignores unknown keys).
fn known_keys() -> impl Iterator<Item = &'static str> {
    TOP_LEVEL_KEYS.iter().chain(FIELD_KEYS).copied()
}

/// Top-level keys of a (normalized) secret that decoding ignores: usually typos.
pub fn unknown_top_level_keys(value: &Value) -> Vec<String> {
    value
        .as_object()
        .map(|m| {
            m.keys()
                .filter(|k| !TOP_LEVEL_KEYS.contains(&k.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Fold keys to their canonical names and drop nulls, recursively. When two keys fold
/// to the same name the later one wins, as in Go.
pub fn normalize(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (key, value) in map {
                if value.is_null() {
                    continue;
                }
                out.insert(canonical_key(key), normalize(value));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        other => other,
    }
}

fn canonical_key(key: String) -> String {
    if known_keys().any(|known| known == key) {
        return key;
    }
    known_keys()
        .find(|known| known.eq_ignore_ascii_case(&key))
        .map_or(key, str::to_owned)
}

/// A serde error turned into a message that never quotes the input: serde's
/// "invalid type: string \"…\"" would otherwise echo a secret field's value.
pub fn describe_error(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let quotes_input = [
        "invalid type",
        "invalid value",
        "invalid length",
        "unknown variant",
    ]
    .iter()
    .any(|p| text.starts_with(p));
    if quotes_input {
        return format!(
            "a field has the wrong type or value at line {} column {}",
            err.line(),
            err.column()
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn folds_case_and_drops_nulls() {
        let v = normalize(json!({
            "Bearer_Auth": {"DIGEST": "x"},
            "no_auth": null,
            "multi_processor": [{"Inject_Processor": {"Token": "t"}}],
            "Unknown": 1
        }));
        assert_eq!(
            v,
            json!({
                "bearer_auth": {"digest": "x"},
                "multi_processor": [{"inject_processor": {"token": "t"}}],
                "Unknown": 1
            })
        );
    }

    #[test]
    fn later_duplicate_wins() {
        let v = normalize(serde_json::from_str(r#"{"token":"a","TOKEN":"b"}"#).unwrap());
        assert_eq!(v, json!({"token": "b"}));
    }

    #[test]
    fn type_errors_do_not_quote_values() {
        let err = serde_json::from_str::<u64>("\"supersecret\"").unwrap_err();
        let msg = describe_error(&err);
        assert!(!msg.contains("supersecret"), "{msg}");
    }
}
