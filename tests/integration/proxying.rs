//! How requests travel: CONNECT tunnels, transparent mode, keep-alive on both sides,
//! streaming, and the body processors (spec §7.2 inject_body / oauth2 items).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::raw::RawConn;
use crate::support::upstream::Echo;
use crate::support::{Env, bearer, curl, inject, poll_until, with};

/// A proxy (plus `extra` flags) and an upstream that is `api.test` (pinned) and
/// `127.0.0.1`.
async fn env(extra: &[&str]) -> Env {
    Env::builder()
        .names(&["api.test", "127.0.0.1"])
        .flags(extra)
        .start()
        .await
}

/// The caller's proxy auth, as every secret here wants it.
const AUTH: (&str, &str) = ("proxy-authorization", "Bearer trustno1");

#[tokio::test]
async fn connect_tunnel_injects_into_each_request() {
    let p = env(&[]).await;
    let sealed = p.tk.seal(&inject("supersecret", "trustno1"));
    let mut conn = p.tunnel("api.test:80", &[&sealed], &[AUTH]).await.unwrap();
    for path in ["/one", "/two"] {
        conn.send(format!("GET {path} HTTP/1.1\r\nHost: api.test\r\n\r\n").as_bytes())
            .await;
        let resp = conn.read_response(false).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        let echo = Echo::parse(&resp.text());
        assert_eq!(echo.header("authorization").unwrap(), "Bearer supersecret");
        assert_eq!(echo.uri(), path);
        assert!(echo.header("proxy-tokenizer").is_none());
    }
}

#[tokio::test]
async fn connect_tunnel_pins_the_inner_host() {
    let p = env(&[]).await;
    let sealed = p.tk.seal(&inject("supersecret", "trustno1"));
    let mut conn = p.tunnel("api.test:80", &[&sealed], &[AUTH]).await.unwrap();
    // Request 1 to the CONNECT host is fine; request 2 names another host.
    conn.send(b"GET / HTTP/1.1\r\nHost: api.test\r\n\r\n").await;
    assert_eq!(conn.read_response(false).await.status, 200);
    conn.send(b"GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n")
        .await;
    let resp = conn.read_response(false).await;
    assert_eq!(resp.status, 400);
    assert!(resp.text().contains("CONNECT authority"), "{}", resp.text());
    conn.send(b"GET http://evil.test/ HTTP/1.1\r\nHost: api.test\r\n\r\n")
        .await;
    assert_eq!(conn.read_response(false).await.status, 400);
    assert_eq!(p.upstream.connection_count(), 1);
}

#[tokio::test]
async fn connect_validators_see_the_connect_authority() {
    let p = env(&[]).await;
    let for_connect = p.tk.seal(&with(
        inject("supersecret", "trustno1"),
        json!({"allowed_hosts": ["api.test:80"]}),
    ));
    let mut conn = p
        .tunnel("api.test:80", &[&for_connect], &[AUTH])
        .await
        .unwrap();
    conn.send(b"GET / HTTP/1.1\r\nHost: api.test\r\n\r\n").await;
    assert_eq!(conn.read_response(false).await.status, 200);

    // A secret for another host is refused on the CONNECT itself.
    let elsewhere = p.tk.seal(&with(
        inject("supersecret", "trustno1"),
        json!({"allowed_hosts": ["other.test:80"]}),
    ));
    let refused = p.tunnel("api.test:80", &[&elsewhere], &[AUTH]).await;
    assert_eq!(refused.unwrap_err().status, 400);
}

#[tokio::test]
async fn connect_refuses_bad_auth_and_other_ports() {
    let p = env(&[]).await;
    let sealed = p.tk.seal(&inject("supersecret", "trustno1"));
    let wrong = ("proxy-authorization", "Bearer wrong");
    let refused = p.tunnel("api.test:80", &[&sealed], &[wrong]).await;
    assert_eq!(refused.unwrap_err().status, 407);
    for authority in ["api.test:443", "api.test:8443"] {
        let refused = p.tunnel(authority, &[&sealed], &[]).await;
        assert_eq!(refused.unwrap_err().status, 400, "{authority}");
    }
    assert_eq!(p.upstream.connection_count(), 0);
}

#[tokio::test]
async fn curl_through_a_connect_tunnel() {
    let p = env(&[]).await;
    let sealed = p.tk.seal(&inject("supersecret", "trustno1"));
    let (ok, text, err) = curl(&[
        "--proxytunnel",
        "--proxy",
        &p.tk.proxy_url(),
        "--proxy-header",
        &format!("Proxy-Tokenizer: {sealed}"),
        "--proxy-header",
        "Proxy-Authorization: Bearer trustno1",
        "http://api.test/via-curl",
    ])
    .await;
    assert!(ok, "{err}");
    let echo = Echo::parse(&text);
    assert_eq!(echo.header("authorization").unwrap(), "Bearer supersecret");
    assert_eq!(echo.uri(), "/via-curl");
}

#[tokio::test]
async fn transparent_mode_and_its_loop_guard() {
    let p = env(&["--tokenizer-hostnames", "tokenizer.test,127.0.0.1"]).await;
    let sealed = p.tk.seal(&with(
        inject("supersecret", "trustno1"),
        json!({"allowed_hosts": ["api.test"]}),
    ));
    let request = |host: &str| {
        format!(
            "GET /transparent?x=1 HTTP/1.1\r\nHost: {host}\r\nProxy-Tokenizer: {sealed}\r\n\
             Proxy-Authorization: Bearer trustno1\r\n\r\n"
        )
    };
    let mut conn = RawConn::open(p.tk.addr).await;
    conn.send(request("api.test").as_bytes()).await;
    let resp = conn.read_response(false).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echo = Echo::parse(&resp.text());
    assert_eq!(echo.header("authorization").unwrap(), "Bearer supersecret");
    assert_eq!(echo.uri(), "/transparent?x=1");

    for own in [
        "tokenizer.test",
        "tokenizer.test:8080",
        &p.tk.addr.to_string(),
    ] {
        let mut conn = RawConn::open(p.tk.addr).await;
        conn.send(request(own).as_bytes()).await;
        let resp = conn.read_response(false).await;
        assert_eq!(resp.status, 400, "{own}");
        assert_eq!(resp.text().trim(), "circular request");
    }
    assert_eq!(p.upstream.connection_count(), 1);
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let p = env(&[]).await;
    let sealed = p.tk.seal(&inject("supersecret", "trustno1"));
    // Two separate client connections, one pooled upstream connection.
    for _ in 0..2 {
        assert_eq!(p.get("/", &[&sealed], &[AUTH]).await.status, 200);
    }
    assert_eq!(p.upstream.connection_count(), 1);
}

#[tokio::test]
async fn client_connections_are_kept_alive() {
    let p = env(&[]).await;
    let sealed = p.tk.seal(&inject("supersecret", "trustno1"));
    let mut conn = RawConn::open(p.tk.addr).await;
    for i in 0..3 {
        conn.send(
            format!(
                "GET http://api.test/{i} HTTP/1.1\r\nHost: api.test\r\nProxy-Tokenizer: {sealed}\r\n\
                 Proxy-Authorization: Bearer trustno1\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        let resp = conn.read_response(false).await;
        assert_eq!(resp.status, 200);
        assert_ne!(resp.header("connection"), Some("close"));
    }
}

/// An idle keep-alive connection is parked (hyper's buffers released, the socket kept)
/// and served again when the client comes back, any number of times; a parked client
/// that closes leaves nothing behind, and a connection that never sent a byte parks too.
#[tokio::test]
async fn idle_connections_are_parked_and_served_again() {
    let p = Env::builder()
        .names(&["api.test", "127.0.0.1"])
        .admin()
        .start()
        .await;
    let sealed = p.tk.seal(&inject("supersecret", "trustno1"));
    let request = format!(
        "GET http://api.test/again HTTP/1.1\r\nHost: api.test\r\nProxy-Tokenizer: {sealed}\r\n\
         Proxy-Authorization: Bearer trustno1\r\n\r\n"
    );
    let mut conn = RawConn::open(p.tk.addr).await;
    let mut silent = RawConn::open(p.tk.addr).await;
    for round in 0..3 {
        conn.send(request.as_bytes()).await;
        let resp = conn.read_response(false).await;
        assert_eq!(resp.status, 200, "round {round}: {}", resp.text());
        assert_ne!(resp.header("connection"), Some("close"));
        assert_eq!(
            Echo::parse(&resp.text()).header("authorization").unwrap(),
            "Bearer supersecret"
        );
        // Idle past the parking delay: both connections are parked.
        let parked = poll_until(Duration::from_secs(5), || async {
            p.tk.metric("tokenizer_connections_parked").await >= 2.0
        })
        .await;
        assert!(parked.is_some(), "round {round}: two parked connections");
    }
    // A request sent in two parts is one request (bytes read since the last response keep
    // a connection in hyper's hands): the rest goes once the first part has woken the
    // parked connection (only the silent one is left parked).
    let (head, rest) = request.split_at(request.len() / 2);
    conn.send(head.as_bytes()).await;
    let woke = poll_until(Duration::from_secs(5), || async {
        p.tk.metric("tokenizer_connections_parked").await == 1.0
    })
    .await;
    assert!(
        woke.is_some(),
        "the first part did not wake the parked connection"
    );
    conn.send(rest.as_bytes()).await;
    assert_eq!(conn.read_response(false).await.status, 200);
    // The silent connection is served when it finally speaks.
    silent.send(request.as_bytes()).await;
    assert_eq!(silent.read_response(false).await.status, 200);
    drop(conn);
    drop(silent);
    let gone = poll_until(Duration::from_secs(5), || async {
        p.tk.metric("tokenizer_connections_parked").await == 0.0
    })
    .await;
    assert!(gone.is_some(), "closed parked connections are released");
}

#[tokio::test]
async fn responses_stream_before_the_upstream_finishes() {
    let p = env(&[]).await;
    let sealed = p.tk.seal(&inject("supersecret", "trustno1"));
    let mut resp = p
        .client
        .get(p.url("/stream"))
        .header("proxy-tokenizer", &sealed)
        .header(AUTH.0, AUTH.1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The upstream holds its second chunk until released; the first must already be here.
    let first = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
        .await
        .expect("first chunk arrives while the upstream is still open")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first\n");
    p.upstream.release(1);
    let rest = resp.bytes().await.unwrap();
    assert_eq!(&rest[..], b"second\n");
}

#[tokio::test]
async fn large_request_bodies_pass_through_intact() {
    let p = env(&[]).await;
    let sealed = p.tk.seal(&inject("supersecret", "trustno1"));
    let body: String = (0..200_000).map(|i| format!("{i:08}")).collect();
    let echo = p
        .send("POST", "/upload", &[&sealed], &[AUTH], body.clone())
        .await
        .echo();
    assert_eq!(echo.body().len(), body.len());
    assert!(echo.body() == body);
}

/// POST `body` with one secret and optional params; returns the echo.
async fn post(p: &Env, secret: &Value, params: Option<Value>, body: &str) -> Echo {
    let sealed = p.seal(secret);
    let header = match params {
        Some(params) => format!("{sealed}; {params}"),
        None => sealed,
    };
    p.send("POST", "/body", &[&header], &[AUTH], body.to_owned())
        .await
        .echo()
}

fn body_secret(kind: &str, config: Value) -> Value {
    let mut s = json!({"bearer_auth": bearer("trustno1")});
    s[kind] = config;
    s
}

#[tokio::test]
async fn inject_body_replaces_placeholders() {
    let p = env(&[]).await;
    let plain = body_secret("inject_body_processor", json!({"token": "tok"}));
    let echo = post(&p, &plain, None, "a={{ACCESS_TOKEN}}&b={{ACCESS_TOKEN}}").await;
    assert_eq!(echo.body(), "a=tok&b=tok");
    // The length changed, so the body went out chunked.
    assert_eq!(echo.header("transfer-encoding").as_deref(), Some("chunked"));
    assert!(echo.header("content-length").is_none());

    let echo = post(
        &p,
        &plain,
        Some(json!({"placeholder": "<<TOKEN>>"})),
        "x<<TOKEN>>y",
    )
    .await;
    assert_eq!(echo.body(), "xtoky");

    let configured = body_secret(
        "inject_body_processor",
        json!({"token": "tok", "placeholder": "[[TOKEN]]"}),
    );
    let echo = post(&p, &configured, None, "[[TOKEN]]{{ACCESS_TOKEN}}").await;
    assert_eq!(echo.body(), "tok{{ACCESS_TOKEN}}");
    let echo = post(
        &p,
        &configured,
        Some(json!({"placeholder": "<<T>>"})),
        "<<T>>[[TOKEN]]",
    )
    .await;
    assert_eq!(echo.body(), "tok[[TOKEN]]");

    let echo = post(&p, &plain, None, "nothing to replace").await;
    assert_eq!(echo.body(), "nothing to replace");
    let echo = post(&p, &plain, None, "").await;
    assert_eq!(echo.body(), "");
    let many = "{{ACCESS_TOKEN}}".repeat(10_000);
    let echo = post(&p, &plain, None, &many).await;
    assert_eq!(echo.body(), "tok".repeat(10_000));
    assert!(echo.header("authorization").is_none());
}

#[tokio::test]
async fn oauth2_with_a_placeholder_writes_the_body() {
    let p = env(&[]).await;
    let secret = body_secret(
        "oauth2_processor",
        json!({"token": {"access_token": "access-123", "refresh_token": "refresh-456"}}),
    );
    let echo = post(
        &p,
        &secret,
        Some(json!({"placeholder": "TOKEN"})),
        "t=TOKEN",
    )
    .await;
    assert_eq!(echo.body(), "t=access-123");
    assert!(echo.header("authorization").is_none());
    let echo = post(
        &p,
        &secret,
        Some(json!({"placeholder": "TOKEN", "st": "refresh"})),
        "t=TOKEN",
    )
    .await;
    assert_eq!(echo.body(), "t=refresh-456");
    let echo = post(&p, &secret, None, "t=TOKEN").await;
    assert_eq!(echo.body(), "t=TOKEN");
    assert_eq!(echo.header("authorization").unwrap(), "Bearer access-123");
}

#[tokio::test]
async fn oauth2_body_replaces_access_or_refresh_token() {
    let p = env(&[]).await;
    let secret = body_secret(
        "oauth2_body_processor",
        json!({"token": {"access_token": "access-123", "refresh_token": "refresh-456"}}),
    );
    let echo = post(&p, &secret, None, "{{ACCESS_TOKEN}}-{{ACCESS_TOKEN}}").await;
    assert_eq!(echo.body(), "access-123-access-123");
    let echo = post(
        &p,
        &secret,
        Some(json!({"st": "refresh"})),
        "{{ACCESS_TOKEN}}",
    )
    .await;
    assert_eq!(echo.body(), "refresh-456");
    let echo = post(&p, &secret, Some(json!({"placeholder": "@@"})), "@@").await;
    assert_eq!(echo.body(), "access-123");
    let configured = body_secret(
        "oauth2_body_processor",
        json!({"token": {"access_token": "access-123"}, "placeholder": "%%"}),
    );
    let echo = post(&p, &configured, None, "%%").await;
    assert_eq!(echo.body(), "access-123");
    let echo = post(&p, &secret, None, "").await;
    assert_eq!(echo.body(), "");
    let big = format!("{}{{{{ACCESS_TOKEN}}}}", "x".repeat(50_000));
    let echo = post(&p, &secret, None, &big).await;
    assert_eq!(echo.body(), format!("{}access-123", "x".repeat(50_000)));
}

#[tokio::test]
async fn secrets_work_together_in_order() {
    let p = env(&[]).await;
    let hmac = body_secret(
        "inject_hmac_processor",
        json!({"key": ::tokenizer::secret::b64::encode(b"trustno2"), "hash": "sha256", "dst": "X-Sig"}),
    );
    let replace = body_secret("inject_body_processor", json!({"token": "foo"}));
    // Two secrets: the HMAC would sign the other secret's credential, and whoever holds
    // the HMAC secret (anyone can seal one) could read the signature as an oracle on it.
    let got = p
        .send(
            "POST",
            "/",
            &[&p.seal(&replace), &p.seal(&hmac)],
            &[AUTH],
            "{{ACCESS_TOKEN}}",
        )
        .await;
    assert_eq!(got.status, 400);
    assert!(got.body.contains("cannot be combined"));
    // One secret doing both, in order: the HMAC signs the replaced body ("foo").
    let both = json!({
        "multi_processor": [
            {"inject_body_processor": {"token": "foo"}},
            {"inject_hmac_processor": {"key": ::tokenizer::secret::b64::encode(b"trustno2"),
                "hash": "sha256", "dst": "X-Sig"}},
        ],
        "bearer_auth": hmac["bearer_auth"],
    });
    let got = p
        .send("POST", "/", &[&p.seal(&both)], &[AUTH], "{{ACCESS_TOKEN}}")
        .await;
    let echo = Echo::parse(&got.body);
    assert_eq!(echo.body(), "foo");
    assert_eq!(
        echo.header("x-sig").unwrap(),
        "Bearer d3ac69dec42b3b896fbde93c8e15b2ab997a947703558deb5ae44a70d76c4e12"
    );
}
