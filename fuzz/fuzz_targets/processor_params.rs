//! Request-time params through every processor: the input is the params part of a
//! `Proxy-Tokenizer` line (a JSON object of strings, chosen by the client). It is parsed
//! as the proxy parses it, then each processor kind is built with it and run over a
//! request, as the pipeline does (`apply`, then `finish` for SigV4), body drained.
//!
//! A client-chosen `fmt` of `"%é"` panicked the request task here once.

#![no_main]

use std::sync::LazyLock;

use http::{HeaderValue, Request};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tokenizer::body::{Budget, full};
use tokenizer::processor::{StepContext, apply, finish};
use tokenizer::secret::{Secret, TokenizerHeader, b64};

/// One secret per processor kind (and a multi_processor of two).
static SECRETS: LazyLock<Vec<Secret>> = LazyLock::new(|| {
    let rsa = b64::encode(include_bytes!("../fixtures/rsa-2048-fuzz-only.pem"));
    let ed25519 = b64::encode(include_bytes!("../fixtures/ed25519-fuzz-only.pem"));
    let key = b64::encode(b"hmac-key");
    [
        serde_json::json!({"inject_processor": {"token": "tok-123456789"}}),
        serde_json::json!({"inject_processor": {"token": "tok", "allowed_fmt": ["%s", "x %s"],
            "allowed_dst": ["X-Key", "Authorization"]}}),
        serde_json::json!({"inject_hmac_processor": {"key": key, "hash": "sha256"}}),
        serde_json::json!({"inject_body_processor": {"token": "tok-123456789"}}),
        serde_json::json!({"oauth2_processor": {"token": {"access_token": "acc-1",
            "refresh_token": "ref-1"}}}),
        serde_json::json!({"oauth2_body_processor": {"token": {"access_token": "acc-1"}}}),
        serde_json::json!({"sigv4_processor": {"access_key": "AK", "secret_key": "SK"}}),
        serde_json::json!({"jwt_processor": {"private_key": ed25519, "email": "a@b.c"}}),
        serde_json::json!({"client_credentials_processor": {"client_id": "i",
            "client_secret": "s", "token_url": "https://auth.test/token"}}),
        serde_json::json!({"github_app_processor": {"private_key": rsa, "app_id": "1",
            "installation_id": "2"}}),
        serde_json::json!({"basic_auth_processor": {"user": "x-access-token",
            "password": "tok-123456789"}}),
        serde_json::json!({"query_param_processor": {"param": "key", "token": "k&=; +%",
            "replace": true}}),
        serde_json::json!({"multi_processor": [
            {"inject_body_processor": {"token": "a"}},
            {"inject_hmac_processor": {"key": key, "hash": "sha256"}}]}),
    ]
    .into_iter()
    .map(|mut v| {
        v["no_auth"] = serde_json::json!({});
        Secret::from_json(v.to_string().as_bytes()).expect("fuzz secret")
    })
    .collect()
});

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(value) = HeaderValue::from_str(&format!("sealed; {text}")) else {
        return;
    };
    let Ok(header) = TokenizerHeader::parse(&value) else {
        return;
    };
    for secret in SECRETS.iter() {
        let mut steps = Vec::new();
        if secret.processor.build(&header.params, &mut steps).is_err() {
            continue;
        }
        let (mut parts, ()) = Request::builder()
            .method("POST")
            .uri("https://api.test/v1/x?b=2&a=1")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AK/20260304/us-east-1/s3/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=00",
            )
            .header("content-length", "18")
            .body(())
            .expect("request")
            .into_parts();
        RUNTIME.block_on(async {
            let mut ctx = StepContext::new(1 << 16, Budget::new(1 << 20));
            let body = full(&b"{{ACCESS_TOKEN}} x"[..]);
            let Ok(body) = apply(&steps, &mut parts, body, &mut ctx).await else {
                return;
            };
            if let Ok(body) = finish(&steps, &mut parts, body, &mut ctx).await {
                let _ = body.collect().await;
            }
        });
    }
});
