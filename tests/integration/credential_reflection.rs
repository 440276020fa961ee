//! The reflection guard: an injected credential never comes back to the client, in any
//! form, however the upstream echoes it (a body, a header, compressed, sliced by a range
//! request, a WebSocket handshake or its frames), and neither do the assertions and
//! signatures the proxy creates; a second, caller-sealed secret cannot hide part of a
//! real credential from the guard; sealing a credential too short to mask warns.

use std::time::{Duration, Instant};

use serde_json::json;
use tokenizer::secret::b64;
use tokio::io::AsyncReadExt;

use crate::support::attack::{AUTH, REAL, assert_no_credential, call, caller_sealed, env, real};
use crate::support::binary;
use crate::support::raw::RawConn;
use crate::support::upstream::Echo;
use crate::support::{Env, bearer, with};

fn headers_text(h: &reqwest::header::HeaderMap) -> String {
    h.iter()
        .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
        .collect()
}

// === responses that echo the credential ===

/// First outside attack (issue 13), finding 1: compressed responses. The upstream is
/// asked for none; one it compresses anyway is refused, since the guard cannot read it.
#[tokio::test]
async fn a_compressed_echo_never_reaches_the_client() {
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

/// First outside attack (issue 13), with finding 1: a range request asks for slices of
/// an echo, each too short for the guard to match.
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

// === credentials the proxy creates ===

/// First outside attack (issue 13), finding 8: credentials the proxy creates (a JWT
/// assertion, a GitHub App JWT, HMAC signatures) are masked when echoed, as sealed ones are.
#[tokio::test]
async fn signed_assertions_are_guarded() {
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

// === protocol switches ===

/// First outside attack (issue 13), finding 9: protocol switches. A credential in a header
/// the handshake echoes is refused; the 101's headers and the frames after it are guarded.
#[tokio::test]
async fn websocket_handshakes_and_streams_are_guarded() {
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

// === what the guard can mask ===

/// First outside attack (issue 13), also found: a caller-sealed "credential" that overlaps
/// the start of the real one, masked first, would leave the rest unfound.
#[tokio::test]
async fn a_second_secret_cannot_hide_part_of_a_credential_from_the_guard() {
    let e = env(&[]).await;
    // The caller guesses the echo's shape and the credential's prefix, and seals that as
    // a "credential" longer than the real one: masked first, it would cut the real
    // credential's start off, and the real guard would no longer find the rest.
    let guess = r#"["authorization","Bearer sk-live-REAL-4f9"#;
    let noise = caller_sealed(
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

/// Second outside attack (issue 22), finding 7: short credentials. The guard does not
/// mask one shorter than 8 bytes; sealing one warns, and the documentation says so.
#[test]
fn sealing_a_credential_the_guard_cannot_mask_warns() {
    let key = ::tokenizer::secret::OpenKey::generate();
    let out = binary::run(&[
        "seal",
        "--seal-key",
        &key.seal_key().to_hex(),
        "--json",
        &json!({"inject_processor": {"token": "abc123"}, "allowed_hosts": ["api.test"],
                "bearer_auth": bearer(AUTH)})
        .to_string(),
    ]);
    assert!(
        out.stderr.contains("shorter than 8 bytes"),
        "{}",
        out.stderr
    );
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md")).unwrap();
    assert!(docs.contains("shorter credential is **not** masked"));
}

/// Second outside attack (issue 22), the class: the echo check the other tests rely on.
#[tokio::test]
async fn the_echo_check_still_holds_with_the_guard() {
    // Sanity for the helpers the tests here rely on: the real credential reaches the
    // upstream and is masked in what comes back.
    let e = env(&[]).await;
    let sealed = e.seal(&real(json!({})));
    let got = call(&e, "GET", "http://api.test/", &[&sealed], &[], "").await;
    assert!(!got.body.contains(REAL));
    let echo = Echo::parse(&got.body);
    assert!(echo.header("authorization").unwrap().contains("[REDACTED]"));
}
