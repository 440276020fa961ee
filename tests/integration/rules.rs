//! Rules inside the seal (our extensions): methods, paths, validity window, revocation
//! and rate limits, through the running proxy.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::raw::RawConn;
use crate::support::upstream::Echo;
use crate::support::{Env, inject, poll_until, with};

async fn env(extra: &[&str]) -> Env {
    Env::builder()
        .names(&["api.test"])
        .flags(extra)
        .start()
        .await
}

/// Inject `supersecret` for callers holding `trustno1`, with `rules`.
fn seal(e: &Env, rules: Value) -> String {
    e.seal(&with(inject("supersecret", "trustno1"), rules))
}

const AUTH: (&str, &str) = ("proxy-authorization", "Bearer trustno1");

async fn send(e: &Env, method: &str, path: &str, sealed: &str) -> (u16, String) {
    let got = e.send(method, path, &[sealed], &[AUTH], "").await;
    (got.status, got.body)
}

/// A raw request, for paths reqwest would normalize itself.
async fn raw_get(e: &Env, path: &str, sealed: &str) -> (u16, String) {
    let mut conn = RawConn::open(e.tk.addr).await;
    conn.send(
        format!(
            "GET http://api.test{path} HTTP/1.1\r\nHost: api.test\r\nProxy-Tokenizer: {sealed}\r\n\
             Proxy-Authorization: Bearer trustno1\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let resp = conn.read_response(false).await;
    (resp.status, resp.text())
}

#[tokio::test]
async fn allowed_methods() {
    let e = env(&[]).await;
    let sealed = seal(&e, json!({"allowed_methods": ["GET", "head"]}));
    assert_eq!(send(&e, "GET", "/", &sealed).await.0, 200);
    assert_eq!(send(&e, "HEAD", "/", &sealed).await.0, 200);
    let (status, body) = send(&e, "POST", "/", &sealed).await;
    assert_eq!(status, 400);
    assert_eq!(
        body.trim(),
        "request validator failed: secret not valid for method POST"
    );
    let none = seal(&e, json!({"allowed_methods": []}));
    assert_eq!(send(&e, "GET", "/", &none).await.0, 400);
}

#[tokio::test]
async fn allowed_paths_match_normalized_paths() {
    let e = env(&[]).await;
    let sealed = seal(&e, json!({"allowed_paths": ["/v1/**", "/repos/*/issues"]}));
    assert_eq!(send(&e, "GET", "/v1/models", &sealed).await.0, 200);
    assert_eq!(send(&e, "GET", "/v1", &sealed).await.0, 200);
    assert_eq!(
        send(&e, "GET", "/repos/tokenizer/issues", &sealed).await.0,
        200
    );
    assert_eq!(send(&e, "GET", "/repos/a/b/issues", &sealed).await.0, 400);
    let (status, body) = send(&e, "GET", "/admin", &sealed).await;
    assert_eq!(status, 400);
    assert!(body.contains("secret not valid for path /admin"), "{body}");
    // Escapes: normalized before matching.
    for escape in [
        "/v1/../admin",
        "/v1/%2e%2e/admin",
        "/v1/./../admin",
        "//v1/..//admin",
    ] {
        let (status, body) = raw_get(&e, escape, &sealed).await;
        assert_eq!(status, 400, "{escape}: {body}");
        assert!(body.contains("/admin"), "{escape}: {body}");
    }
    // Ambiguous encodings are refused outright.
    for ambiguous in ["/v1/..%2fadmin", "/v1/a%5c..%5cadmin"] {
        let (status, body) = raw_get(&e, ambiguous, &sealed).await;
        assert_eq!(status, 400, "{ambiguous}");
        assert!(body.contains("encoded slash"), "{body}");
    }
    // What is forwarded is what was checked.
    let (status, body) = raw_get(&e, "/v1/x/../models/./list?q=1", &sealed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(Echo::parse(&body).uri(), "/v1/models/list?q=1");
    // Without path rules the path goes through untouched.
    let open = seal(&e, json!({}));
    let (status, body) = raw_get(&e, "/a/./b", &open).await;
    assert_eq!(status, 200);
    assert_eq!(Echo::parse(&body).uri(), "/a/./b");
}

#[tokio::test]
async fn validity_window() {
    let e = env(&[]).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let later = seal(&e, json!({"not_before": now + 3600}));
    assert_eq!(
        send(&e, "GET", "/", &later).await,
        (
            400,
            "request validator failed: secret not yet valid\n".into()
        )
    );
    let expired = seal(&e, json!({"expires_at": now - 1}));
    assert_eq!(
        send(&e, "GET", "/", &expired).await.1.trim(),
        "request validator failed: secret expired"
    );
    let rfc = seal(
        &e,
        json!({"expires_at": "2099-01-01T00:00:00Z", "not_before": "2020-01-01T00:00:00Z"}),
    );
    assert_eq!(send(&e, "GET", "/", &rfc).await.0, 200);
    let past = seal(&e, json!({"expires_at": "2020-01-01T00:00:00+02:00"}));
    assert_eq!(send(&e, "GET", "/", &past).await.0, 400);
}

#[tokio::test]
async fn malformed_rules_are_bad_secrets() {
    let e = env(&[]).await;
    for rules in [
        r#""allowed_methods":"GET""#,
        r#""allowed_paths":["v1/**"]"#,
        r#""expires_at":"next week""#,
        r#""rate_limit":"often""#,
        r#""rate_limit":"0/min""#,
        r#""id":42"#,
    ] {
        let json =
            format!(r#"{{"inject_processor":{{"token":"supersecret"}},"no_auth":{{}},{rules}}}"#);
        let (status, body) = send(&e, "GET", "/", &e.seal_raw(&json)).await;
        assert_eq!(status, 400, "{rules}");
        assert!(
            body.starts_with("bad request: bad secret json"),
            "{rules}: {body}"
        );
        assert!(!body.contains("supersecret"));
    }
}

#[tokio::test]
async fn revocation_takes_effect_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("revoked.txt");
    std::fs::write(&list, "# nothing revoked yet\n").unwrap();
    let e = env(&["--revoked-secrets-file", list.to_str().unwrap()]).await;
    let by_id = seal(&e, json!({"id": "ci-key-1"}));
    let by_digest = seal(&e, json!({}));
    let other = seal(&e, json!({"id": "ci-key-2"}));
    for s in [&by_id, &by_digest, &other] {
        assert_eq!(send(&e, "GET", "/", s).await.0, 200);
    }
    let digest = ::tokenizer::secret::sealed_digest(&by_digest);
    std::fs::write(
        &list,
        format!("ci-key-1\n{}  # leaked\n", digest.to_uppercase()),
    )
    .unwrap();
    // The list is read again every couple of seconds.
    let body = poll_until(Duration::from_secs(10), || async {
        let (status, body) = send(&e, "GET", "/", &by_id).await;
        (status == 400).then_some(body)
    })
    .await
    .expect("revocation never took effect");
    assert_eq!(body.trim(), "request validator failed: secret revoked");
    assert_eq!(send(&e, "GET", "/", &by_digest).await.0, 400);
    assert_eq!(send(&e, "GET", "/", &other).await.0, 200);
    // Revocation wins even over correct auth, before anything is forwarded.
    let before = e.upstream.connection_count();
    assert_eq!(send(&e, "GET", "/", &by_id).await.0, 400);
    assert_eq!(e.upstream.connection_count(), before);
}

#[tokio::test]
async fn a_missing_revocation_file_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    use clap::Parser;
    let key = ::tokenizer::secret::OpenKey::generate().to_hex();
    let args = ::tokenizer::cli::ServeArgs::try_parse_from([
        "serve",
        "--open-key",
        key.as_str(),
        "--listen-address",
        "127.0.0.1:0",
        "--revoked-secrets-file",
        dir.path().join("nope").to_str().unwrap(),
    ])
    .unwrap();
    let config = args.into_config().unwrap();
    let err = ::tokenizer::proxy::Proxy::new(config, &["127.0.0.1:1".parse().unwrap()])
        .err()
        .expect("refused");
    assert!(err.to_string().contains("REVOKED_SECRETS_FILE"), "{err}");
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let e = env(&[]).await;
    let limited = seal(&e, json!({"id": "metered", "rate_limit": "2/min"}));
    let anonymous = seal(&e, json!({"rate_limit": "1/hour"}));
    assert_eq!(send(&e, "GET", "/", &limited).await.0, 200);
    assert_eq!(send(&e, "GET", "/", &limited).await.0, 200);
    let got = e.get("/", &[&limited], &[AUTH]).await;
    assert_eq!(got.status, 429);
    let retry: u64 = got.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert!(got.body.starts_with("rate limited"));
    // A fresh seal of the same id shares the budget; other secrets have their own.
    let same_id = seal(&e, json!({"id": "metered", "rate_limit": "2/min"}));
    assert_eq!(send(&e, "GET", "/", &same_id).await.0, 429);
    assert_eq!(send(&e, "GET", "/", &anonymous).await.0, 200);
    assert_eq!(send(&e, "GET", "/", &anonymous).await.0, 429);
    // Refused callers do not spend the budget.
    let fresh = seal(&e, json!({"rate_limit": "1/hour"}));
    let wrong = e
        .get("/", &[&fresh], &[("proxy-authorization", "Bearer wrong")])
        .await;
    assert_eq!(wrong.status, 407);
    assert_eq!(send(&e, "GET", "/", &fresh).await.0, 200);
}

#[tokio::test]
async fn connect_level_rules_apply_to_each_tunnelled_request() {
    let e = env(&[]).await;
    let sealed = seal(
        &e,
        json!({"allowed_methods": ["GET"], "allowed_paths": ["/ok/**"], "rate_limit": "3/min"}),
    );
    let mut conn = e
        .tunnel("api.test:80", &[&sealed], &[AUTH])
        .await
        .expect("CONNECT itself is not a GET");
    for (request, status) in [
        ("GET /ok/1", 200),
        ("POST /ok/1", 400),
        ("GET /other", 400),
        ("GET /ok/2", 200),
        ("GET /ok/3", 200),
        ("GET /ok/4", 429),
    ] {
        let length = if request.starts_with("POST") {
            "Content-Length: 0\r\n"
        } else {
            ""
        };
        conn.send(format!("{request} HTTP/1.1\r\nHost: api.test\r\n{length}\r\n").as_bytes())
            .await;
        assert_eq!(conn.read_response(false).await.status, status, "{request}");
    }
}
