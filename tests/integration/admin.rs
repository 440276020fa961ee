//! The admin listener (health, metrics, seal key, sealing, audit, stats) and the
//! reflection guard, against a running proxy.

use serde_json::{Value, json};

use crate::support::admin::Admin;
use crate::support::sidecar::SideProxy;
use crate::support::upstream::Echo;
use crate::support::{Env, Reply, curl, inject, with};

const TOKEN: &str = "sk-live-0123456789abcdefXYZ";

/// A proxy with an admin listener (plus `extra` flags) in front of `api.test`.
async fn env(extra: &[&str]) -> Env {
    let builder = Env::builder().names(&["api.test"]).admin();
    builder.flags(extra).start().await
}

/// GET `path` on api.test with one secret and a Proxy-Authorization.
async fn proxied(e: &Env, path: &str, sealed: &str, auth: &str) -> Reply {
    e.get(path, &[sealed], &[("proxy-authorization", auth)])
        .await
}

#[tokio::test]
async fn health_readiness_and_seal_key() {
    let e = env(&[]).await;
    let admin = e.admin();
    assert_eq!(admin.text("/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(admin.get("/readyz").await.status(), 200);
    let (status, body) = admin.get_json("/v1/sealkey").await;
    assert_eq!(status, 200);
    assert_eq!(body["seal_key"], e.tk.seal_key.to_hex());
    let (status, body) = admin.get_json("/nope").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not found")));
}

#[tokio::test]
async fn audit_entries_match_the_traffic() {
    let e = env(&[]).await;
    let admin = e.admin();
    let ok = e.seal(&with(
        inject(TOKEN, "pw"),
        json!({"id": "audit-key", "rate_limit": "1/hour"}),
    ));
    let other = e.seal(&inject(TOKEN, "pw"));
    assert_eq!(
        proxied(&e, "/one?q=secretvalue", &ok, "Bearer pw")
            .await
            .status,
        200
    );
    assert_eq!(proxied(&e, "/two", &ok, "Bearer pw").await.status, 429);
    assert_eq!(
        proxied(&e, "/three", &other, "Bearer wrong").await.status,
        407
    );

    let all = admin.audit("", 3).await;
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
    assert_eq!(admin.audit("status=4xx", 2).await.len(), 2);
    assert_eq!(admin.audit("decision=denied", 1).await.len(), 1);
    assert_eq!(admin.audit("secret=audit-key", 2).await.len(), 2);
    assert_eq!(admin.audit("host=api.test&limit=1", 1).await.len(), 1);
    assert!(
        admin.get_json("/v1/audit?host=elsewhere").await.1["entries"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (status, _) = admin.get_json("/v1/audit?since=2999-01-01T00:00:00Z").await;
    assert_eq!(status, 200);
    for bad in [
        "/v1/audit?status=9xx",
        "/v1/audit?limit=many",
        "/v1/audit?since=yesterday",
    ] {
        let (status, body) = admin.get_json(bad).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
    let (_, stats) = admin.get_json("/v1/stats").await;
    assert_eq!(stats["totals"]["total"], 3);
    assert_eq!(stats["totals"]["rate-limited"], 1);
}

#[tokio::test]
async fn metrics_move_with_traffic() {
    let e = env(&[]).await;
    let admin = e.admin();
    let sealed = e.seal(&inject(TOKEN, "pw"));
    assert_eq!(proxied(&e, "/", &sealed, "Bearer pw").await.status, 200);
    assert_eq!(proxied(&e, "/", &sealed, "Bearer no").await.status, 407);
    admin.audit("", 2).await;
    let text = admin.metrics().await;
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
    let admin = e.admin();
    let secret = with(
        inject(TOKEN, "pw"),
        json!({"allowed_hosts": ["api.test"], "id": "via-api"}),
    );
    let post = |body: String, token: Option<&str>, query: &str| {
        let mut req = admin
            .http
            .post(admin.url(&format!("/v1/seal{query}")))
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
    let echo = Echo::parse(&proxied(&e, "/", sealed, "Bearer pw").await.body);
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
            body["error"] == "not a secret" && body["errors"].is_array(),
            "{body}"
        );
    }
    // Mistakes are refused with each key named (the CLI's validator), unless lenient.
    let risky = json!({"inject_processor": {"token": "t"}, "no_auth": {}, "typo_key": 1});
    let resp = post(risky.to_string(), Some("admin-secret"), "")
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["errors"].to_string().contains("typo_key: unknown key"),
        "{body}"
    );
    let body: Value = post(risky.to_string(), Some("admin-secret"), "?lenient=true")
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
    for query in [
        "?deny_warnings=true",
        "?deny_warnings=maybe",
        "?lenient=true&deny_warnings=true",
    ] {
        let resp = post(risky.to_string(), Some("admin-secret"), query)
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{query}");
    }
    // The audit tail needs the token too.
    assert_eq!(admin.get_json("/v1/audit").await.0, 401);
}

#[tokio::test]
async fn the_reflection_guard_masks_echoed_credentials() {
    let e = env(&["--reflection-guard=true"]).await;
    let sealed = e.seal(&inject(TOKEN, "pw"));
    let Reply {
        status,
        headers,
        body,
    } = proxied(&e, "/reflect", &sealed, "Bearer pw").await;
    assert_eq!(status, 200);
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
    let echo = Echo::parse(&proxied(&e, "/", &sealed, "Bearer pw").await.body);
    let auth = echo.header("authorization").unwrap();
    assert!(
        auth.starts_with("Bearer [REDACTED]") && auth.len() == "Bearer ".len() + TOKEN.len(),
        "{auth}"
    );
    // Counted in the audit entry.
    let admin = e.admin();
    let entries = admin.audit("", 2).await;
    let reflect = entries.iter().find(|x| x["path"] == "/reflect").unwrap();
    assert!(reflect["reflections"].as_u64().unwrap() >= 5, "{reflect}");
    let text = admin.metrics().await;
    assert!(
        text.contains("tokenizer_reflections_redacted_total"),
        "{text}"
    );
    assert!(
        !text.contains("tokenizer_reflections_redacted_total 0"),
        "{text}"
    );
}

#[tokio::test]
async fn the_sidecar_has_an_admin_listener_too() {
    let e = Env::builder()
        .names(&["api.test", "pass.test"])
        .start()
        .await;
    let side = SideProxy::in_front_of(&e, &["--admin-address", "127.0.0.1:0"]).await;
    let resp = side.get("/x").await;
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    let (ok, _, err) = curl(&[
        "-x",
        &side.proxy_url(),
        "--cacert",
        &e.ca.pem_file(),
        "https://pass.test/p",
    ])
    .await;
    assert!(ok, "{err}");
    let admin = Admin::new(side.admin_addr.unwrap());
    let entries = admin.audit("", 2).await;
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
    let text = admin.metrics().await;
    assert!(text.contains("tokenizer_cert_cache_hits_total"), "{text}");
    assert!(text.contains(r#"role="sideproxy""#), "{text}");
}
