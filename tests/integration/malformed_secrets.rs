//! A secret that cannot be used is refused with 400 and one short line that quotes
//! nothing secret, before anything is forwarded, and the proxy keeps serving: a malformed
//! `Proxy-Tokenizer` header or params, a value that does not decode or decrypt, secret
//! JSON of the wrong shape, a processor that cannot be built from its params, a request
//! without a secret (unless `--open-proxy`), a secret for another host, and bad secrets
//! on or inside a CONNECT tunnel.

use serde_json::json;
use tokenizer::secret::{OpenKey, b64};

use crate::support::adversary::{
    AUTH, Adversary, TOKEN, assert_refused_sent, env, hmac_secret, with_params,
};
use crate::support::attack::{self, call, real};
use crate::support::raw::RawConn;
use crate::support::upstream::Echo;
use crate::support::{Env, bearer, inject, with};

// === Proxy-Tokenizer header ===

#[tokio::test]
async fn malformed_tokenizer_headers_are_400() {
    let e = env(&[]).await;
    let good = e.good();
    for value in [
        String::new(),
        "   ".to_owned(),
        "; {}".to_owned(),
        format!(" ; {}", json!({"dst": "Foo"})),
    ] {
        e.refused(&[&value], 400, "bad tokenizer header").await;
    }
    // An empty params part (`<secret>;`) is not listed: Go skips it rather than refuse.
    for params in [r#"{"dst":1}"#, "[1]", "abc", r#"{"dst":["Foo"]}"#, "1"] {
        let value = format!("{good}; {params}");
        e.refused(&[&value], 400, "bad tokenizer header params")
            .await;
    }
    // Not a secret, empty params: refused (params or encoding, either is 400).
    e.refused(&["abc;"], 400, "bad request").await;
    // A value that is not text (obs-text bytes), sent raw.
    let mut conn = RawConn::open(e.tk.addr).await;
    let mut req = format!("GET {} HTTP/1.1\r\nHost: {}\r\n", e.url("/"), e.host()).into_bytes();
    req.extend_from_slice(b"Proxy-Tokenizer: \xff\xfe\xfd\r\n\r\n");
    conn.send(&req).await;
    let resp = conn.read_response(false).await;
    assert_refused_sent(
        "",
        resp.status,
        &resp.text(),
        400,
        "bad tokenizer header",
        &[],
    );
    e.unharmed().await;
}

#[tokio::test]
async fn undecodable_secrets_are_400() {
    let e = env(&[]).await;
    let good = e.good();
    // URL-safe base64 of a valid secret (reseal until it has a `+` or `/` to differ).
    let url_safe = (0..50)
        .map(|_| e.good())
        .find(|s| s.contains(['+', '/']))
        .expect("a seal with + or /")
        .replace('+', "-")
        .replace('/', "_");
    let comma_joined = format!("{good},{good}");
    let comma_spaced = format!("{good}, {}", e.good());
    let values = ["!!!", &url_safe, &comma_joined, &comma_spaced];
    e.each_refused(&values, 400, "bad Proxy-Tokenizer encoding")
        .await;
    e.unharmed().await;
}

#[tokio::test]
async fn undecryptable_secrets_are_400() {
    let e = env(&[]).await;
    let json = inject(TOKEN, AUTH).to_string();
    let other_key = OpenKey::generate().seal_key().seal_base64(json.as_bytes());
    let mut bytes = b64::decode(&e.good()).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let tampered = b64::encode(&bytes);
    let truncated = b64::encode(&bytes[..40]);
    let values = [&other_key, &tampered, &truncated].map(String::as_str);
    e.each_refused(&values, 400, "failed Proxy-Tokenizer decryption")
        .await;
    e.unharmed().await;
}

/// One bad secret among good ones spoils the whole request.
#[tokio::test]
async fn one_bad_line_among_good_ones_is_400() {
    let e = env(&[]).await;
    let good = e.good();
    e.refused(&[&good, "!!!"], 400, "bad Proxy-Tokenizer encoding")
        .await;
    e.refused(&["!!!", &good], 400, "bad Proxy-Tokenizer encoding")
        .await;
    e.unharmed().await;
}

// === the secret JSON ===

/// Not JSON, not an object, no auth or two, no processor or two, values of the wrong
/// type, bad base64, a bad regex: `bad secret json`. The cases hold `supersecret` where a
/// credential goes, and no refusal quotes it.
#[tokio::test]
async fn bad_secret_json_is_400() {
    let e = env(&[]).await;
    let digest = bearer(AUTH)["digest"].as_str().unwrap().to_owned();
    let cases = [
        "not json supersecret".to_owned(),
        "".to_owned(),
        r#"["supersecret"]"#.to_owned(),
        r#""supersecret""#.to_owned(),
        format!(
            r#"{{"inject_processor":{{"token":"supersecret"}},"no_auth":{{}},"bearer_auth":{{"digest":"{digest}"}}}}"#
        ),
        r#"{"inject_processor":{"token":"supersecret"}}"#.to_owned(),
        r#"{"foo_processor":{"token":"supersecret"},"no_auth":{}}"#.to_owned(),
        r#"{"no_auth":{}}"#.to_owned(),
        r#"{"inject_processor":{"token":"supersecret"},"oauth2_processor":{"token":{"access_token":"supersecret"}},"no_auth":{}}"#.to_owned(),
        r#"{"multi_processor":[{"inject_processor":{"token":"supersecret"},"oauth2_processor":{"token":{"access_token":"supersecret"}}}],"no_auth":{}}"#.to_owned(),
        r#"{"inject_processor":{"token":31337},"no_auth":{}}"#.to_owned(),
        r#"{"inject_processor":{"token":["supersecret"]},"no_auth":{}}"#.to_owned(),
        r#"{"inject_processor":{"token":{"supersecret":"supersecret"}},"no_auth":{}}"#.to_owned(),
        r#"{"inject_processor":"supersecret","no_auth":{}}"#.to_owned(),
        r#"{"inject_hmac_processor":{"key":"supersecret!!","hash":"sha256"},"no_auth":{}}"#
            .to_owned(),
        r#"{"inject_processor":{"token":"supersecret"},"bearer_auth":{"digest":"supersecret!!"}}"#
            .to_owned(),
        r#"{"inject_processor":{"token":"supersecret"},"no_auth":{},"allowed_host_pattern":"(supersecret"}"#.to_owned(),
        r#"{"inject_processor":{"token":"supersecret"},"no_auth":{},"allowed_hosts":"supersecret"}"#.to_owned(),
        r#"{"inject_processor":{"token":"supersecret"},"no_auth":{},"allowed_hosts":[31337]}"#.to_owned(),
        r#"{"inject_processor":{"token":"supersecret"},"no_auth":{}"#.to_owned(),
    ];
    for json in &cases {
        let sealed = e.seal_raw(json);
        let (status, body) = e.get_with(&[&sealed]).await;
        assert_refused_sent(json, status, &body, 400, "bad secret json", &[&sealed]);
        assert!(!body.contains("supersecret"), "{json}: {body:?}");
    }
    e.unharmed().await;
}

// === processors that cannot be built ===

#[tokio::test]
async fn processor_build_errors_are_400() {
    let e = env(&[]).await;
    let good = e.good();
    let empty_token = e.seal(&inject("", AUTH));
    let md5 = e.seal(&hmac_secret("md5"));
    let no_hash = e.seal(&hmac_secret(""));
    let allowed_fmt = e.seal(&with(
        json!({"inject_processor": {"token": TOKEN, "allowed_fmt": ["Bearer %s"]}}),
        json!({"bearer_auth": bearer(AUTH)}),
    ));
    let fixed_fmt = e.seal(&with(
        json!({"inject_processor": {"token": TOKEN, "fmt": "Bearer %s"}}),
        json!({"bearer_auth": bearer(AUTH)}),
    ));
    let allowed_dst = e.seal(&with(
        json!({"inject_processor": {"token": TOKEN, "allowed_dst": ["X-Api-Key"]}}),
        json!({"bearer_auth": bearer(AUTH)}),
    ));
    let fixed_dst = e.seal(&with(
        json!({"inject_processor": {"token": TOKEN, "dst": "X-Api-Key"}}),
        json!({"bearer_auth": bearer(AUTH)}),
    ));
    let hmac = e.seal(&hmac_secret("sha256"));
    let cases: Vec<(String, &str)> = vec![
        (empty_token, "missing token"),
        (md5, "unsupported hash function"),
        (no_hash, "unsupported hash function"),
        (with_params(&good, json!({"fmt": "%d"})), "bad fmt"),
        (with_params(&good, json!({"fmt": "%s%s"})), "bad fmt"),
        (with_params(&good, json!({"fmt": "no verb"})), "bad fmt"),
        (with_params(&good, json!({"fmt": "%x"})), "bad fmt"),
        (with_params(&hmac, json!({"fmt": "%s"})), "bad fmt"),
        (
            with_params(&allowed_fmt, json!({"fmt": "Token %s"})),
            "bad fmt",
        ),
        (
            with_params(&fixed_fmt, json!({"fmt": "Token %s"})),
            "bad fmt",
        ),
        (
            with_params(&allowed_dst, json!({"dst": "Authorization"})),
            "bad dst",
        ),
        (
            with_params(&fixed_dst, json!({"dst": "Authorization"})),
            "bad dst",
        ),
        (with_params(&good, json!({"dst": "Host"})), "bad dst"),
        (
            with_params(&good, json!({"dst": "content-length"})),
            "bad dst",
        ),
        (
            with_params(&good, json!({"dst": "Transfer-Encoding"})),
            "bad dst",
        ),
        (with_params(&good, json!({"dst": "Connection"})), "bad dst"),
        (
            with_params(&good, json!({"dst": "Proxy-Authorization"})),
            "bad dst",
        ),
        (
            with_params(&good, json!({"dst": "Proxy-Tokenizer"})),
            "bad dst",
        ),
        (with_params(&good, json!({"dst": "bad header"})), "bad dst"),
        (with_params(&good, json!({"dst": "A\r\nX-Evil"})), "bad dst"),
        (
            with_params(&hmac, json!({"dst": "Content-Length"})),
            "bad dst",
        ),
    ];
    for (value, needle) in &cases {
        let (status, body) = e.get_with(&[value]).await;
        assert_refused_sent(value, status, &body, 400, needle, &[value]);
    }
    e.unharmed().await;
}

// === OPEN_PROXY ===

#[tokio::test]
async fn no_secret_is_400_without_open_proxy() {
    let e = env(&[]).await;
    let (status, body) = e.get_with(&[]).await;
    assert_refused_sent("", status, &body, 400, "missing Proxy-Tokenizer", &[]);
    e.unharmed().await;
}

#[tokio::test]
async fn open_proxy_forwards_without_a_credential() {
    let e = env(&["--open-proxy"]).await;
    let (status, body) = e.get_with(&[]).await;
    assert_eq!(status, 200, "{body}");
    let echo = Echo::parse(&body);
    assert!(echo.header("authorization").is_none(), "{body}");
    assert!(echo.header("proxy-authorization").is_none(), "{body}");
    // A bad secret is still refused: OPEN_PROXY only covers requests with none.
    e.refused(&["!!!"], 400, "bad Proxy-Tokenizer encoding")
        .await;
    e.still_serves().await;
}

// === validators ===

#[tokio::test]
async fn secret_for_another_host_is_400() {
    let e = env(&[]).await;
    let nowhere = e.seal(&with(inject(TOKEN, AUTH), json!({"allowed_hosts": []})));
    let elsewhere = e.seal(&with(
        inject(TOKEN, AUTH),
        json!({"allowed_hosts": ["api.example.com"]}),
    ));
    let without_port = e.seal(&with(
        inject(TOKEN, AUTH),
        json!({"allowed_hosts": ["127.0.0.1"]}),
    ));
    let pattern = e.seal(&with(
        inject(TOKEN, AUTH),
        json!({"allowed_host_pattern": "^api\\.example\\.com$"}),
    ));
    let values = [&nowhere, &elsewhere, &without_port, &pattern].map(String::as_str);
    e.each_refused(&values, 400, "secret not valid for").await;
    e.unharmed().await;
}

// === CONNECT tunnels ===

/// A bad secret on the CONNECT never opens a tunnel; a bad secret on a request inside a
/// tunnel fails that request only.
#[tokio::test]
async fn bad_secrets_on_and_in_a_connect_tunnel_are_400() {
    let e = Env::builder()
        .names(&["api.test", "127.0.0.1"])
        .start()
        .await;
    let good = e.good();
    let wrong_key = OpenKey::generate()
        .seal_key()
        .seal_base64(inject(TOKEN, AUTH).to_string().as_bytes());
    let bad_json = e.seal_raw(r#"{"inject_processor":{"token":31337},"no_auth":{}}"#);
    let auth = format!("Bearer {AUTH}");
    for (secret, needle) in [
        ("!!!", "bad Proxy-Tokenizer encoding"),
        (wrong_key.as_str(), "failed Proxy-Tokenizer decryption"),
        (bad_json.as_str(), "bad secret json"),
    ] {
        let resp = e
            .tunnel("api.test:80", &[secret], &[("proxy-authorization", &auth)])
            .await
            .unwrap_err();
        assert_refused_sent(secret, resp.status, &resp.text(), 400, needle, &[secret]);
    }

    // A tunnel without CONNECT-level secrets; each inner request brings its own.
    let mut conn = e.tunnel("api.test:80", &[], &[]).await.unwrap();
    let inner = |secret: &str| {
        format!(
            "GET / HTTP/1.1\r\nHost: api.test\r\nProxy-Tokenizer: {secret}\r\n\
             Proxy-Authorization: Bearer {AUTH}\r\n\r\n"
        )
    };
    for (secret, needle) in [
        ("!!!", "bad Proxy-Tokenizer encoding"),
        (wrong_key.as_str(), "failed Proxy-Tokenizer decryption"),
        (bad_json.as_str(), "bad secret json"),
    ] {
        conn.send(inner(secret).as_bytes()).await;
        let resp = conn.read_response(false).await;
        assert_refused_sent(secret, resp.status, &resp.text(), 400, needle, &[secret]);
    }
    e.upstream_untouched();
    conn.send(inner(&good).as_bytes()).await;
    let resp = conn.read_response(false).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echo = Echo::parse(&resp.text());
    assert_eq!(
        echo.header("authorization").unwrap(),
        format!("Bearer {TOKEN}")
    );
}

/// First outside attack (issue 13), also found: a format with a multibyte character
/// panicked the proxy.
#[tokio::test]
async fn a_format_with_a_multibyte_character_is_a_clear_400() {
    let e = attack::env(&[]).await;
    for fmt in ["%é", "Bearer %€", "%\u{1f600}s"] {
        let sealed = format!("{}; {}", e.seal(&real(json!({}))), json!({"fmt": fmt}));
        let got = call(&e, "GET", "http://api.test/", &[&sealed], &[], "").await;
        assert_eq!(got.status, 400, "{fmt}: {}", got.body);
        assert!(got.body.contains("bad fmt"), "{}", got.body);
    }
}
