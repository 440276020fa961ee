//! What the outside-attack tests share: the proxy as attacked (reflection guard on, as by
//! default, and an admin listener) and the secrets anyone can seal with the public key.

use serde_json::Value;

use super::{Env, with};

/// A proxy with the reflection guard on and an admin listener, and one TLS upstream that
/// is `127.0.0.1:PORT`, `api.test` and `other.test`; `extra` are more `serve` flags.
pub async fn env(extra: &[&str]) -> Env {
    Env::builder()
        .names(&["127.0.0.1", "api.test", "other.test"])
        .flags(&["--reflection-guard=true"])
        .admin()
        .flags(extra)
        .start()
        .await
}

/// A secret anyone can seal: `processor`, no auth, plus `extra`.
pub fn caller_sealed(processor: Value, extra: Value) -> Value {
    with(with(processor, serde_json::json!({"no_auth": {}})), extra)
}
