//! Real servers and clients for the integration tests.

pub mod binary;
pub mod ca;
pub mod python;
pub mod raw;
pub mod sidecar;
pub mod tokenizer;
pub mod upstream;

use ::tokenizer::auth::BearerAuth;
use ::tokenizer::secret::b64;
use serde_json::{Value, json};

/// Once per process: the rustls provider reqwest uses.
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `{"bearer_auth":{"digest":…}}` body for `token`.
pub fn bearer(token: &str) -> Value {
    json!({ "digest": b64::encode(BearerAuth::for_token(token).digest.expose()) })
}

/// An inject secret bound to bearer `auth`.
pub fn inject(token: &str, auth: &str) -> Value {
    json!({"inject_processor": {"token": token}, "bearer_auth": bearer(auth)})
}

/// Merge extra top-level keys into a secret.
pub fn with(mut secret: Value, extra: Value) -> Value {
    let obj = secret.as_object_mut().unwrap();
    for (k, v) in extra.as_object().unwrap() {
        obj.insert(k.clone(), v.clone());
    }
    secret
}
