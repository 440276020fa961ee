//! Section 7.1 of the wire-compat spec: the Go tokenizer's own integration tests.

use serde_json::{Value, json};

use crate::support::ca::TestCa;
use crate::support::tokenizer::Tokenizer;
use crate::support::upstream::{Echo, Upstream};
use crate::support::{Env, Reply, bearer, inject, with};

/// GET / through the proxy with the given Proxy-Tokenizer and Proxy-Authorization lines.
async fn get(e: &Env, secrets: &[&str], auths: &[&str]) -> Reply {
    let auths: Vec<(&str, &str)> = auths.iter().map(|a| ("proxy-authorization", *a)).collect();
    e.get("/", secrets, &auths).await
}

/// [`get`], which must be answered 200: what the upstream saw.
async fn echoed(e: &Env, secrets: &[&str], auths: &[&str]) -> Echo {
    get(e, secrets, auths).await.echo()
}

fn with_params(sealed: &str, params: Value) -> String {
    format!("{sealed}; {params}")
}

#[tokio::test]
async fn untrusted_upstream_certificate_is_502() {
    let ca = TestCa::new();
    let upstream = Upstream::start(&ca, &["127.0.0.1"]).await;
    // No UPSTREAM_CA_FILE: the test CA is not trusted.
    let tk =
        Tokenizer::start_raw(vec!["--upstream-allow-cidrs".into(), "127.0.0.0/8".into()]).await;
    let sealed = tk.seal(&inject("supersecret", "trustno1"));
    let got = Reply::read(
        tk.client()
            .get(format!("http://127.0.0.1:{}/", upstream.port()))
            .header("proxy-tokenizer", sealed)
            .header("proxy-authorization", "Bearer trustno1"),
    )
    .await;
    assert_eq!(got.status, 502);
    let body = got.body;
    assert!(!body.contains("supersecret"), "{body}");
}

#[tokio::test]
async fn auth_without_a_secret_is_400() {
    let e = Env::start().await;
    let resp = get(&e, &[], &["Bearer trustno1"]).await;
    assert_eq!(resp.status, 400);
}

#[tokio::test]
async fn inject_needs_the_right_proxy_auth() {
    let e = Env::start().await;
    let sealed = e.seal(&inject("supersecret", "trustno1"));
    assert_eq!(get(&e, &[&sealed], &[]).await.status, 407);
    assert_eq!(get(&e, &[&sealed], &["Bearer wrong"]).await.status, 407);
    let body = get(&e, &[&sealed], &["Bearer wrong"]).await.body;
    assert_eq!(
        body.trim(),
        "unauthorized to use secret: not authorized: bad or missing proxy auth"
    );
}

#[tokio::test]
async fn inject_sets_only_the_credential_upstream() {
    let e = Env::start().await;
    let sealed = e.seal(&inject("supersecret", "trustno1"));
    let echo = echoed(&e, &[&sealed], &["Bearer trustno1"]).await;
    assert_eq!(echo.header_all("authorization"), ["Bearer supersecret"]);
    for name in echo.header_names() {
        assert!(
            [
                "host",
                "authorization",
                "accept",
                "accept-encoding",
                "user-agent"
            ]
            .contains(&name.as_str()),
            "unexpected upstream header {name}"
        );
    }
    assert_eq!(echo.header("host").unwrap(), e.host());
}

#[tokio::test]
async fn inject_dst_and_fmt_params() {
    let e = Env::start().await;
    let sealed = e.seal(&inject("supersecret", "trustno1"));
    let echo = echoed(
        &e,
        &[&with_params(&sealed, json!({"dst": "Foo"}))],
        &["Bearer trustno1"],
    )
    .await;
    assert_eq!(echo.header("foo").unwrap(), "Bearer supersecret");
    assert_eq!(echo.header("authorization"), None);
    let echo = echoed(
        &e,
        &[&with_params(&sealed, json!({"fmt": "Other %s"}))],
        &["Bearer trustno1"],
    )
    .await;
    assert_eq!(echo.header("authorization").unwrap(), "Other supersecret");
}

#[tokio::test]
async fn good_plus_bogus_auth_passes() {
    let e = Env::start().await;
    let sealed = e.seal(&inject("supersecret", "trustno1"));
    let echo = echoed(&e, &[&sealed], &["Bearer bogus", "Bearer trustno1"]).await;
    assert_eq!(echo.header("authorization").unwrap(), "Bearer supersecret");
}

#[tokio::test]
async fn every_secret_is_authenticated_on_its_own() {
    let e = Env::start().await;
    let one = e.seal(&inject("supersecret", "trustno1"));
    let two = e.seal(&with(
        json!({"inject_processor": {"token": "other", "dst": "X-Other"}}),
        json!({"bearer_auth": bearer("other")}),
    ));
    assert_eq!(
        get(&e, &[&one, &two], &["Bearer trustno1"]).await.status,
        407
    );
}

#[tokio::test]
async fn hmac_over_the_body_and_over_msg() {
    let e = Env::start().await;
    let secret = json!({
        "inject_hmac_processor": {"key": tokenizer::secret::b64::encode(b"trustno2"), "hash": "sha256"},
        "bearer_auth": bearer("trustno1"),
    });
    let sealed = e.seal(&secret);
    let post = |params: Option<Value>| {
        let value = match &params {
            Some(p) => with_params(&sealed, p.clone()),
            None => sealed.clone(),
        };
        let e = &e;
        async move {
            let got = e
                .send(
                    "POST",
                    "/",
                    &[&value],
                    &[("proxy-authorization", "Bearer trustno1")],
                    "foo",
                )
                .await;
            Echo::parse(&got.body)
        }
    };
    let d3 = "d3ac69dec42b3b896fbde93c8e15b2ab997a947703558deb5ae44a70d76c4e12";
    let echo = post(None).await;
    assert_eq!(
        echo.header("authorization").unwrap(),
        format!("Bearer {d3}")
    );
    assert_eq!(echo.body(), "foo");
    for (params, header, want) in [
        (
            json!({"msg": "my payload"}),
            "authorization",
            "Bearer af081a4fb8f0b77b53c01f3230c13e7553dec7813235fcc2921ebd11fe3e925f".to_owned(),
        ),
        (json!({"dst": "Foo"}), "foo", format!("Bearer {d3}")),
        (json!({"fmt": "%X"}), "authorization", d3.to_uppercase()),
    ] {
        let echo = post(Some(params.clone())).await;
        assert_eq!(echo.header(header).unwrap(), want, "{params}");
    }
}

#[tokio::test]
async fn oauth2_access_and_refresh_tokens() {
    let e = Env::start().await;
    let sealed = e.seal(&json!({
        "oauth2_processor": {"token": {"access_token": "access-token", "refresh_token": "refresh-token"}},
        "bearer_auth": bearer("trustno1"),
    }));
    let auth = ["Bearer trustno1"];
    let echo = echoed(&e, &[&sealed], &auth).await;
    assert_eq!(echo.header("authorization").unwrap(), "Bearer access-token");
    let echo = echoed(&e, &[&with_params(&sealed, json!({"st": "access"}))], &auth).await;
    assert_eq!(echo.header("authorization").unwrap(), "Bearer access-token");
    let echo = echoed(
        &e,
        &[&with_params(&sealed, json!({"st": "refresh"}))],
        &auth,
    )
    .await;
    assert_eq!(
        echo.header("authorization").unwrap(),
        "Bearer refresh-token"
    );
}

#[tokio::test]
async fn allowed_hosts_and_host_pattern() {
    let e = Env::start().await;
    let port = e.upstream.port();
    let by_list = e.seal(&with(
        inject("supersecret", "trustno1"),
        json!({"allowed_hosts": [format!("127.0.0.1:{port}")]}),
    ));
    let by_pattern = e.seal(&with(
        inject("supersecret", "trustno1"),
        json!({"allowed_host_pattern": format!("^127\\.0\\.0\\.1:{port}$")}),
    ));
    for sealed in [by_list, by_pattern] {
        let ok = get(&e, &[&sealed], &["Bearer trustno1"]).await;
        assert_eq!(ok.status, 200);
        // Same upstream, other name: refused before any dial.
        let got = e
            .get(
                &format!("http://127.0.0.1.nip.io:{port}/"),
                &[&sealed],
                &[("proxy-authorization", "Bearer trustno1")],
            )
            .await;
        assert_eq!(got.status, 400);
        let body = got.body;
        assert!(
            body.contains("secret not valid for 127.0.0.1.nip.io"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn dst_allow_list() {
    let e = Env::start().await;
    let sealed = e.seal(&json!({
        "inject_processor": {"token": "supersecret", "allowed_dst": ["asdf", "qwer"]},
        "bearer_auth": bearer("trustno1"),
    }));
    let auth = ["Bearer trustno1"];
    let echo = echoed(&e, &[&sealed], &auth).await;
    assert_eq!(echo.header("asdf").unwrap(), "Bearer supersecret");
    let echo = echoed(&e, &[&with_params(&sealed, json!({"dst": "qWeR"}))], &auth).await;
    assert_eq!(echo.header("qwer").unwrap(), "Bearer supersecret");
    let resp = get(&e, &[&with_params(&sealed, json!({"dst": "zxcv"}))], &auth).await;
    assert_eq!(resp.status, 400);
}

#[tokio::test]
async fn multi_processor_injects_both() {
    let e = Env::start().await;
    let sealed = e.seal(&json!({
        "multi_processor": [
            {"inject_processor": {"token": "supersecret", "dst": "A"}},
            {"inject_processor": {"token": "extrasecret", "dst": "B"}},
        ],
        "bearer_auth": bearer("trustno1"),
    }));
    assert_eq!(get(&e, &[&sealed], &[]).await.status, 407);
    assert_eq!(get(&e, &[&sealed], &["Bearer bad"]).await.status, 407);
    let echo = echoed(&e, &[&sealed], &["Bearer trustno1"]).await;
    assert_eq!(echo.header("a").unwrap(), "Bearer supersecret");
    assert_eq!(echo.header("b").unwrap(), "Bearer extrasecret");
}
