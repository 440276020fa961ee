//! Secret JSON decoding (Go's `encoding/json` rules): decoding never panics, what
//! decodes re-encodes to the same secret and builds its processors, and the stripped
//! form hides every credential.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokenizer::secret::{Params, REDACTED, Secret};

/// Fields that hold credential material, in any processor or auth object.
const CREDENTIAL_FIELDS: &[&str] = &[
    "token",
    "key",
    "digest",
    "access_token",
    "refresh_token",
    "access_key",
    "secret_key",
    "private_key",
    "client_secret",
];

fuzz_target!(|data: &[u8]| {
    let _ = Secret::unknown_keys(data);
    let Ok(secret) = Secret::from_json(data) else {
        return;
    };

    let json = secret.to_json();
    let again = Secret::from_json(json.as_bytes())
        .unwrap_or_else(|e| panic!("re-encoded secret does not decode: {e}\n{}", *json));
    assert_eq!(secret, again, "round trip changed the secret\n{}", *json);
    assert_eq!(*json, *again.to_json(), "encoding is not stable");
    // Building parses what decoding leaves for later (PEM keys, formats).
    let _ = secret.processor.build(&Params::new(), &mut Vec::new());

    let stripped = secret.stripped_json();
    let tree: Value = serde_json::from_str(&stripped).expect("stripped JSON is JSON");
    assert_redacted(&tree, &stripped);
    // Stripping is idempotent: a stripped secret that decodes strips to itself.
    if let Ok(decoded) = Secret::from_json(stripped.as_bytes()) {
        assert_eq!(
            decoded.stripped_json(),
            stripped,
            "stripping is not idempotent"
        );
    }
});

/// Every credential field of the processor and auth objects holds `REDACTED` (or
/// nothing). `flyio_macaroon_auth.access` is kept as given: it describes what a caller
/// may do and holds no credential.
fn assert_redacted(tree: &Value, whole: &str) {
    let Value::Object(top) = tree else {
        panic!("stripped JSON is not an object: {whole}");
    };
    for (key, value) in top {
        if key.ends_with("_processor") || key.ends_with("_auth") {
            walk(value, whole);
        }
    }
}

fn walk(value: &Value, whole: &str) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "access" {
                    continue;
                }
                if CREDENTIAL_FIELDS.contains(&k.as_str())
                    && let Value::String(s) = v
                {
                    assert!(
                        s == REDACTED || s.is_empty(),
                        "credential field {k:?} not redacted in {whole}"
                    );
                }
                walk(v, whole);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, whole)),
        _ => {}
    }
}
