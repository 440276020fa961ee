//! The one validator for secrets about to be sealed (`tokenizer seal`, `POST /v1/seal`):
//! a seal must mean exactly what its author meant. Opening a secret stays as lenient as
//! Go (unknown keys ignored); sealing one refuses what would silently weaken or break it:
//!
//! - keys decoding would ignore, at any depth (`alowed_paths`, `tokn`, `dts`), each
//!   named with its path and, for a near miss, the right spelling;
//! - credentials that are empty, only whitespace, or wrapped in whitespace (an unset
//!   variable, a copy-paste slip);
//! - digests, keys and PEMs that cannot work (a `bearer_auth.digest` that is not a
//!   SHA-256), and whatever the processor itself refuses to build (a bad `fmt`, a `dst`
//!   that is no header name);
//! - rules that can never match (`allowed_methods: []`, an `expires_at` in the past).
//!
//! What is valid but risky (no host rule, `no_auth`) stays a warning ([`super::lint`]).

use std::fmt;

use serde_json::{Map, Value};

use super::{Secret, json, lint, schema};
use crate::auth::AuthConfig;
use tokenizer_core::time::now_unix;
use tokenizer_processor::processor::ProcessorConfig;

/// A mistake in a secret: where (a key path such as `inject_processor.token`) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where: a key path (`inject_processor.token`, `allowed_hosts[0]`); empty for the
    /// secret as a whole.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// What checking a secret found.
#[derive(Debug)]
pub struct Checked {
    /// The decoded secret, as it would be sealed.
    pub secret: Secret,
    /// Mistakes: sealing refuses them unless told to be as lenient as Go.
    pub errors: Vec<Problem>,
    /// Valid but risky choices ([`lint`]).
    pub warnings: Vec<String>,
}

/// Check the JSON of a secret. `Err` when it is no secret at all (not JSON, two
/// processors…), with every problem found on the way.
pub fn check(bytes: &[u8]) -> Result<Checked, Vec<Problem>> {
    let mut errors = unknown_keys(bytes)?;
    let secret = match Secret::from_json(bytes) {
        Ok(secret) => secret,
        Err(e) => {
            errors.push(Problem {
                path: String::new(),
                message: e.to_string(),
            });
            return Err(errors);
        }
    };
    errors.extend(check_secret(&secret));
    let warnings = lint(&secret);
    Ok(Checked {
        secret,
        errors,
        warnings,
    })
}

/// Keys of the JSON of a secret that decoding would ignore, at any depth. `Err` when it
/// is not a JSON object.
pub fn unknown_keys(bytes: &[u8]) -> Result<Vec<Problem>, Vec<Problem>> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        vec![Problem {
            path: String::new(),
            message: format!("not JSON: {}", json::describe_error(&e)),
        }]
    })?;
    let Value::Object(map) = json::normalize(value) else {
        return Err(vec![Problem {
            path: String::new(),
            message: "want a JSON object".to_owned(),
        }]);
    };
    let mut errors = Vec::new();
    unknown_top_level(&map, &mut errors);
    Ok(errors)
}

/// The checks of a decoded secret's values (its keys are no longer known).
pub fn check_secret(secret: &Secret) -> Vec<Problem> {
    let mut errors = Vec::new();
    check_processor(&secret.processor, secret.processor.wire_key(), &mut errors);
    check_auth(&secret.auth, &mut errors);
    check_rules(secret, &mut errors);
    errors
}

// === unknown keys ===

fn push(errors: &mut Vec<Problem>, path: String, message: impl Into<String>) {
    errors.push(Problem {
        path,
        message: message.into(),
    });
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `unknown key`, with the nearest of `known` when it is a near miss.
fn unknown(errors: &mut Vec<Problem>, path: String, key: &str, known: &[&str]) {
    let near = known
        .iter()
        .map(|k| (strsim::osa_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2 && *d * 3 <= k.len().max(3))
        .min();
    let message = match near {
        Some((_, k)) => format!("unknown key (did you mean {k:?}?)"),
        None => "unknown key: the tokenizer would ignore it".to_owned(),
    };
    push(errors, path, message);
}

fn unknown_top_level(map: &Map<String, Value>, errors: &mut Vec<Problem>) {
    let processors: Vec<&str> = schema::processor_keys().collect();
    let auths: Vec<&str> = schema::auth_keys().collect();
    for (key, value) in map {
        if processors.contains(&key.as_str()) {
            processor_keys(key, value, key, errors);
        } else if auths.contains(&key.as_str()) {
            object_keys(key, value, key, errors);
        } else if key == "pii" {
            known_keys(value, "pii", schema::PII, errors);
        } else if schema::DERIVED_ONLY.contains(&key.as_str()) {
            push(
                errors,
                key.clone(),
                "set by the tokenizer in tokens it derives; do not seal it",
            );
        } else if !json::TOP_LEVEL_KEYS.contains(&key.as_str()) {
            let mut all: Vec<&str> = json::TOP_LEVEL_KEYS.to_vec();
            all.extend(schema::DERIVED_ONLY);
            unknown(errors, key.clone(), key, &all);
        }
    }
}

/// A processor object (or `multi_processor`'s list of them).
fn processor_keys(kind: &str, value: &Value, path: &str, errors: &mut Vec<Problem>) {
    if kind != "multi_processor" {
        object_keys(kind, value, path, errors);
        return;
    }
    let Some(items) = value.as_array() else {
        return;
    };
    let processors: Vec<&str> = schema::processor_keys().collect();
    for (i, item) in items.iter().enumerate() {
        let Some(map) = item.as_object() else {
            continue;
        };
        for (key, inner) in map {
            let at = format!("{path}[{i}].{key}");
            if processors.contains(&key.as_str()) {
                processor_keys(key, inner, &at, errors);
            } else {
                unknown(errors, at, key, &processors);
            }
        }
    }
}

/// A processor or auth object of `kind`.
fn object_keys(kind: &str, value: &Value, path: &str, errors: &mut Vec<Problem>) {
    let (Some(map), Some(Some(fields))) = (value.as_object(), schema::fields_of(kind)) else {
        return;
    };
    for (key, inner) in map {
        let at = join(path, key);
        if !fields.contains(&key.as_str()) {
            unknown(errors, at, key, &fields);
        } else if let Some(Some(keys)) = schema::nested(kind, key) {
            known_keys(inner, &at, keys, errors);
        }
    }
}

fn known_keys(value: &Value, path: &str, keys: &[&str], errors: &mut Vec<Problem>) {
    let Some(map) = value.as_object() else {
        return;
    };
    for key in map.keys() {
        if !keys.contains(&key.as_str()) {
            unknown(errors, join(path, key), key, keys);
        }
    }
}

// === values ===

/// A credential must be there, and be exactly what was meant.
fn credential(errors: &mut Vec<Problem>, path: String, value: &str) {
    if value.is_empty() {
        push(
            errors,
            path,
            "empty credential (was the variable it came from set?)",
        );
    } else if value.trim().is_empty() {
        push(errors, path, "the credential is only whitespace");
    } else if value.trim() != value {
        push(
            errors,
            path,
            "the credential starts or ends with whitespace (a copy-paste slip?)",
        );
    }
}

fn check_processor(p: &ProcessorConfig, path: &str, errors: &mut Vec<Problem>) {
    let at = |field: &str| join(path, field);
    match p {
        ProcessorConfig::Inject(c) => credential(errors, at("token"), c.token.expose()),
        ProcessorConfig::InjectBody(c) => credential(errors, at("token"), c.token.expose()),
        ProcessorConfig::InjectHmac(c) if c.key.expose().is_empty() => {
            push(errors, at("key"), "empty key");
        }
        ProcessorConfig::OAuth2(c) => match &c.token {
            Some(t) => credential(errors, at("token.access_token"), t.access_token.expose()),
            None => push(errors, at("token"), "missing: want {\"access_token\": …}"),
        },
        ProcessorConfig::OAuth2Body(c) => match &c.token {
            Some(t) => credential(errors, at("token.access_token"), t.access_token.expose()),
            None => push(errors, at("token"), "missing: want {\"access_token\": …}"),
        },
        ProcessorConfig::SigV4(c) => {
            credential(errors, at("access_key"), c.access_key.expose());
            credential(errors, at("secret_key"), c.secret_key.expose());
        }
        ProcessorConfig::ClientCredentials(c) => {
            credential(errors, at("client_secret"), c.client_secret.expose());
        }
        ProcessorConfig::BasicAuth(c) => credential(errors, at("password"), c.password.expose()),
        ProcessorConfig::QueryParam(c) => credential(errors, at("token"), c.token.expose()),
        ProcessorConfig::Multi(list) => {
            for (i, inner) in list.iter().enumerate() {
                check_processor(inner, &format!("{path}[{i}].{}", inner.wire_key()), errors);
            }
            return;
        }
        _ => {}
    }
    // Whatever the processor itself would refuse on every request: a bad fmt or dst, a
    // key or PEM that does not parse, a missing field.
    if let Err(e) = p.build(&super::Params::default(), &mut Vec::new()) {
        push(errors, path.to_owned(), e.to_string());
    }
}

fn check_auth(auth: &AuthConfig, errors: &mut Vec<Problem>) {
    match auth {
        AuthConfig::Bearer(b) if b.digest.expose().len() != 32 => push(
            errors,
            "bearer_auth.digest".to_owned(),
            "not a SHA-256 digest (32 bytes, base64): no token would ever match; seal \
             with --auth-token TOKEN, or use base64(sha256(token))",
        ),
        AuthConfig::Macaroon(m) if m.key.expose().is_empty() => {
            push(errors, "macaroon_auth.key".to_owned(), "empty key");
        }
        AuthConfig::FlySrc(f) => {
            for (name, list) in [
                ("allowed_orgs", &f.allowed_orgs),
                ("allowed_apps", &f.allowed_apps),
                ("allowed_instances", &f.allowed_instances),
            ] {
                if list.as_ref().is_some_and(Vec::is_empty) {
                    push(
                        errors,
                        format!("fly_src_auth.{name}"),
                        "an empty list allows nobody: the secret can never be used",
                    );
                }
            }
        }
        _ => {}
    }
}

fn check_rules(secret: &Secret, errors: &mut Vec<Problem>) {
    let never = "the secret can never be used";
    if let Some(hosts) = &secret.hosts.allowed_hosts {
        if hosts.is_empty() {
            push(
                errors,
                "allowed_hosts".into(),
                format!("allows no host: {never}"),
            );
        }
        for (i, host) in hosts.iter().enumerate() {
            if host.trim().is_empty() || host.contains("://") || host.contains('/') {
                push(
                    errors,
                    format!("allowed_hosts[{i}]"),
                    "want a host name (host or host:port), not a URL",
                );
            }
        }
    }
    let policy = &secret.policy;
    if let Some(methods) = &policy.allowed_methods {
        if methods.is_empty() {
            push(
                errors,
                "allowed_methods".into(),
                format!("allows no method: {never}"),
            );
        }
        for (i, m) in methods.iter().enumerate() {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') {
                push(
                    errors,
                    format!("allowed_methods[{i}]"),
                    "not an HTTP method (GET, POST, …)",
                );
            }
        }
    }
    if policy.allowed_paths.as_ref().is_some_and(Vec::is_empty) {
        push(
            errors,
            "allowed_paths".into(),
            format!("allows no path: {never}"),
        );
    }
    if policy.max_requests == Some(0) {
        push(
            errors,
            "max_requests".into(),
            format!("allows no request: {never}"),
        );
    }
    if policy.expires_at.is_some_and(|t| t <= now_unix()) {
        push(
            errors,
            "expires_at".into(),
            "in the past: the secret is already expired",
        );
    }
    if let (Some(nb), Some(exp)) = (policy.not_before, policy.expires_at)
        && nb >= exp
    {
        push(
            errors,
            "not_before".into(),
            format!("not before expires_at: {never}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DIGEST: &str = "K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=";

    fn problems(secret: Value) -> Vec<String> {
        match check(secret.to_string().as_bytes()) {
            Ok(c) => c.errors.iter().map(ToString::to_string).collect(),
            Err(all) => all.iter().map(ToString::to_string).collect(),
        }
    }

    fn base() -> Value {
        json!({"inject_processor": {"token": "sk-live-123456"}, "bearer_auth": {"digest": DIGEST},
               "allowed_hosts": ["api.example.com"]})
    }

    fn with(extra: Value) -> Value {
        let mut v = base();
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    }

    #[test]
    fn a_clean_secret_has_no_problem() {
        assert!(problems(base()).is_empty(), "{:?}", problems(base()));
        // Go's case-insensitive keys are not mistakes.
        let folded = json!({"Inject_Processor": {"Token": "sk-live-123456"},
            "BEARER_AUTH": {"digest": DIGEST}, "allowed_hosts": ["api.example.com"]});
        assert!(problems(folded).is_empty());
    }

    #[test]
    fn mistakes_are_named_with_their_key_and_the_right_spelling() {
        let cases: Vec<(Value, &str)> = vec![
            (
                with(json!({"alowed_paths": ["/v1/**"]})),
                r#"alowed_paths: unknown key (did you mean "allowed_paths"?)"#,
            ),
            (
                json!({"inject_processor": {"tokn": "x"}, "no_auth": {}}),
                r#"inject_processor.tokn: unknown key (did you mean "token"?)"#,
            ),
            (
                json!({"inject_processor": {"token": "sk-live-1", "dts": "x-api-key"}, "no_auth": {}}),
                r#"inject_processor.dts: unknown key (did you mean "dst"?)"#,
            ),
            (
                json!({"inject_procesor": {"token": "x"}, "no_auth": {}}),
                r#"inject_procesor: unknown key (did you mean "inject_processor"?)"#,
            ),
            (
                json!({"inject_procesor": {"token": "x"}, "no_auth": {}}),
                "need exactly one processor key",
            ),
            (
                with(json!({"bearer_auth": {"digest": "aGVsbG8="}})),
                "bearer_auth.digest: not a SHA-256 digest",
            ),
            (
                json!({"inject_processor": {"token": ""}, "no_auth": {}}),
                "inject_processor.token: empty credential",
            ),
            (
                json!({"inject_processor": {"token": "   "}, "no_auth": {}}),
                "inject_processor.token: the credential is only whitespace",
            ),
            (
                json!({"inject_processor": {"token": "sk-1 "}, "no_auth": {}}),
                "starts or ends with whitespace",
            ),
            (
                json!({"inject_processor": {"token": "sk-live-1", "dst": "x api key", "fmt": "%s"}, "no_auth": {}}),
                "inject_processor: bad dst",
            ),
            (
                json!({"inject_processor": {"token": "sk-live-1", "fmt": "Bearer"}, "no_auth": {}}),
                "inject_processor: bad fmt",
            ),
            (
                json!({"jwt_processor": {"private_key": "bm90IGEgcGVt", "email": "a@b"}, "no_auth": {}}),
                "jwt_processor:",
            ),
            (
                json!({"multi_processor": [{"inject_processor": {"token": ""}}], "no_auth": {}}),
                "multi_processor[0].inject_processor.token: empty credential",
            ),
            (
                json!({"multi_processor": [{"inject_processor": {"token": "t-123456789"}}, {"inject_procesor": {}}], "no_auth": {}}),
                "multi_processor[1].inject_procesor: unknown key",
            ),
            (
                json!({"oauth2_processor": {"token": {"access_tokn": "x"}}, "no_auth": {}}),
                r#"oauth2_processor.token.access_tokn: unknown key (did you mean "access_token"?)"#,
            ),
            (
                with(json!({"allowed_methods": []})),
                "allowed_methods: allows no method",
            ),
            (
                with(json!({"allowed_methods": ["GET", "P0ST"]})),
                "allowed_methods[1]: not an HTTP method",
            ),
            (
                with(json!({"allowed_paths": []})),
                "allowed_paths: allows no path",
            ),
            (
                with(json!({"allowed_hosts": []})),
                "allowed_hosts: allows no host",
            ),
            (
                with(json!({"allowed_hosts": ["https://api.example.com"]})),
                "allowed_hosts[0]: want a host name",
            ),
            (with(json!({"expires_at": 1})), "expires_at: in the past"),
            (
                with(json!({"not_before": 4_000_000_000u64, "expires_at": 3_999_999_999u64})),
                "not_before: not before expires_at",
            ),
            (
                with(json!({"max_requests": 0})),
                "max_requests: allows no request",
            ),
            (
                with(json!({"pii": {"acton": "block"}})),
                r#"pii.acton: unknown key (did you mean "action"?)"#,
            ),
            (
                json!({"inject_processor": {"token": "sk-live-1"}, "fly_src_auth": {"allowed_orgs": []}}),
                "fly_src_auth.allowed_orgs: an empty list allows nobody",
            ),
            (
                with(json!({"rate_limit_key": "00"})),
                "rate_limit_key: set by the tokenizer",
            ),
            (
                json!({"basic_auth_processor": {"user": "x-access-token", "password": ""}, "no_auth": {}}),
                "basic_auth_processor.password: empty credential",
            ),
            (
                json!({"basic_auth_processor": {"user": "a:b", "password": "p"}, "no_auth": {}}),
                "basic_auth_processor: basic_auth_processor.user cannot contain ':'",
            ),
            (
                json!({"basic_auth_processor": {"usr": "x", "password": "p"}, "no_auth": {}}),
                r#"basic_auth_processor.usr: unknown key (did you mean "user"?)"#,
            ),
            (
                json!({"query_param_processor": {"param": "", "token": "k"}, "no_auth": {}}),
                "query_param_processor: query_param_processor.param: a parameter name",
            ),
            (
                json!({"query_param_processor": {"parm": "key", "token": "k"}, "no_auth": {}}),
                r#"query_param_processor.parm: unknown key (did you mean "param"?)"#,
            ),
            (
                with(json!({"allowed_git_refs": ["agent/*"]})),
                "must start with refs/ (e.g. refs/heads/agent/*)",
            ),
            (
                with(json!({"alowed_git_refs": ["refs/heads/a"]})),
                r#"alowed_git_refs: unknown key (did you mean "allowed_git_refs"?)"#,
            ),
            (
                with(json!({"zzz_unrelated": 1})),
                "zzz_unrelated: unknown key: the tokenizer would ignore it",
            ),
        ];
        for (secret, want) in cases {
            let got = problems(secret.clone());
            assert!(
                got.iter().any(|p| p.contains(want)),
                "{secret}: want {want:?}, got {got:?}"
            );
        }
    }

    #[test]
    fn the_schema_knows_every_field_of_every_kind() {
        let fmt = json!({"fmt": "%s", "allowed_fmt": ["%s"], "dst": "x", "allowed_dst": ["x"]});
        let mut inject = json!({"token": "t"});
        let mut hmac = json!({"key": "a2V5", "hash": "sha256"});
        for (k, v) in fmt.as_object().unwrap() {
            inject[k] = v.clone();
            hmac[k] = v.clone();
        }
        let oauth = json!({"access_token": "a", "refresh_token": "r"});
        let processors = json!({
            "inject_processor": inject,
            "inject_hmac_processor": hmac,
            "inject_body_processor": {"token": "t", "placeholder": "p"},
            "oauth2_processor": {"token": oauth},
            "oauth2_body_processor": {"token": oauth, "placeholder": "p"},
            "sigv4_processor": {"access_key": "a", "secret_key": "s", "no_swap": true},
            "jwt_processor": {"private_key": "cA==", "email": "e", "sub": "s", "scopes": "x",
                              "token_url": "https://t"},
            "client_credentials_processor": {"client_id": "i", "client_secret": "s",
                                             "token_url": "https://t", "scopes": "x"},
            "github_app_processor": {"private_key": "cA==", "app_id": "1",
                                     "installation_id": "2", "token_url": "https://t"},
            "basic_auth_processor": {"user": "u", "password": "p", "replace": true},
            "query_param_processor": {"param": "key", "token": "t", "replace": true},
        });
        let auths = json!({
            "bearer_auth": {"digest": DIGEST},
            "macaroon_auth": {"key": "a2V5"},
            "flyio_macaroon_auth": {"access": {"action": "r", "orgid": 1}},
            "fly_src_auth": {"allowed_orgs": ["o"], "allowed_apps": ["a"], "allowed_instances": ["i"]},
            "oidc_auth": {"issuer": "https://i", "audience": "a", "claims": {"any": "x"}},
            "mtls_auth": {"uris": ["spiffe://x/*"], "dns": ["a.b"]},
            "no_auth": {},
        });
        let rules = json!({"allowed_hosts": ["h"], "allowed_host_pattern": "^h$",
            "allowed_methods": ["GET"], "allowed_paths": ["/"], "not_before": 1,
            "allowed_git_refs": ["refs/heads/agent/*"], "allowed_mcp_tools": ["search_*"],
            "expires_at": 4_000_000_000u64, "id": "i", "rate_limit": "1/s", "max_requests": 1,
            "pii": {"action": "block", "kinds": ["email"]}});
        for (pk, pv) in processors.as_object().unwrap() {
            for (ak, av) in auths.as_object().unwrap() {
                let mut secret = rules.clone();
                secret[pk] = pv.clone();
                secret[ak] = av.clone();
                let got = problems(secret.clone());
                assert!(
                    got.iter().all(|p| !p.contains("unknown key")),
                    "{pk} + {ak}: {got:?}"
                );
            }
        }
    }

    #[test]
    fn no_message_quotes_a_credential() {
        let got = problems(
            json!({"inject_processor": {"token": "sk-SECRET-1 ", "dst": "bad header"}, "no_auth": {}}),
        );
        assert!(!got.is_empty());
        assert!(got.iter().all(|p| !p.contains("SECRET")), "{got:?}");
    }
}
