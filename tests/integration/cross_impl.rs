//! Sealing across implementations: libsodium's `crypto_box_seal` through PyNaCl (what
//! the Go tool's `box.SealAnonymous` is byte-compatible with) against this crate.
//!
//! PyNaCl comes from `tests/requirements.txt` (see `support::python`). Without Python
//! these tests fail, on purpose: a skipped compatibility test would look like a passing
//! one.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use std::io::Write;

use serde_json::{Value, json};

use crate::support::{Env, binary, inject, python, with};

const OPEN: &str = binary::GO_OPEN_KEY;
const SEAL: &str = binary::GO_SEAL_KEY;

/// Sealed with PyNaCl for SEAL (wire-compat spec 7.3).
const GO_VECTOR: &str = "uIxOrDkrrg07/ZB+5zMUgDprNBoaWtGGWgbtiTMAWRnjrb+wT+nDSyowpMdxxd7ws9iLbvzPwxWWAXQJiEP9TmWqXKk5v90b1DYQMB6aDdPCcjUZbkjkRGY8OOSn2fTZc/G24lEnX2F8wYhWrUc4CvNxcj+q6iRCSOg9gFt5wVkXuAjfD9oemLKuRtbXKrlVTRS/18epvV7uohsI24S+JYoWDYo=";
const GO_VECTOR_PLAIN: &str = r#"{"inject_processor":{"token":"supersecret"},"bearer_auth":{"digest":"IDtwta6IOTIWG70L3tk1fnY+Y6/OmLFiML4z8LlMLMU="}}"#;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/integration/pynacl_box.py")
}

/// `python3 pynacl_box.py COMMAND KEY` with `input` on stdin; its stdout.
fn pynacl(command: &str, key_hex: &str, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(python::python())
        .arg(script())
        .args([command, key_hex])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "pynacl_box.py {command} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// PyNaCl's sealed box of `plaintext` for `seal_key_hex`, as base64.
fn pynacl_seal(seal_key_hex: &str, plaintext: &[u8]) -> String {
    let out = String::from_utf8(pynacl("seal", seal_key_hex, plaintext)).unwrap();
    out.trim().to_owned()
}

/// PyNaCl's opening of base64 `sealed` with `open_key_hex`.
fn pynacl_open(open_key_hex: &str, sealed: &str) -> Vec<u8> {
    pynacl("open", open_key_hex, sealed.as_bytes())
}

#[tokio::test]
async fn a_pynacl_sealed_secret_is_accepted_by_the_proxy() {
    let e = Env::start().await;
    let host = e.host();
    let secret = with(
        inject("tok-pynacl-1", "auth-pynacl-1"),
        json!({"allowed_hosts": [host]}),
    );
    let sealed = pynacl_seal(&e.tk.seal_key.to_hex(), secret.to_string().as_bytes());
    let got = e
        .get(
            "/from-python",
            &[&sealed],
            &[("proxy-authorization", "Bearer auth-pynacl-1")],
        )
        .await;
    let echo = got.echo();
    assert_eq!(echo.header_all("authorization"), ["Bearer tok-pynacl-1"]);
    assert!(echo.header("proxy-tokenizer").is_none());
    assert_eq!(echo.uri(), "/from-python");

    // The same box with the wrong caller token is still refused.
    let got = e
        .get(
            "/from-python",
            &[&sealed],
            &[("proxy-authorization", "Bearer wrong")],
        )
        .await;
    assert_eq!(got.status, 407);
}

#[test]
fn the_binary_seals_what_pynacl_opens() {
    let secret = json!({
        "inject_processor": {"token": "tok-pynacl-2", "fmt": "%s", "dst": "x-api-key"},
        "bearer_auth": {"digest": "IDtwta6IOTIWG70L3tk1fnY+Y6/OmLFiML4z8LlMLMU="},
        "allowed_hosts": ["api.example.com"],
    });
    let out = binary::run(&["seal", "--seal-key", SEAL, "--json", &secret.to_string()]).ok();
    let sealed = out.stdout.trim();
    let plain = pynacl_open(OPEN, sealed);
    let opened: Value = serde_json::from_slice(&plain).unwrap_or_else(|e| {
        panic!(
            "PyNaCl opened something that is not JSON ({e}): {}",
            String::from_utf8_lossy(&plain)
        )
    });
    assert_eq!(opened, secret);

    // 48 bytes of overhead, like crypto_box_seal.
    let raw = ::tokenizer::secret::b64::decode(sealed).unwrap();
    assert_eq!(raw.len(), plain.len() + 48);
}

#[test]
fn pynacl_opens_the_go_vector() {
    let plain = pynacl_open(OPEN, GO_VECTOR);
    assert_eq!(String::from_utf8(plain).unwrap(), GO_VECTOR_PLAIN);
}

#[test]
fn the_binary_opens_a_pynacl_box_for_the_go_key_pair() {
    let sealed = pynacl_seal(SEAL, GO_VECTOR_PLAIN.as_bytes());
    assert_ne!(sealed, GO_VECTOR, "sealing is randomized");
    let opened = binary::unseal(OPEN, &sealed, true);
    let want: Value = serde_json::from_str(GO_VECTOR_PLAIN).unwrap();
    assert_eq!(opened, want);
}
