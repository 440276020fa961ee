//! Section 7.1 of the wire-compat spec: the Go tokenizer's own integration tests.

use serde_json::json;

use crate::support::ca::TestCa;
use crate::support::tokenizer::Tokenizer;
use crate::support::upstream::{Echo, Upstream};
use crate::support::{bearer, inject, with};

struct Env {
    _ca: TestCa,
    upstream: Upstream,
    tk: Tokenizer,
    client: reqwest::Client,
}

async fn env() -> Env {
    let ca = TestCa::new();
    let upstream = Upstream::start(&ca, &["127.0.0.1"]).await;
    let tk = Tokenizer::start(&ca, &[]).await;
    let client = tk.client();
    Env {
        _ca: ca,
        upstream,
        tk,
        client,
    }
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.upstream.port())
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.upstream.port())
    }

    /// GET through the proxy with the given Proxy-Tokenizer and Proxy-Authorization lines.
    async fn get(&self, secrets: &[&str], auths: &[&str]) -> reqwest::Response {
        let mut req = self.client.get(self.url("/"));
        for s in secrets {
            req = req.header("proxy-tokenizer", *s);
        }
        for a in auths {
            req = req.header("proxy-authorization", *a);
        }
        req.send().await.unwrap()
    }

    async fn echo(&self, secrets: &[&str], auths: &[&str]) -> Echo {
        let resp = self.get(secrets, auths).await;
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 200, "{text}");
        Echo::parse(&text)
    }
}

fn with_params(sealed: &str, params: serde_json::Value) -> String {
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
    let resp = tk
        .client()
        .get(format!("http://127.0.0.1:{}/", upstream.port()))
        .header("proxy-tokenizer", sealed)
        .header("proxy-authorization", "Bearer trustno1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let body = resp.text().await.unwrap();
    assert!(!body.contains("supersecret"), "{body}");
}

#[tokio::test]
async fn auth_without_a_secret_is_400() {
    let e = env().await;
    let resp = e.get(&[], &["Bearer trustno1"]).await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn inject_needs_the_right_proxy_auth() {
    let e = env().await;
    let sealed = e.tk.seal(&inject("supersecret", "trustno1"));
    assert_eq!(e.get(&[&sealed], &[]).await.status(), 407);
    assert_eq!(e.get(&[&sealed], &["Bearer wrong"]).await.status(), 407);
    let body = e
        .get(&[&sealed], &["Bearer wrong"])
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        body.trim(),
        "unauthorized to use secret: not authorized: bad or missing proxy auth"
    );
}

#[tokio::test]
async fn inject_sets_only_the_credential_upstream() {
    let e = env().await;
    let sealed = e.tk.seal(&inject("supersecret", "trustno1"));
    let echo = e.echo(&[&sealed], &["Bearer trustno1"]).await;
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
    let e = env().await;
    let sealed = e.tk.seal(&inject("supersecret", "trustno1"));
    let echo = e
        .echo(
            &[&with_params(&sealed, json!({"dst": "Foo"}))],
            &["Bearer trustno1"],
        )
        .await;
    assert_eq!(echo.header("foo").unwrap(), "Bearer supersecret");
    assert_eq!(echo.header("authorization"), None);
    let echo = e
        .echo(
            &[&with_params(&sealed, json!({"fmt": "Other %s"}))],
            &["Bearer trustno1"],
        )
        .await;
    assert_eq!(echo.header("authorization").unwrap(), "Other supersecret");
}

#[tokio::test]
async fn good_plus_bogus_auth_passes() {
    let e = env().await;
    let sealed = e.tk.seal(&inject("supersecret", "trustno1"));
    let echo = e
        .echo(&[&sealed], &["Bearer bogus", "Bearer trustno1"])
        .await;
    assert_eq!(echo.header("authorization").unwrap(), "Bearer supersecret");
}

#[tokio::test]
async fn every_secret_is_authenticated_on_its_own() {
    let e = env().await;
    let one = e.tk.seal(&inject("supersecret", "trustno1"));
    let two = e.tk.seal(&with(
        json!({"inject_processor": {"token": "other", "dst": "X-Other"}}),
        json!({"bearer_auth": bearer("other")}),
    ));
    assert_eq!(
        e.get(&[&one, &two], &["Bearer trustno1"]).await.status(),
        407
    );
}

#[tokio::test]
async fn hmac_over_the_body_and_over_msg() {
    let e = env().await;
    let secret = json!({
        "inject_hmac_processor": {"key": tokenizer::secret::b64::encode(b"trustno2"), "hash": "sha256"},
        "bearer_auth": bearer("trustno1"),
    });
    let sealed = e.tk.seal(&secret);
    let post = |params: Option<serde_json::Value>| {
        let value = match &params {
            Some(p) => with_params(&sealed, p.clone()),
            None => sealed.clone(),
        };
        e.client
            .post(e.url("/"))
            .header("proxy-tokenizer", value)
            .header("proxy-authorization", "Bearer trustno1")
            .body("foo")
            .send()
    };
    let echo = Echo::parse(&post(None).await.unwrap().text().await.unwrap());
    assert_eq!(
        echo.header("authorization").unwrap(),
        "Bearer d3ac69dec42b3b896fbde93c8e15b2ab997a947703558deb5ae44a70d76c4e12"
    );
    assert_eq!(echo.body(), "foo");
    let echo = Echo::parse(
        &post(Some(json!({"msg": "my payload"})))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(
        echo.header("authorization").unwrap(),
        "Bearer af081a4fb8f0b77b53c01f3230c13e7553dec7813235fcc2921ebd11fe3e925f"
    );
    let echo = Echo::parse(
        &post(Some(json!({"dst": "Foo"})))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(
        echo.header("foo").unwrap(),
        "Bearer d3ac69dec42b3b896fbde93c8e15b2ab997a947703558deb5ae44a70d76c4e12"
    );
    let echo = Echo::parse(
        &post(Some(json!({"fmt": "%X"})))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(
        echo.header("authorization").unwrap(),
        "D3AC69DEC42B3B896FBDE93C8E15B2AB997A947703558DEB5AE44A70D76C4E12"
    );
}

#[tokio::test]
async fn oauth2_access_and_refresh_tokens() {
    let e = env().await;
    let sealed = e.tk.seal(&json!({
        "oauth2_processor": {"token": {"access_token": "access-token", "refresh_token": "refresh-token"}},
        "bearer_auth": bearer("trustno1"),
    }));
    let auth = ["Bearer trustno1"];
    let echo = e.echo(&[&sealed], &auth).await;
    assert_eq!(echo.header("authorization").unwrap(), "Bearer access-token");
    let echo = e
        .echo(&[&with_params(&sealed, json!({"st": "access"}))], &auth)
        .await;
    assert_eq!(echo.header("authorization").unwrap(), "Bearer access-token");
    let echo = e
        .echo(&[&with_params(&sealed, json!({"st": "refresh"}))], &auth)
        .await;
    assert_eq!(
        echo.header("authorization").unwrap(),
        "Bearer refresh-token"
    );
}

#[tokio::test]
async fn allowed_hosts_and_host_pattern() {
    let e = env().await;
    let port = e.upstream.port();
    let by_list = e.tk.seal(&with(
        inject("supersecret", "trustno1"),
        json!({"allowed_hosts": [format!("127.0.0.1:{port}")]}),
    ));
    let by_pattern = e.tk.seal(&with(
        inject("supersecret", "trustno1"),
        json!({"allowed_host_pattern": format!("^127\\.0\\.0\\.1:{port}$")}),
    ));
    for sealed in [by_list, by_pattern] {
        let ok = e.get(&[&sealed], &["Bearer trustno1"]).await;
        assert_eq!(ok.status(), 200);
        // Same upstream, other name: refused before any dial.
        let resp = e
            .client
            .get(format!("http://127.0.0.1.nip.io:{port}/"))
            .header("proxy-tokenizer", &sealed)
            .header("proxy-authorization", "Bearer trustno1")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body = resp.text().await.unwrap();
        assert!(
            body.contains("secret not valid for 127.0.0.1.nip.io"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn dst_allow_list() {
    let e = env().await;
    let sealed = e.tk.seal(&json!({
        "inject_processor": {"token": "supersecret", "allowed_dst": ["asdf", "qwer"]},
        "bearer_auth": bearer("trustno1"),
    }));
    let auth = ["Bearer trustno1"];
    let echo = e.echo(&[&sealed], &auth).await;
    assert_eq!(echo.header("asdf").unwrap(), "Bearer supersecret");
    let echo = e
        .echo(&[&with_params(&sealed, json!({"dst": "qWeR"}))], &auth)
        .await;
    assert_eq!(echo.header("qwer").unwrap(), "Bearer supersecret");
    let resp = e
        .get(&[&with_params(&sealed, json!({"dst": "zxcv"}))], &auth)
        .await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn multi_processor_injects_both() {
    let e = env().await;
    let sealed = e.tk.seal(&json!({
        "multi_processor": [
            {"inject_processor": {"token": "supersecret", "dst": "A"}},
            {"inject_processor": {"token": "extrasecret", "dst": "B"}},
        ],
        "bearer_auth": bearer("trustno1"),
    }));
    assert_eq!(e.get(&[&sealed], &[]).await.status(), 407);
    assert_eq!(e.get(&[&sealed], &["Bearer bad"]).await.status(), 407);
    let echo = e.echo(&[&sealed], &["Bearer trustno1"]).await;
    assert_eq!(echo.header("a").unwrap(), "Bearer supersecret");
    assert_eq!(echo.header("b").unwrap(), "Bearer extrasecret");
}
