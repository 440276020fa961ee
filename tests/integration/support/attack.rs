//! What the outside-attack tests share (issues 13 and 22). The attacker is a compromised
//! sandbox that can reach the tokenizer and holds what everyone holds: the seal key, so
//! it can seal its own `no_auth` secrets ("caller-sealed", with any rules) and send them
//! beside the operator's real one. Here: the proxy as attacked (reflection guard on, as
//! by default, and an admin listener), the real secret, the secrets anyone can seal, and
//! the check that a text carries a credential in no form a client could decode.

use base64::Engine;
use serde_json::{Value, json};

use super::oidc_issuer::now;
use super::{Env, Reply, bearer, with};

/// The real credential the operator sealed.
pub const REAL: &str = "sk-live-REAL-4f9a8b7c6d5e4f3a2b1c";
/// The caller password the real secret is bound to.
pub const AUTH: &str = "caller-pw-9d1e";

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

/// The operator's secret: `REAL` into `Authorization`, for callers holding `AUTH`.
pub fn real(extra: Value) -> Value {
    with(
        json!({"inject_processor": {"token": REAL}, "bearer_auth": bearer(AUTH)}),
        extra,
    )
}

/// A secret anyone can seal: `processor`, no auth, plus `extra`.
pub fn caller_sealed(processor: Value, extra: Value) -> Value {
    with(with(processor, json!({"no_auth": {}})), extra)
}

/// A secret anyone can seal: no auth, its own `token` into `x-caller`, plus `extra`.
pub fn caller_token(token: &str, extra: Value) -> Value {
    caller_sealed(
        json!({"inject_processor": {"token": token, "dst": "x-caller"}}),
        extra,
    )
}

/// Far in the future: a billion seconds from now.
pub fn far() -> i64 {
    now() + 1_000_000_000
}

/// A secret as a test holds it: JSON to seal, or a sealed value (with params, say).
pub trait Sealable {
    fn sealed(&self, e: &Env) -> String;
}

impl Sealable for Value {
    fn sealed(&self, e: &Env) -> String {
        e.seal(self)
    }
}

impl Sealable for str {
    fn sealed(&self, _: &Env) -> String {
        self.to_owned()
    }
}

impl Sealable for String {
    fn sealed(&self, _: &Env) -> String {
        self.clone()
    }
}

/// `method url` through the proxy with each of `secrets` (in order), `AUTH`, `extra`
/// headers and `body`, as the attacker sends it.
pub async fn call<S: Sealable + ?Sized>(
    e: &Env,
    method: &str,
    url: &str,
    secrets: &[&S],
    extra: &[(&str, &str)],
    body: &str,
) -> Reply {
    let sealed: Vec<String> = secrets.iter().map(|s| s.sealed(e)).collect();
    let sealed: Vec<&str> = sealed.iter().map(String::as_str).collect();
    let auth = format!("Bearer {AUTH}");
    let mut headers = vec![("proxy-authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    e.send(method, url, &sealed, &headers, body.to_owned())
        .await
}

/// `text` carries `credential` in none of the forms a client could decode.
pub fn assert_no_credential(context: &str, text: &str, credential: &str) {
    let b = credential.as_bytes();
    let b64 = base64::engine::general_purpose::STANDARD.encode(b);
    let url: String = form_urlencoded::byte_serialize(b).collect();
    for form in [credential, &b64[..b64.len() - 4], &hex::encode(b), &url] {
        assert!(!text.contains(form), "{context}: {form:?} in {text:?}");
    }
    // Not even part of it: no run of 12 of its characters.
    for window in credential.as_bytes().windows(12) {
        let window = std::str::from_utf8(window).unwrap();
        assert!(!text.contains(window), "{context}: {window:?} in {text:?}");
    }
}
