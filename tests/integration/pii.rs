//! PII scanning of request bodies through the running proxy: redact and block, JSON and
//! text, global and per-secret policies, matches split across chunks, exact lengths.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::support::ca::TestCa;
use crate::support::tokenizer::Tokenizer;
use crate::support::upstream::{Echo, Upstream};
use crate::support::{inject, with};

const EMAIL: &str = "jane.doe@example.com";
const CARD: &str = "4111 1111 1111 1111";
const SSN: &str = "123-45-6789";

struct Env {
    _ca: TestCa,
    _upstream: Upstream,
    tk: Tokenizer,
    admin: String,
}

async fn env(extra: &[&str]) -> Env {
    let ca = TestCa::new();
    let upstream = Upstream::start(&ca, &["api.test"]).await;
    let pin = format!("api.test=127.0.0.1:{}", upstream.port());
    let mut flags = vec![
        "--upstream-resolve",
        pin.as_str(),
        "--admin-address",
        "127.0.0.1:0",
    ];
    flags.extend_from_slice(extra);
    let tk = Tokenizer::start(&ca, &flags).await;
    let admin = format!("http://{}", tk.admin_addr.unwrap());
    Env {
        _ca: ca,
        _upstream: upstream,
        tk,
        admin,
    }
}

impl Env {
    async fn post(&self, secret: &Value, content_type: &str, body: reqwest::Body) -> (u16, String) {
        let resp = self
            .tk
            .client()
            .post("http://api.test/v1/messages")
            .header("proxy-tokenizer", self.tk.seal(secret))
            .header("proxy-authorization", "Bearer pw")
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    async fn last_audit(&self) -> Value {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        for _ in 0..50 {
            let body: Value = http
                .get(format!("{}/v1/audit?limit=1", self.admin))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(e) = body["entries"].get(0) {
                return e.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no audit entry");
    }
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
    let (status, text) = e
        .post(&secret(), "application/json", body.to_string().into())
        .await;
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
    let audit = e.last_audit().await;
    assert_eq!(audit["decision"], "pii-redacted");
    assert_eq!(audit["pii"], json!(["email", "credit_card"]));
}

#[tokio::test]
async fn redacts_text_streams_across_chunk_boundaries() {
    let e = env(&["--pii-action", "redact"]).await;
    let (status, text) = e
        .post(
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
    let (status, text) = e
        .post(
            &secret(),
            "application/json",
            json!({"ssn": SSN}).to_string().into(),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(text.trim(), "request body contains PII (ssn)");
    assert!(!text.contains(SSN));
    assert_eq!(e.last_audit().await["decision"], "pii-blocked");
    // An email is not in PII_KINDS here.
    let (status, text) = e
        .post(
            &secret(),
            "application/json",
            json!({"to": EMAIL}).to_string().into(),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    assert!(Echo::parse(&text).body().contains(EMAIL));
    // Binary bodies are not scanned.
    let (status, _) = e
        .post(&secret(), "application/octet-stream", SSN.into())
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn block_mode_bounds_what_it_buffers() {
    let e = env(&["--pii-action", "block", "--max-buffered-body", "1KiB"]).await;
    let (status, text) = e
        .post(&secret(), "text/plain", "x".repeat(4096).into())
        .await;
    assert_eq!(status, 413, "{text}");
}

#[tokio::test]
async fn secrets_tighten_the_global_policy_and_never_loosen_it() {
    let e = env(&["--pii-action", "redact"]).await;
    // Anyone can seal a secret that says "off": a secret only ever tightens scanning.
    let off = with(secret(), json!({"pii": {"action": "off"}}));
    let (status, text) = e.post(&off, "text/plain", EMAIL.into()).await;
    assert_eq!(status, 200);
    assert_eq!(Echo::parse(&text).body(), "[REDACTED]");

    let strict = with(
        secret(),
        json!({"pii": {"action": "block", "kinds": ["email"]}}),
    );
    let (status, _) = e.post(&strict, "text/plain", EMAIL.into()).await;
    assert_eq!(status, 403);

    let e = env(&[]).await;
    let (status, text) = e.post(&secret(), "text/plain", EMAIL.into()).await;
    assert_eq!(
        (status, Echo::parse(&text).body().to_owned()),
        (200, EMAIL.to_owned())
    );
    let redact = with(secret(), json!({"pii": {"action": "redact"}}));
    let (_, text) = e.post(&redact, "text/plain", EMAIL.into()).await;
    assert_eq!(Echo::parse(&text).body(), "[REDACTED]");

    let bad = r#"{"inject_processor":{"token":"t"},"no_auth":{},"pii":{"action":"shred"}}"#;
    let resp =
        e.tk.client()
            .post("http://api.test/")
            .header("proxy-tokenizer", e.tk.seal_raw(bad))
            .body("x")
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 400);
}
