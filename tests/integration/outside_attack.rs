//! Regression tests for the outside attack on commit e0c932c (issue 13), through the
//! running proxy, with the reflection guard on as it is by default. The attacker is a
//! compromised sandbox that can reach the tokenizer and holds what everyone holds: the
//! seal key, so it can seal its own `no_auth` secrets ("caller-sealed") and send them
//! beside the real one. Each test names the finding it covers; every one of them failed
//! on e0c932c.

use std::time::{Duration, Instant};

use ::tokenizer::auth::MacaroonAuth;
use ::tokenizer::auth::macaroon::Caveat;
use ::tokenizer::secret::{OpenKey, Secret, b64};
use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::attack::{caller_sealed as caller, env};
use crate::support::binary;
use crate::support::raw::RawConn;
use crate::support::upstream::Echo;
use crate::support::{Env, Reply, bearer, poll_until, seal_for, wait_until, with};

/// The real credential the operator sealed.
const REAL: &str = "sk-live-REAL-4f9a8b7c6d5e4f3a2b1c";
/// The caller password the real secret is bound to.
const AUTH: &str = "caller-pw-9d1e";

/// The operator's secret: `REAL` into `Authorization`, for callers holding `AUTH`.
fn real(extra: Value) -> Value {
    with(
        json!({"inject_processor": {"token": REAL}, "bearer_auth": bearer(AUTH)}),
        extra,
    )
}

/// A secret as a test holds it: JSON to seal, or a sealed value (with params, say).
trait Sealable {
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

/// `method url` through the proxy with each of `secrets`, `AUTH`, `extra` headers and
/// `body`, as the attacker sends it.
async fn call<S: Sealable + ?Sized>(
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
fn assert_no_credential(context: &str, text: &str, credential: &str) {
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

fn headers_text(h: &reqwest::header::HeaderMap) -> String {
    h.iter()
        .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
        .collect()
}

// === 1. compressed responses ===

#[tokio::test]
async fn finding_1_a_compressed_echo_never_reaches_the_client() {
    let e = env(&[]).await;
    let s = real(json!({}));
    for encoding in ["gzip", "br", "zstd", "deflate", "gzip, deflate, br, zstd"] {
        let got = call(
            &e,
            "GET",
            "http://api.test/echo-gzip",
            &[&s],
            &[("accept-encoding", encoding)],
            "",
        )
        .await;
        assert_eq!(got.status, 200, "{encoding}: {}", got.body);
        assert!(got.headers.get("content-encoding").is_none(), "{encoding}");
        assert!(got.body.contains("[REDACTED]"), "{encoding}: {}", got.body);
        assert_no_credential(encoding, &got.body, REAL);
        // The upstream was asked for no compression at all.
        assert!(
            got.body.contains(r#"["accept-encoding","identity"]"#),
            "{}",
            got.body
        );
    }
    // An upstream that compresses anyway: the guard could not read it, so it is refused.
    let got = call(&e, "GET", "http://api.test/force-gzip", &[&s], &[], "").await;
    assert_eq!(got.status, 502, "{}", got.body);
    assert!(got.body.contains("reflection guard"), "{}", got.body);
    // Without a guard there is nothing to protect: compression passes through.
    let plain = Env::builder().names(&["api.test"]).start().await;
    let got = call(&plain, "GET", "http://api.test/force-gzip", &[&s], &[], "").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["content-encoding"], "gzip");
}

#[tokio::test]
async fn a_range_request_cannot_slice_a_credential_out_of_an_echo() {
    let e = env(&[]).await;
    let s = real(json!({}));
    let whole = call(&e, "GET", "http://api.test/echo-range", &[&s], &[], "").await;
    let at = whole.body.find("[REDACTED]").expect("masked echo");
    // Ask for the credential in two slices: each would be too short to match.
    for (a, b) in [(at, at + 10), (at + 11, at + 40)] {
        let range = format!("bytes={a}-{b}");
        let got = call(
            &e,
            "GET",
            "http://api.test/echo-range",
            &[&s],
            &[("range", &range)],
            "",
        )
        .await;
        assert_eq!(got.status, 200, "the range was not forwarded");
        assert_no_credential(&range, &got.body, REAL);
    }
}

// === 2. tokens from token exchanges ===

#[tokio::test]
async fn finding_2_a_token_from_an_exchange_is_no_broader_than_its_secret() {
    let e = env(&[]).await;
    let port = e.upstream.port();
    // No host rule: the exchange is pinned to its token URL's host, and so is the token.
    let parent = json!({
        "client_credentials_processor": {"client_id": "id", "client_secret": "cs-parent-secret",
            "token_url": format!("https://127.0.0.1:{port}/token/cc")},
        "bearer_auth": bearer(AUTH),
        "allowed_methods": ["POST", "GET"],
        "allowed_paths": ["/token/cc", "/v1/**"],
        "rate_limit": "3/min",
    });
    let got = call(
        &e,
        "POST",
        &format!("http://{}/token/cc", e.host()),
        &[&parent],
        &[],
        "",
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let v: Value = serde_json::from_str(&got.body).unwrap();
    let token = v["sealed_token"].as_str().unwrap().to_owned();
    let send = |method: &'static str, url: String| {
        let token = token.clone();
        let e = &e;
        async move { call(e, method, &url, &[&token], &[], "").await }
    };
    // Another host: refused (it was injected there on e0c932c).
    let got = send("GET", "http://other.test/v1/x".to_owned()).await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert!(
        got.body.contains("secret not valid for other.test"),
        "{}",
        got.body
    );
    // The parent's methods and paths hold.
    let got = send("DELETE", format!("http://{}/v1/x", e.host())).await;
    assert_eq!(got.status, 400, "{}", got.body);
    let got = send("GET", format!("http://{}/admin", e.host())).await;
    assert_eq!(got.status, 400, "{}", got.body);
    // Its own host works, on the parent's counter: 1 exchange + 2 uses of 3/min.
    for expected in [200, 200, 429] {
        let got = send("GET", format!("http://{}/v1/x", e.host())).await;
        assert_eq!(got.status, expected, "{}", got.body);
    }
    // What was sealed says so.
    let opened = Secret::open(&e.tk.open_keys(), &token).unwrap();
    assert!(opened.hosts.allowed_host_pattern.is_some());
    assert_eq!(
        opened.policy.allowed_methods,
        Some(vec!["POST".into(), "GET".into()])
    );
}

#[tokio::test]
async fn an_exchange_cannot_seal_another_secrets_credential() {
    let e = env(&[]).await;
    let host = e.host();
    // The real secret injects into Authorization; the caller's exchange secret asks a
    // token endpoint that answers with the Authorization it got. Sealed as is, the
    // "access token" would be the real credential, in a token the caller may send to
    // any host its own secret names.
    let real = real(json!({"allowed_hosts": [host.clone()]}));
    let exchange = caller(
        json!({"client_credentials_processor": {"client_id": "i", "client_secret": "caller-cs-1",
            "token_url": format!("https://{host}/token/echo-auth")}}),
        json!({"allowed_hosts": [host.clone(), "other.test"]}),
    );
    let got = call(
        &e,
        "POST",
        &format!("http://{host}/token/echo-auth"),
        &[&real, &exchange],
        &[],
        "",
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let v: Value = serde_json::from_str(&got.body).unwrap();
    let opened = Secret::open(&e.tk.open_keys(), v["sealed_token"].as_str().unwrap()).unwrap();
    let json = opened.to_json();
    assert_no_credential("sealed token", &json, REAL);
    assert!(json.contains("[REDACTED]"), "{}", json.as_str());
}

// === 3. macaroon caveats and the forwarded path ===

#[tokio::test]
async fn finding_3_macaroon_path_caveats_judge_the_forwarded_path() {
    let e = env(&[]).await;
    let key = b"k".repeat(32);
    let macaroon = MacaroonAuth::new(key.clone())
        .mint(vec![Caveat::RequestPathPrefix(vec![
            "/v1/models".to_owned(),
        ])])
        .to_header();
    let secret = json!({"inject_processor": {"token": REAL},
        "macaroon_auth": {"key": b64::encode(&key)}});
    let anything = caller(
        json!({"inject_processor": {"token": "caller-token-123", "dst": "x-other"}}),
        json!({"allowed_paths": ["/**"]}),
    );
    let sealed = [e.seal(&secret), e.seal(&anything)];
    for path in [
        "/v1/models/../../admin",
        "/v1/models/%2e%2e/%2e%2e/admin",
        "/v1/models/%2E%2E/%2e%2E/admin",
        "/v1/models/./../../admin",
    ] {
        let mut conn = RawConn::open(e.tk.addr).await;
        let request = format!(
            "GET http://api.test{path} HTTP/1.1\r\nHost: api.test\r\n\
             Proxy-Tokenizer: {}\r\nProxy-Tokenizer: {}\r\nProxy-Authorization: {macaroon}\r\n\r\n",
            sealed[0], sealed[1]
        );
        conn.send(request.as_bytes()).await;
        let resp = conn.read_response(false).await;
        assert_eq!(resp.status, 407, "{path}: {}", resp.text());
    }
    assert!(
        !e.upstream.seen().iter().any(|s| s.contains("admin")),
        "{:?}",
        e.upstream.seen()
    );
    // The path the caveat allows works, and is forwarded as judged.
    let mut conn = RawConn::open(e.tk.addr).await;
    let request = format!(
        "GET http://api.test/v1/./models/%67pt HTTP/1.1\r\nHost: api.test\r\n\
         Proxy-Tokenizer: {}\r\nProxy-Authorization: {macaroon}\r\n\r\n",
        sealed[0]
    );
    conn.send(request.as_bytes()).await;
    let resp = conn.read_response(false).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(e.upstream.seen().last().unwrap(), "GET /v1/models/gpt");
}

#[tokio::test]
async fn a_processors_path_is_judged_by_every_rule() {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let e = env(&[]).await;
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let pem = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    let real = real(json!({"allowed_paths": ["/v1/**"]}));
    // A caller-sealed GitHub App secret rewrites the path to its token URL's.
    let mover = caller(
        json!({"github_app_processor": {"private_key": b64::encode(pem.as_bytes()),
            "app_id": "1", "installation_id": "2",
            "token_url": "https://api.test/admin/{installation_id}"}}),
        json!({"allowed_hosts": ["api.test"]}),
    );
    let got = call(
        &e,
        "GET",
        "http://api.test/v1/models",
        &[&real, &mover],
        &[],
        "",
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert!(got.body.contains("/admin/2"), "{}", got.body);
    assert!(!e.upstream.seen().iter().any(|s| s.contains("admin")));
}

// === 4. one secret's processors on another's credential ===

#[tokio::test]
async fn finding_4_a_second_secret_cannot_rewrite_a_body_injected_credential() {
    let e = env(&[]).await;
    let real = json!({"inject_body_processor": {"token": REAL, "placeholder": "{{T}}"},
        "bearer_auth": bearer(AUTH)});
    let rewriter = caller(
        json!({"inject_body_processor": {"token": "-!", "placeholder": "-"}}),
        json!({}),
    );
    for order in [[&real, &rewriter], [&rewriter, &real]] {
        let got = call(
            &e,
            "POST",
            "http://api.test/echo",
            &order,
            &[],
            r#"{"key":"{{T}}"}"#,
        )
        .await;
        assert_eq!(got.status, 200, "{}", got.body);
        assert!(!got.body.contains("sk-!live"), "{}", got.body);
        assert_no_credential("body echo", &got.body, REAL);
        let echoed = Echo::parse(&got.body);
        assert!(echoed.body().contains("[REDACTED]"), "{}", echoed.body());
    }
    // A signing secret sealed by the caller would sign the real credential.
    let signer = caller(
        json!({"inject_hmac_processor": {"key": b64::encode(b"caller-knows-this"),
            "hash": "sha256", "dst": "x-sig"}}),
        json!({}),
    );
    let got = call(
        &e,
        "POST",
        "http://api.test/echo",
        &[&real, &signer],
        &[],
        "{{T}}",
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert!(got.body.contains("cannot be combined"), "{}", got.body);
}

// === 5. tables a client can grow ===

#[tokio::test]
async fn finding_5_client_grown_tables_stay_bounded() {
    let e = env(&["--rate-limit-keys", "20", "--unseal-cache-bytes", "4MiB"]).await;
    let long_id = "i".repeat(6000);
    // A real secret counted before the flood.
    let real_daily = e.seal(&real(json!({"rate_limit": "1/day"})));
    let got = call(&e, "GET", "http://api.test/", &[&real_daily], &[], "").await;
    assert_eq!(got.status, 200);
    let mut first = String::new();
    for i in 0..30 {
        let s = caller(
            json!({"inject_processor": {"token": format!("caller-token-{i:04}"), "dst": "x-c"}}),
            json!({"rate_limit": "1/day", "id": format!("{long_id}{i}")}),
        );
        let sealed = e.seal(&s);
        if i == 0 {
            first = sealed.clone();
        }
        let got = call(&e, "GET", "http://api.test/", &[&sealed], &[], "").await;
        // A full table makes room (issue 22): never refused.
        assert_eq!(got.status, 200, "{}", got.body);
    }
    assert!(e.tk.metric("tokenizer_rate_limit_keys").await <= 20.0);
    // Room was made in the flood's own (anonymous) pool: the first of it went, the real
    // secret's spent day stayed.
    let got = call(&e, "GET", "http://api.test/", &[&first], &[], "").await;
    assert_eq!(got.status, 200, "{}", got.body);
    let got = call(&e, "GET", "http://api.test/", &[&real_daily], &[], "").await;
    assert_eq!(got.status, 429, "{}", got.body);
    // Large secrets do not grow the unseal cache past its bytes.
    for i in 0..60 {
        let s = caller(
            json!({"inject_processor": {"token": format!("{i:04}{}", "t".repeat(1000))}}),
            json!({}),
        );
        call(&e, "GET", "http://api.test/", &[&s], &[], "").await;
        assert!(e.tk.metric("tokenizer_unseal_cache_bytes").await <= 4.0 * 1024.0 * 1024.0);
    }
    assert!(e.tk.metric("tokenizer_unseal_cache_entries").await < 60.0);
    // The audit ring keeps clipped entries.
    let (_, audit) = e.admin().get_json("/v1/audit?limit=1000").await;
    let entries = audit["entries"].as_array().expect("entries");
    assert!(!entries.is_empty());
    for entry in entries {
        let text = entry.to_string();
        assert!(
            text.len() <= ::tokenizer::audit::MAX_ENTRY_BYTES,
            "{}",
            text.len()
        );
        assert!(!text.contains(&long_id), "an unclipped id");
    }
}

// === 6. work a client controls ===

#[tokio::test]
async fn finding_6_long_credentials_never_stall_the_proxy() {
    let e = env(&[]).await;
    let long = caller(
        json!({"inject_processor": {"token": "x".repeat(30_000)}}),
        json!({}),
    );
    let longs = [&long];
    let normal_secret = real(json!({}));
    let normals = [&normal_secret];
    let start = Instant::now();
    let (a, b, normal) = tokio::join!(
        call(&e, "GET", "http://api.test/", &longs, &[], ""),
        call(&e, "GET", "http://api.test/", &longs, &[], ""),
        async {
            // Sent while the long ones are handled.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let t = Instant::now();
            (
                call(&e, "GET", "http://api.test/", &normals, &[], "").await,
                t.elapsed(),
            )
        },
    );
    for got in [a, b] {
        assert_eq!(got.status, 400, "{}", got.body);
        assert!(
            got.body.contains("too long for the reflection guard"),
            "{}",
            got.body
        );
    }
    assert_eq!(normal.0.status, 200);
    assert!(normal.1 < Duration::from_secs(2), "{:?}", normal.1);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // The longest credential the guard takes is guarded.
    let token: String = (0..8192)
        .map(|i| char::from(b"abcdefghijkmnpqrstuvwxyz23456789"[i % 31]))
        .collect();
    let max = caller(
        json!({"inject_processor": {"token": token.clone()}}),
        json!({}),
    );
    let got = call(&e, "GET", "http://api.test/", &[&max], &[], "").await;
    assert_eq!(got.status, 200);
    assert!(!got.body.contains(&token[..4000]));
    // A long placeholder param is refused before it costs anything.
    let body = caller(
        json!({"inject_body_processor": {"token": "caller-token"}}),
        json!({}),
    );
    let sealed = format!(
        "{}; {}",
        e.seal(&body),
        json!({"placeholder": "p".repeat(20_000)})
    );
    let got = call(&e, "POST", "http://api.test/", &[&sealed], &[], "x").await;
    assert_eq!(got.status, 400, "{}", got.body);
}

// === 7. stalled uploads ===

#[tokio::test]
async fn finding_7_stalled_uploads_are_cut_and_buffers_stay_within_the_budget() {
    let e = env(&[
        "--client-body-timeout",
        "1s",
        "--buffered-body-budget",
        "3MiB",
        "--max-buffered-body",
        "2MiB",
    ])
    .await;
    let signer = caller(
        json!({"inject_hmac_processor": {"key": b64::encode(b"k"), "hash": "sha256",
            "dst": "x-sig"}}),
        json!({}),
    );
    let sealed = e.seal(&signer);
    let len = 2 * 1024 * 1024;
    // The first sends all but the last byte and stalls; the second asks to send as
    // much (and waits for `100 Continue` before sending it).
    let stall = |sealed: String, send_body: bool| async move {
        let mut conn = tokio::net::TcpStream::connect(e.tk.addr).await.unwrap();
        let expect = if send_body {
            ""
        } else {
            "Expect: 100-continue\r\n"
        };
        let head = format!(
            "POST http://api.test/ HTTP/1.1\r\nHost: api.test\r\nProxy-Tokenizer: {sealed}\r\n\
             Content-Length: {len}\r\n{expect}\r\n"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        if send_body {
            conn.write_all(&vec![b'a'; len - 1]).await.unwrap();
        }
        let started = Instant::now();
        let mut out = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut out))
            .await
            .expect("answered")
            .unwrap_or(0);
        (
            String::from_utf8_lossy(&out[..n]).into_owned(),
            started.elapsed(),
        )
    };
    let (stalled, refused) = tokio::join!(stall(sealed.clone(), true), async {
        // Once the first body holds its share of the budget (charged from its length).
        poll_until(Duration::from_secs(10), || async {
            e.tk.metric("tokenizer_buffered_body_bytes").await >= len as f64
        })
        .await
        .expect("the first body was never charged to the budget");
        stall(sealed.clone(), false).await
    });
    // The budget holds the first body: the second is refused at once.
    assert!(refused.0.starts_with("HTTP/1.1 503"), "{refused:?}");
    assert!(refused.1 < Duration::from_millis(900), "{:?}", refused.1);
    // The stalled one was cut after about the body timeout, not held.
    assert!(stalled.0.starts_with("HTTP/1.1 408"), "{stalled:?}");
    assert!(stalled.1 < Duration::from_secs(4), "{:?}", stalled.1);
    // Everything buffered was released, and a normal signed request works.
    assert_eq!(e.tk.metric("tokenizer_buffered_body_bytes").await, 0.0);
    let got = call(&e, "POST", "http://api.test/", &[&signer], &[], "hello").await;
    assert_eq!(got.status, 200, "{}", got.body);
}

// === 8. credentials the proxy creates ===

#[tokio::test]
async fn finding_8_signed_assertions_are_guarded() {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let e = env(&[]).await;
    let host = e.host();
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let pem = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    let jwt = json!({"jwt_processor": {"private_key": b64::encode(pem.as_bytes()),
        "email": "svc@example.test", "token_url": format!("https://{host}/token")},
        "bearer_auth": bearer(AUTH), "allowed_hosts": [host.clone()]});
    // An error page that quotes the exchange request: the assertion (valid an hour).
    let got = call(
        &e,
        "POST",
        &format!("http://{host}/echo-error"),
        &[&jwt],
        &[],
        "",
    )
    .await;
    assert_eq!(got.status, 400);
    let echo = Echo::parse(&got.body);
    assert!(echo.body().starts_with("assertion="), "{}", echo.body());
    assert!(
        !echo.body().contains("eyJ"),
        "the assertion came back: {}",
        echo.body()
    );
    assert!(echo.body().contains("[REDACTED]"));
    // The GitHub App JWT in `Authorization` (valid ten minutes).
    let app = json!({"github_app_processor": {"private_key": b64::encode(pem.as_bytes()),
        "app_id": "1", "installation_id": "2",
        "token_url": format!("https://{host}/echo-error/{{installation_id}}")},
        "bearer_auth": bearer(AUTH), "allowed_hosts": [host.clone()]});
    let got = call(&e, "POST", &format!("http://{host}/"), &[&app], &[], "").await;
    assert_eq!(got.status, 400, "{}", got.body);
    let echo = Echo::parse(&got.body);
    let auth = echo.header("authorization").unwrap();
    assert!(auth.starts_with("Bearer [REDACTED]"), "{auth}");
    assert!(!got.body.contains("eyJ"), "{}", got.body);
    // Signatures the proxy sends (HMAC of the body or of `msg`) come back masked too.
    let hmac = json!({"inject_hmac_processor": {"key": b64::encode(b"operator-hmac-key"),
        "hash": "sha256", "dst": "x-sig"}, "bearer_auth": bearer(AUTH)});
    let sealed = e.seal(&hmac);
    let with_msg = format!("{sealed}; {}", json!({"msg": "hello", "fmt": "%X"}));
    for s in [&sealed, &with_msg] {
        let got = call(&e, "POST", "http://api.test/", &[s], &[], "payload").await;
        let sig = Echo::parse(&got.body).header("x-sig").unwrap();
        assert!(sig.contains("[REDACTED]"), "{sig}");
    }
}

// === 9. protocol switches ===

#[tokio::test]
async fn finding_9_websocket_handshakes_and_streams_are_guarded() {
    let e = env(&[]).await;
    // A credential in a header the handshake echoes is refused outright.
    let into_protocol = with(real(json!({})), json!({}));
    let sealed = format!(
        "{}; {}",
        e.seal(&into_protocol),
        json!({"dst": "Sec-WebSocket-Protocol", "fmt": "%s"})
    );
    let got = call(&e, "GET", "http://api.test/ws", &[&sealed], &[], "").await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert!(got.body.contains("bad dst"), "{}", got.body);

    // The 101 echoes a header with the credential, and the first message quotes it.
    let mut conn = RawConn::open(e.tk.addr).await;
    let request = format!(
        "GET http://api.test/ws HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Extensions: permessage-deflate\r\n\
         Proxy-Tokenizer: {}\r\nProxy-Authorization: Bearer {AUTH}\r\n\r\n",
        e.seal(&real(json!({})))
    );
    conn.send(request.as_bytes()).await;
    let head = conn.read_response(true).await;
    assert_eq!(head.status, 101);
    let masked = format!("Bearer [REDACTED]{}", "*".repeat(REAL.len() - 10));
    assert_eq!(head.header("x-echo-auth").unwrap(), masked);
    assert!(head.header("sec-websocket-extensions").is_none());
    let mut frames = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&frames).contains("authorization=") && Instant::now() < deadline
    {
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(Duration::from_secs(1), conn.stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => frames.extend_from_slice(&chunk[..n]),
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(&frames).into_owned();
    assert!(text.contains("authorization=Bearer [REDACTED]"), "{text:?}");
    assert_no_credential("websocket frames", &text, REAL);
}

// === 10. what upstream stacks read differently ===

#[tokio::test]
async fn finding_10_rules_hold_against_upstream_reinterpretation() {
    let e = env(&[]).await;
    let s = real(json!({"allowed_paths": ["/v1/**"], "allowed_methods": ["GET", "POST"]}));
    let sealed = e.seal(&s);
    for (method, path, headers) in [
        ("GET", "/v1/..;/admin", vec![]),
        ("GET", "/v1/%2e%2e;x/admin", vec![]),
        ("GET", "/v1/.;/x", vec![]),
        ("POST", "/v1/x", vec![("X-HTTP-Method-Override", "DELETE")]),
        ("POST", "/v1/x", vec![("X-HTTP-Method", "DELETE")]),
        ("POST", "/v1/x", vec![("X-Method-Override", "DELETE")]),
        ("POST", "/v1/x?_method=DELETE", vec![]),
    ] {
        let mut conn = RawConn::open(e.tk.addr).await;
        let mut request = format!(
            "{method} http://api.test{path} HTTP/1.1\r\nHost: api.test\r\nContent-Length: 0\r\n\
             Proxy-Tokenizer: {sealed}\r\nProxy-Authorization: Bearer {AUTH}\r\n"
        );
        for (k, v) in &headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        conn.send(request.as_bytes()).await;
        let resp = conn.read_response(false).await;
        assert_eq!(
            resp.status,
            400,
            "{method} {path} {headers:?}: {}",
            resp.text()
        );
    }
    assert!(e.upstream.seen().is_empty(), "{:?}", e.upstream.seen());
    let got = call(&e, "GET", "http://api.test/v1/x;v=2", &[&s], &[], "").await;
    assert_eq!(got.status, 200, "{}", got.body);
}

// === also found: a panicking format, an empty admin token ===

#[tokio::test]
async fn a_format_with_a_multibyte_character_is_a_clear_400() {
    let e = env(&[]).await;
    for fmt in ["%é", "Bearer %€", "%\u{1f600}s"] {
        let sealed = format!("{}; {}", e.seal(&real(json!({}))), json!({"fmt": fmt}));
        let got = call(&e, "GET", "http://api.test/", &[&sealed], &[], "").await;
        assert_eq!(got.status, 400, "{fmt}: {}", got.body);
        assert!(got.body.contains("bad fmt"), "{}", got.body);
    }
}

#[test]
fn an_empty_admin_token_refuses_to_start() {
    let key = OpenKey::generate();
    let sealed = seal_for(&key, &real(json!({})));
    let dir = tempfile::tempdir().unwrap();
    for sub in ["serve", "sideproxy"] {
        let mut cmd = binary::command();
        cmd.arg(sub)
            .env("OPEN_KEY", key.to_hex().as_str())
            .env("TARGETS", "api.test=SEALED")
            .env("SEALED", &sealed)
            .env("CA_DIR", dir.path())
            .env("ADMIN_ADDRESS", "127.0.0.1:0")
            .env("ADMIN_TOKEN", "");
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let status = wait_until(Duration::from_secs(10), || child.try_wait().unwrap());
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut stderr = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(2),
            "{sub} started: {stderr}"
        );
        assert!(stderr.contains("ADMIN_TOKEN"), "{sub}: {stderr}");
    }
}

#[tokio::test]
async fn a_second_secret_cannot_hide_part_of_a_credential_from_the_guard() {
    let e = env(&[]).await;
    // The caller guesses the echo's shape and the credential's prefix, and seals that as
    // a "credential" longer than the real one: masked first, it would cut the real
    // credential's start off, and the real guard would no longer find the rest.
    let guess = r#"["authorization","Bearer sk-live-REAL-4f9"#;
    let noise = caller(
        json!({"inject_processor": {"token": guess, "dst": "x-noise"}}),
        json!({}),
    );
    let other = json!({"inject_processor": {"token": "sk-second-7e6d5c4b3a2910fe",
        "dst": "x-second"}, "bearer_auth": bearer(AUTH)});
    let real = real(json!({}));
    for order in [[&noise, &real, &other], [&real, &other, &noise]] {
        let got = call(&e, "GET", "http://api.test/", &order, &[], "").await;
        assert_eq!(got.status, 200);
        assert_no_credential("echo", &got.body, REAL);
        assert_no_credential("echo", &got.body, "sk-second-7e6d5c4b3a2910fe");
    }
    let got = call(&e, "GET", "http://api.test/reflect", &[&real], &[], "").await;
    let all = format!("{}{}", headers_text(&got.headers), got.body);
    assert_no_credential("reflect", &all, REAL);
    assert!(all.contains("x-echo-auth: Bearer [REDACTED]"), "{all}");
}
