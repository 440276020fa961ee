//! A secret's rules judge the request the upstream will act on, not a spelling of it: a
//! macaroon's path caveat and `allowed_paths` see the path as forwarded (dot segments,
//! their encodings, `;` parameters on them), a path a processor rewrites is judged by
//! every secret's rules, and `allowed_methods` holds against method overrides in headers,
//! the query or the body.

use serde_json::json;
use tokenizer::auth::MacaroonAuth;
use tokenizer::auth::macaroon::Caveat;
use tokenizer::secret::b64;

use crate::support::attack::{AUTH, REAL, call, caller_sealed, caller_token, env, real};
use crate::support::raw::RawConn;

// === the path a rule judges ===

/// First outside attack (issue 13), finding 3: macaroon caveats and the forwarded path.
/// Dot segments, plain or encoded, cannot climb out of a path prefix caveat.
#[tokio::test]
async fn macaroon_path_caveats_judge_the_forwarded_path() {
    let e = env(&[]).await;
    let key = b"k".repeat(32);
    let macaroon = MacaroonAuth::new(key.clone())
        .mint(vec![Caveat::RequestPathPrefix(vec![
            "/v1/models".to_owned(),
        ])])
        .to_header();
    let secret = json!({"inject_processor": {"token": REAL},
        "macaroon_auth": {"key": b64::encode(&key)}});
    let anything = caller_sealed(
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

/// First outside attack (issue 13), with finding 3: a caller-sealed GitHub App secret
/// moves the request to its token URL's path, which the real secret's paths refuse.
#[tokio::test]
async fn a_processors_path_is_judged_by_every_rule() {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let e = env(&[]).await;
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let pem = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    let real = real(json!({"allowed_paths": ["/v1/**"]}));
    // A caller-sealed GitHub App secret rewrites the path to its token URL's.
    let mover = caller_sealed(
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

// === what upstream stacks read differently ===

/// First outside attack (issue 13), finding 10: what upstream stacks read differently.
/// `..;` segments and method overrides in headers or the query are refused under path
/// and method rules; a `;` parameter on an ordinary segment is fine.
#[tokio::test]
async fn rules_hold_against_upstream_reinterpretation() {
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

/// Second outside attack (issue 22), finding 6: an encoded `..;` (a parameter on a dot
/// segment, which some upstream stacks read as `..`) is refused.
#[tokio::test]
async fn an_encoded_dot_segment_parameter_is_refused() {
    let e = env(&[]).await;
    let ruled = e.seal(&real(json!({"allowed_paths": ["/v1/**"]})));
    let companion = e.seal(&caller_token("companion-token-6", json!({})));
    for path in [
        "/v1/..%3B/admin",
        "/v1/..%3b/admin",
        "/v1/%2e%2e%3b/admin",
        "/v1/.%3B/admin",
    ] {
        let got = call(
            &e,
            "GET",
            &format!("http://api.test{path}"),
            &[&companion, &ruled],
            &[],
            "",
        )
        .await;
        assert_eq!(got.status, 400, "{path}: {}", got.body);
        assert!(
            got.body.contains("parameter on a dot segment"),
            "{path}: {}",
            got.body
        );
    }
    let got = call(&e, "GET", "http://api.test/v1/a%3Bb", &[&ruled], &[], "").await;
    assert_eq!(got.status, 200, "{}", got.body);
}

/// Second outside attack (issue 22), finding 4: a method override in a form, multipart or
/// JSON body (or a body that cannot be read for one) is refused under method rules.
#[tokio::test]
async fn a_method_override_in_a_post_body_is_refused() {
    let e = env(&[]).await;
    let url = "http://api.test/v1/items";
    let ruled = e.seal(&real(json!({"allowed_methods": ["GET", "POST"]})));
    let companion = e.seal(&caller_token("companion-token-1", json!({})));
    let before = e.upstream.seen().len();
    let multipart =
        "--XyZ\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--XyZ--\r\n";
    for (content_type, body) in [
        (
            Some("application/x-www-form-urlencoded"),
            "title=x&_method=DELETE",
        ),
        (
            Some("application/x-www-form-urlencoded"),
            "title=x;%5Fmethod=DELETE",
        ),
        (None, "_method=DELETE"),
        (Some("multipart/form-data; boundary=XyZ"), multipart),
        (
            Some("application/json"),
            r#"{"title":"x","\u005fmethod":"DELETE"}"#,
        ),
        (Some("application/json"), "{not json"),
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|c| ("content-type", c))
            .into_iter()
            .collect();
        let got = call(&e, "POST", url, &[&companion, &ruled], &headers, body).await;
        assert_eq!(got.status, 400, "{content_type:?} {body}: {}", got.body);
        assert!(!got.body.contains(REAL));
    }
    assert_eq!(
        e.upstream.seen().len(),
        before,
        "a refused request reached the upstream"
    );
    // A clean form goes through, byte for byte, with the credential.
    let form = "title=x&method=y&_methodical=1";
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    let got = call(&e, "POST", url, &[&companion, &ruled], &headers, form).await;
    let echo = got.echo();
    assert_eq!(echo.body(), form);
    assert!(
        echo.header_all("authorization")
            .iter()
            .any(|a| a.contains("[REDACTED]") || a.contains(REAL))
    );
    // Without method rules the body is not read for overrides.
    let free = e.seal(&real(json!({})));
    let got = call(&e, "POST", url, &[&free], &headers, "_method=DELETE").await;
    assert_eq!(got.status, 200, "{}", got.body);
}
