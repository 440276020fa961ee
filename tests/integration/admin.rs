//! The admin listener (health, metrics, seal key, sealing, audit, stats) and the
//! reflection guard, against a running proxy.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::ca::TestCa;
use crate::support::sidecar::SideProxy;
use crate::support::tokenizer::Tokenizer;
use crate::support::upstream::{Echo, Upstream};
use crate::support::{bearer, inject, with};

const TOKEN: &str = "sk-live-0123456789abcdefXYZ";

struct Env {
    _ca: TestCa,
    upstream: Upstream,
    tk: Tokenizer,
    admin: String,
    http: reqwest::Client,
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
        upstream,
        tk,
        admin,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

impl Env {
    async fn proxied(&self, path: &str, sealed: &str, auth: &str) -> reqwest::Response {
        self.tk
            .client()
            .get(format!("http://api.test{path}"))
            .header("proxy-tokenizer", sealed)
            .header("proxy-authorization", auth)
            .send()
            .await
            .unwrap()
    }

    async fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.admin))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Audit entries are recorded when the response body ends: poll until `n` are there.
    async fn audit(&self, query: &str, n: usize) -> Vec<Value> {
        for _ in 0..50 {
            let (status, body) = self.get_json(&format!("/v1/audit?{query}")).await;
            assert_eq!(status, 200, "{body}");
            let entries = body["entries"].as_array().unwrap().clone();
            if entries.len() >= n {
                return entries;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fewer than {n} audit entries for {query}");
    }
}

#[tokio::test]
async fn health_readiness_and_seal_key() {
    let e = env(&[]).await;
    let ok = e
        .http
        .get(format!("{}/healthz", e.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (ok.status().as_u16(), ok.text().await.unwrap()),
        (200, "ok\n".to_owned())
    );
    let ready = e
        .http
        .get(format!("{}/readyz", e.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let (status, body) = e.get_json("/v1/sealkey").await;
    assert_eq!(status, 200);
    assert_eq!(body["seal_key"], e.tk.seal_key.to_hex());
    let (status, body) = e.get_json("/nope").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not found")));
}

#[tokio::test]
async fn audit_entries_match_the_traffic() {
    let e = env(&[]).await;
    let ok = e.tk.seal(&with(
        inject(TOKEN, "pw"),
        json!({"id": "audit-key", "rate_limit": "1/hour"}),
    ));
    let other = e.tk.seal(&inject(TOKEN, "pw"));
    assert_eq!(
        e.proxied("/one?q=secretvalue", &ok, "Bearer pw")
            .await
            .status(),
        200
    );
    assert_eq!(e.proxied("/two", &ok, "Bearer pw").await.status(), 429);
    assert_eq!(
        e.proxied("/three", &other, "Bearer wrong").await.status(),
        407
    );

    let all = e.audit("", 3).await;
    let by_path = |p: &str| all.iter().find(|x| x["path"] == p).unwrap().clone();
    let one = by_path("/one");
    assert_eq!(one["decision"], "allowed");
    assert_eq!(one["status"], 200);
    assert_eq!(one["method"], "GET");
    assert_eq!(one["host"], "api.test");
    assert_eq!(one["role"], "serve");
    assert_eq!(one["query_keys"], "q");
    assert_eq!(one["secret_ids"], json!(["id:audit-key"]));
    assert!(one["response_bytes"].as_u64().unwrap() > 0);
    assert!(one["upstream_ms"].as_f64().unwrap() > 0.0);
    assert!(one["total_ms"].as_f64().unwrap() >= one["upstream_ms"].as_f64().unwrap());
    assert_eq!(by_path("/two")["decision"], "rate-limited");
    let three = by_path("/three");
    assert_eq!(three["decision"], "denied");
    assert!(
        three["reason"]
            .as_str()
            .unwrap()
            .contains("bad or missing proxy auth")
    );
    assert!(
        three["secret_ids"][0]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let text = serde_json::to_string(&all).unwrap();
    assert!(
        !text.contains(TOKEN) && !text.contains("secretvalue"),
        "{text}"
    );

    // Filters.
    assert_eq!(e.audit("status=4xx", 2).await.len(), 2);
    assert_eq!(e.audit("decision=denied", 1).await.len(), 1);
    assert_eq!(e.audit("secret=audit-key", 2).await.len(), 2);
    assert_eq!(e.audit("host=api.test&limit=1", 1).await.len(), 1);
    assert!(
        e.get_json("/v1/audit?host=elsewhere").await.1["entries"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (status, _) = e.get_json("/v1/audit?since=2999-01-01T00:00:00Z").await;
    assert_eq!(status, 200);
    for bad in [
        "/v1/audit?status=9xx",
        "/v1/audit?limit=many",
        "/v1/audit?since=yesterday",
    ] {
        let (status, body) = e.get_json(bad).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
    let (_, stats) = e.get_json("/v1/stats").await;
    assert_eq!(stats["totals"]["total"], 3);
    assert_eq!(stats["totals"]["rate-limited"], 1);
}

#[tokio::test]
async fn metrics_move_with_traffic() {
    let e = env(&[]).await;
    let sealed = e.tk.seal(&inject(TOKEN, "pw"));
    assert_eq!(e.proxied("/", &sealed, "Bearer pw").await.status(), 200);
    assert_eq!(e.proxied("/", &sealed, "Bearer no").await.status(), 407);
    e.audit("", 2).await;
    let text = e
        .http
        .get(format!("{}/metrics", e.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        r#"tokenizer_requests_total{role="serve",status="200",decision="allowed"} 1"#,
        r#"tokenizer_requests_total{role="serve",status="407",decision="denied"} 1"#,
        "tokenizer_request_duration_seconds_count{role=\"serve\"} 2",
        "tokenizer_upstream_duration_seconds_bucket",
        "tokenizer_secrets_opened_total 1",
        "tokenizer_unseal_cache_hits_total 1",
        "tokenizer_upstream_connections_total 1",
        "tokenizer_upstream_connections_open 1",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(!text.contains(TOKEN));
}

#[tokio::test]
async fn seal_endpoint_output_works_through_the_proxy() {
    let e = env(&["--admin-token", "admin-secret"]).await;
    let secret = with(
        inject(TOKEN, "pw"),
        json!({"allowed_hosts": ["api.test"], "id": "via-api"}),
    );
    let post = |body: String, token: Option<&str>, query: &str| {
        let mut req = e
            .http
            .post(format!("{}/v1/seal{query}", e.admin))
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let resp = post(secret.to_string(), None, "").await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = post(secret.to_string(), Some("wrong"), "").await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = post(secret.to_string(), Some("admin-secret"), "")
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body["warnings"].as_array().unwrap().is_empty(), "{body}");
    let sealed = body["sealed_token"].as_str().unwrap();
    assert_eq!(body["digest"], ::tokenizer::secret::sealed_digest(sealed));
    let echo = Echo::parse(
        &e.proxied("/", sealed, "Bearer pw")
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(
        echo.header("authorization").unwrap(),
        format!("Bearer {TOKEN}")
    );

    // Invalid secrets are refused with the reason; lints are warnings, or errors on request.
    for bad in [
        "{",
        "[1]",
        r#"{"inject_processor":{"token":"t"}}"#,
        r#"{"inject_processor":{"token":"t"},"no_auth":{},"allowed_host_pattern":"("}"#,
        r#"{"inject_processor":{"token":"t"},"no_auth":{},"allowed_paths":["x"]}"#,
    ] {
        let resp = post(bad.to_owned(), Some("admin-secret"), "")
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("bad secret json"),
            "{body}"
        );
    }
    let risky = json!({"inject_processor": {"token": "t"}, "no_auth": {}, "typo_key": 1});
    let body: Value = post(risky.to_string(), Some("admin-secret"), "")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let warnings = body["warnings"].to_string();
    assert!(
        warnings.contains("no_auth")
            && warnings.contains("any host")
            && warnings.contains("typo_key"),
        "{warnings}"
    );
    let resp = post(
        risky.to_string(),
        Some("admin-secret"),
        "?deny_warnings=true",
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = post(
        risky.to_string(),
        Some("admin-secret"),
        "?deny_warnings=maybe",
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    // The audit tail needs the token too.
    assert_eq!(e.get_json("/v1/audit").await.0, 401);
}

#[tokio::test]
async fn the_reflection_guard_masks_echoed_credentials() {
    let e = env(&["--reflection-guard=true"]).await;
    let sealed = e.tk.seal(&inject(TOKEN, "pw"));
    let resp = e.proxied("/reflect", &sealed, "Bearer pw").await;
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("Bearer {TOKEN}"));
    for leaked in [TOKEN, &b64[4..20], &b64[10..30]] {
        assert!(!body.contains(leaked), "{leaked} in body {body}");
        for v in headers.values() {
            assert!(
                !v.to_str().unwrap().contains(leaked),
                "{leaked} in header {v:?}"
            );
        }
    }
    assert!(
        body.starts_with("start Bearer ") && body.ends_with(" end"),
        "{body}"
    );
    assert!(body.contains("[REDACTED]"), "{body}");
    assert!(
        headers["x-echo-auth"]
            .to_str()
            .unwrap()
            .contains("[REDACTED]")
    );
    // The echo of a request: the JSON body keeps its shape, the credential is masked.
    let echo = Echo::parse(
        &e.proxied("/", &sealed, "Bearer pw")
            .await
            .text()
            .await
            .unwrap(),
    );
    let auth = echo.header("authorization").unwrap();
    assert!(
        auth.starts_with("Bearer [REDACTED]") && auth.len() == "Bearer ".len() + TOKEN.len(),
        "{auth}"
    );
    // Counted in the audit entry.
    let entries = e.audit("", 2).await;
    let reflect = entries.iter().find(|x| x["path"] == "/reflect").unwrap();
    assert!(reflect["reflections"].as_u64().unwrap() >= 5, "{reflect}");
    let text = e
        .http
        .get(format!("{}/metrics", e.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("tokenizer_reflections_redacted_total"),
        "{text}"
    );
    assert!(
        !text.contains("tokenizer_reflections_redacted_total 0"),
        "{text}"
    );
    let _ = &e.upstream;
}

#[tokio::test]
async fn the_sidecar_has_an_admin_listener_too() {
    let ca = TestCa::new();
    let upstream = Upstream::start(&ca, &["api.test", "pass.test"]).await;
    let pin = format!("api.test=127.0.0.1:{}", upstream.port());
    let tk = Tokenizer::start(&ca, &["--upstream-resolve", &pin]).await;
    let sealed = tk.seal(&with(
        json!({"inject_processor": {"token": "real-key"}, "bearer_auth": bearer("pw")}),
        json!({"allowed_hosts": ["api.test"]}),
    ));
    let proxy = tk.proxy_url();
    let pass = format!("pass.test=127.0.0.1:{}", upstream.port());
    let side = SideProxy::start(
        &[
            "--targets",
            "api.test=S",
            "--proxy",
            &proxy,
            "--tokenizer-auth",
            "pw",
            "--https-proxy-address",
            "127.0.0.1:0",
            "--passthrough",
            "pass.test",
            "--upstream-resolve",
            &pass,
            "--upstream-allow-cidrs",
            "127.0.0.0/8",
            "--admin-address",
            "127.0.0.1:0",
        ],
        &[("S", &sealed)],
    )
    .await;
    let admin = format!("http://{}", side.admin_addr.unwrap());
    let resp = side
        .client_for(&["api.test"])
        .get(format!("https://api.test:{}/x", side.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-x", &side.proxy_url(), "--cacert"])
        .arg(&ca.pem_path)
        .arg("https://pass.test/p")
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut entries = Vec::new();
    for _ in 0..50 {
        let body: Value = http
            .get(format!("{admin}/v1/audit"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        entries = body["entries"].as_array().unwrap().clone();
        if entries.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        entries
            .iter()
            .any(|x| x["role"] == "sideproxy" && x["path"] == "/x" && x["decision"] == "allowed"),
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .any(|x| x["decision"] == "passthrough" && x["connect_host"] == "pass.test:443"),
        "{entries:?}"
    );
    let text = http
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("tokenizer_cert_cache_hits_total"), "{text}");
    assert!(text.contains(r#"role="sideproxy""#), "{text}");
}
