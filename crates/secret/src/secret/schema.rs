//! Which keys a secret may hold, and where: the map [`super::validate`] walks to find
//! keys that decoding would silently ignore (typos such as `alowed_paths` or `tokn`).
//! Go ignores unknown keys, and so does opening a secret; sealing one refuses them.
//!
//! Kept by hand beside the config structs; a test seals every processor and auth kind
//! with all of its fields and checks the map knows each key serialization writes.

/// Fields shared by the processors that render a header (`fmt`/`dst`).
const FMT_DST: &[&str] = &["fmt", "allowed_fmt", "dst", "allowed_dst"];

/// The keys a processor object may hold (besides [`FMT_DST`] where it renders a header),
/// by processor key. `multi_processor` holds a list of processor objects instead.
const PROCESSORS: &[(&str, &[&str], bool)] = &[
    ("inject_processor", &["token"], true),
    ("inject_hmac_processor", &["key", "hash"], true),
    ("inject_body_processor", &["token", "placeholder"], false),
    ("oauth2_processor", &["token"], false),
    ("oauth2_body_processor", &["token", "placeholder"], false),
    (
        "sigv4_processor",
        &["access_key", "secret_key", "no_swap"],
        false,
    ),
    (
        "jwt_processor",
        &["private_key", "email", "sub", "scopes", "token_url"],
        false,
    ),
    (
        "client_credentials_processor",
        &["client_id", "client_secret", "token_url", "scopes"],
        false,
    ),
    (
        "github_app_processor",
        &["private_key", "app_id", "installation_id", "token_url"],
        false,
    ),
    (
        "basic_auth_processor",
        &["user", "password", "replace"],
        false,
    ),
    (
        "query_param_processor",
        &["param", "token", "replace"],
        false,
    ),
];

/// The keys an auth object may hold. `None`: free-form (macaroon caveats).
const AUTHS: &[(&str, Option<&[&str]>)] = &[
    ("bearer_auth", Some(&["digest"])),
    ("macaroon_auth", Some(&["key"])),
    ("flyio_macaroon_auth", Some(&["access"])),
    (
        "fly_src_auth",
        Some(&["allowed_orgs", "allowed_apps", "allowed_instances"]),
    ),
    ("oidc_auth", Some(&["issuer", "audience", "claims"])),
    ("mtls_auth", Some(&["uris", "dns"])),
    ("no_auth", Some(&[])),
];

/// Objects inside a processor or auth object: (parent key, field, its keys; `None`:
/// free-form).
const NESTED: &[(&str, &str, Option<&[&str]>)] = &[
    (
        "oauth2_processor",
        "token",
        Some(&["access_token", "refresh_token"]),
    ),
    (
        "oauth2_body_processor",
        "token",
        Some(&["access_token", "refresh_token"]),
    ),
    ("flyio_macaroon_auth", "access", None),
    ("oidc_auth", "claims", None),
];

/// The keys of the `pii` rule.
pub const PII: &[&str] = &["action", "kinds"];

/// Set by this tokenizer in tokens it derives; sealing them by hand is a mistake.
pub const DERIVED_ONLY: &[&str] = &["derived_from", "rate_limit_key"];

/// Every processor key.
pub fn processor_keys() -> impl Iterator<Item = &'static str> {
    PROCESSORS
        .iter()
        .map(|(k, _, _)| *k)
        .chain(["multi_processor"])
}

/// Every auth key.
pub fn auth_keys() -> impl Iterator<Item = &'static str> {
    AUTHS.iter().map(|(k, _)| *k)
}

/// The keys a `kind` object (a processor or an auth key) may hold; `None` for an
/// unknown kind, `Some(None)` for a free-form one.
pub fn fields_of(kind: &str) -> Option<Option<Vec<&'static str>>> {
    if let Some((_, fields, fmt_dst)) = PROCESSORS.iter().find(|(k, _, _)| *k == kind) {
        let mut all = fields.to_vec();
        if *fmt_dst {
            all.extend_from_slice(FMT_DST);
        }
        return Some(Some(all));
    }
    AUTHS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, f)| f.map(<[&str]>::to_vec))
}

/// The keys of the object at `kind.field`, if it is one: `Some(None)` when free-form.
pub fn nested(kind: &str, field: &str) -> Option<Option<&'static [&'static str]>> {
    NESTED
        .iter()
        .find(|(k, f, _)| *k == kind && *f == field)
        .map(|(_, _, keys)| *keys)
}
