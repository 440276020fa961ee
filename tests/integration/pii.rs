//! PII scanning of request bodies through the running proxy: redact and block, JSON and
//! text, global and per-secret policies, matches split across chunks, exact lengths.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::support::upstream::Echo;
use crate::support::{Env, inject, with};

const EMAIL: &str = "jane.doe@example.com";
const CARD: &str = "4111 1111 1111 1111";
const SSN: &str = "123-45-6789";

/// A proxy with an admin listener (plus `extra` flags) in front of `api.test`.
async fn env(extra: &[&str]) -> Env {
    let builder = Env::builder().names(&["api.test"]).admin();
    builder.flags(extra).start().await
}

/// POST `body` to api.test with `secret` (sealed here); status and text.
async fn post(e: &Env, secret: &Value, content_type: &str, body: reqwest::Body) -> (u16, String) {
    let got = e
        .send(
            "POST",
            "/v1/messages",
            &[&e.seal(secret)],
            &[
                ("proxy-authorization", "Bearer pw"),
                ("content-type", content_type),
            ],
            body,
        )
        .await;
    (got.status, got.body)
}

/// The latest audit entry.
async fn last_audit(e: &Env) -> Value {
    e.admin().audit("limit=1", 1).await[0].clone()
}

fn secret() -> Value {
    inject("sk-live-injected-credential-0123456789", "pw")
}

/// A body streamed in the given chunks (so a match can straddle two of them).
fn chunked(parts: &[&str]) -> reqwest::Body {
    let chunks: Vec<Result<Bytes, std::io::Error>> = parts
        .iter()
        .map(|p| Ok(Bytes::from(p.to_string())))
        .collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

#[tokio::test]
async fn redacts_json_bodies_with_an_exact_length() {
    let e = env(&["--pii-action", "redact"]).await;
    let body = json!({"messages": [{"role": "user", "content": format!("mail {EMAIL}, card {CARD}")}], "n": 4111111111111111u64});
    let (status, text) = post(&e, &secret(), "application/json", body.to_string().into()).await;
    assert_eq!(status, 200, "{text}");
    let echo = Echo::parse(&text);
    let received: Value = serde_json::from_str(echo.body()).expect("still valid JSON");
    let content = received["messages"][0]["content"].as_str().unwrap();
    assert_eq!(content, "mail [REDACTED], card [REDACTED]");
    assert_eq!(received["n"], "[REDACTED]");
    assert_eq!(
        echo.header("content-length").unwrap(),
        echo.body().len().to_string()
    );
    // The injected credential is not PII: it is added after scanning.
    assert_eq!(
        echo.header("authorization").unwrap(),
        "Bearer sk-live-injected-credential-0123456789"
    );
    let audit = last_audit(&e).await;
    assert_eq!(audit["decision"], "pii-redacted");
    assert_eq!(audit["pii"], json!(["email", "credit_card"]));
}

#[tokio::test]
async fn redacts_text_streams_across_chunk_boundaries() {
    let e = env(&["--pii-action", "redact"]).await;
    let (status, text) = post(
        &e,
        &secret(),
        "text/plain",
        chunked(&[
            "call me at jane.doe@exa",
            "mple.com or ssn 123-4",
            "5-6789 thanks",
        ]),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let echo = Echo::parse(&text);
    assert_eq!(
        echo.body(),
        "call me at [REDACTED] or ssn [REDACTED] thanks"
    );
    assert!(
        echo.header("content-length").is_none()
            || echo.header("content-length").unwrap() == echo.body().len().to_string()
    );
}

#[tokio::test]
async fn block_refuses_bodies_with_pii_and_passes_clean_ones() {
    let e = env(&["--pii-action", "block", "--pii-kinds", "ssn,credit_card"]).await;
    let (status, text) = post(
        &e,
        &secret(),
        "application/json",
        json!({"ssn": SSN}).to_string().into(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(text.trim(), "request body contains PII (ssn)");
    assert!(!text.contains(SSN));
    assert_eq!(last_audit(&e).await["decision"], "pii-blocked");
    // An email is not in PII_KINDS here.
    let (status, text) = post(
        &e,
        &secret(),
        "application/json",
        json!({"to": EMAIL}).to_string().into(),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(Echo::parse(&text).body().contains(EMAIL));
    // Binary bodies are not scanned.
    let (status, _) = post(&e, &secret(), "application/octet-stream", SSN.into()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn block_mode_bounds_what_it_buffers() {
    let e = env(&["--pii-action", "block", "--max-buffered-body", "1KiB"]).await;
    let (status, text) = post(&e, &secret(), "text/plain", "x".repeat(4096).into()).await;
    assert_eq!(status, 413, "{text}");
}

#[tokio::test]
async fn secrets_tighten_the_global_policy_and_never_loosen_it() {
    let e = env(&["--pii-action", "redact"]).await;
    // Anyone can seal a secret that says "off": a secret only ever tightens scanning.
    let off = with(secret(), json!({"pii": {"action": "off"}}));
    let (status, text) = post(&e, &off, "text/plain", EMAIL.into()).await;
    assert_eq!(status, 200);
    assert_eq!(Echo::parse(&text).body(), "[REDACTED]");

    let strict = with(
        secret(),
        json!({"pii": {"action": "block", "kinds": ["email"]}}),
    );
    let (status, _) = post(&e, &strict, "text/plain", EMAIL.into()).await;
    assert_eq!(status, 403);

    let e = env(&[]).await;
    let (status, text) = post(&e, &secret(), "text/plain", EMAIL.into()).await;
    assert_eq!(
        (status, Echo::parse(&text).body().to_owned()),
        (200, EMAIL.to_owned())
    );
    let redact = with(secret(), json!({"pii": {"action": "redact"}}));
    let (_, text) = post(&e, &redact, "text/plain", EMAIL.into()).await;
    assert_eq!(Echo::parse(&text).body(), "[REDACTED]");

    let bad = r#"{"inject_processor":{"token":"t"},"no_auth":{},"pii":{"action":"shred"}}"#;
    let got = e.send("POST", "/", &[&e.seal_raw(bad)], &[], "x").await;
    assert_eq!(got.status, 400);
}
