//! Shared tables stay bounded whatever callers seal, and a full table makes room in the
//! pool of whoever filled it: a flood of caller-sealed secrets neither grows the
//! rate-limit counters, the unseal cache, the audit ring or its lines, nor the sidecar's
//! certificate cache past their bounds, nor locks out a new limited secret, nor changes
//! what a real secret's limits decide. (The fleet's counters in Redis: `fleet_failures`.)

use serde_json::json;

use crate::support::Env;
use crate::support::attack::{call, caller_sealed, caller_token, env, far, real};
use crate::support::sidecar::SideProxy;

/// First outside attack (issue 13), finding 5: tables a client can grow. The rate-limit
/// counters, the unseal cache and the audit ring stay within their bounds, and room is
/// made in the flood's own pool.
#[tokio::test]
async fn client_grown_tables_stay_bounded() {
    let e = env(&["--rate-limit-keys", "20", "--unseal-cache-bytes", "4MiB"]).await;
    let long_id = "i".repeat(6000);
    // A real secret counted before the flood.
    let real_daily = e.seal(&real(json!({"rate_limit": "1/day"})));
    let got = call(&e, "GET", "http://api.test/", &[&real_daily], &[], "").await;
    assert_eq!(got.status, 200);
    let mut first = String::new();
    for i in 0..30 {
        let s = caller_sealed(
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
        let s = caller_sealed(
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

/// Second outside attack (issue 22), finding 2: a full table makes room (the fleet's:
/// `fleet_failures`).
#[tokio::test]
async fn a_flood_of_caller_secrets_never_locks_out_a_new_limited_secret() {
    let e = env(&["--rate-limit-keys", "60"]).await;
    let url = "http://api.test/";
    // A real one-use secret, used before the flood.
    let real_once = e.seal(&real(json!({"max_requests": 1})));
    assert_eq!(
        call(&e, "GET", url, &[&real_once], &[], "").await.status,
        200
    );
    // 30 requests of 10 self-sealed secrets, each counted for a billion seconds.
    for r in 0..30 {
        let flood: Vec<String> = (0..10)
            .map(|i| {
                e.seal(&caller_token(
                    &format!("flood-{r}-{i}-token"),
                    json!({"max_requests": 1, "expires_at": far()}),
                ))
            })
            .collect();
        let flood: Vec<&str> = flood.iter().map(String::as_str).collect();
        let got = call(&e, "GET", url, &flood, &[], "").await;
        assert_eq!(got.status, 200, "round {r}: {}", got.body);
    }
    assert!(e.tk.metric("tokenizer_rate_limit_keys").await <= 60.0);
    assert!(e.tk.metric("tokenizer_rate_limit_evictions").await >= 240.0);
    // The real secret's use is still counted: the flood made room in its own pool.
    let got = call(&e, "GET", url, &[&real_once], &[], "").await;
    assert_eq!(got.status, 429, "{}", got.body);
    assert!(got.body.contains("max_requests"), "{}", got.body);
    // New limited secrets, real or anonymous, are admitted and counted.
    let fresh = e.seal(&real(json!({"max_requests": 2})));
    let statuses: Vec<u16> = futures_statuses(&e, &fresh, 3).await;
    assert_eq!(statuses, [200, 200, 429]);
    let anon = e.seal(&caller_token(
        "anon-daily-token",
        json!({"rate_limit": "1/day"}),
    ));
    assert_eq!(call(&e, "GET", url, &[&anon], &[], "").await.status, 200);
    let got = call(&e, "GET", url, &[&anon], &[], "").await;
    assert_eq!(got.status, 429);
    let retry: u64 = got.header("retry-after").unwrap().parse().unwrap();
    assert!(retry <= 86_400, "Retry-After {retry}");
}

/// `n` requests in a row with `sealed`; their statuses.
async fn futures_statuses(e: &Env, sealed: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            call(e, "GET", "http://api.test/", &[sealed], &[], "")
                .await
                .status,
        );
    }
    out
}

/// Second outside attack (issue 22), the class (shared state a request can create, size
/// or name): the unseal cache.
#[tokio::test]
async fn a_real_secret_decides_the_same_after_its_cache_entry_was_pushed_out() {
    // The unseal cache: a flood of large caller secrets pushes the real one out; opening it
    // again costs a decryption, and changes no decision: its limit still counts.
    let e = env(&["--unseal-cache-bytes", "256KiB", "--unseal-cache-size", "8"]).await;
    let capped = e.seal(&real(json!({"max_requests": 2})));
    assert_eq!(
        call(&e, "GET", "http://api.test/", &[&capped], &[], "")
            .await
            .status,
        200
    );
    for i in 0..40 {
        let big = e.seal(&caller_token(
            &format!("{i:03}{}", "b".repeat(2000)),
            json!({}),
        ));
        assert_eq!(
            call(&e, "GET", "http://api.test/", &[&big], &[], "")
                .await
                .status,
            200
        );
        assert!(e.tk.metric("tokenizer_unseal_cache_bytes").await <= 256.0 * 1024.0);
    }
    assert!(e.tk.metric("tokenizer_unseal_cache_entries").await <= 8.0);
    assert_eq!(
        call(&e, "GET", "http://api.test/", &[&capped], &[], "")
            .await
            .status,
        200
    );
    assert_eq!(
        call(&e, "GET", "http://api.test/", &[&capped], &[], "")
            .await
            .status,
        429
    );
}

/// Second outside attack (issue 22), the class: audit lines.
#[tokio::test]
async fn audit_lines_stay_bounded_whatever_a_caller_seals() {
    let e = env(&[]).await;
    let long_id = "i".repeat(5000);
    let many: Vec<String> = (0..40)
        .map(|i| {
            e.seal(&caller_token(
                &format!("t{i}-token"),
                json!({"id": format!("{long_id}{i}")}),
            ))
        })
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let path = format!("/{}", "p".repeat(6000));
    let got = call(&e, "GET", &format!("http://api.test{path}"), &many, &[], "").await;
    assert_eq!(got.status, 200, "{}", got.body);
    let entries = e.admin().audit("", 1).await;
    let last = entries.last().expect("an entry");
    assert!(last.to_string().len() <= ::tokenizer::audit::MAX_ENTRY_BYTES);
    assert!(!last.to_string().contains(&long_id));
}

/// Second outside attack (issue 22), the class: the sidecar's certificate cache.
#[tokio::test]
async fn the_sidecar_forges_certificates_only_for_its_targets() {
    let e = Env::builder().names(&["api.test"]).start().await;
    let side = SideProxy::in_front_of(&e, &["--admin-address", "127.0.0.1:0"]).await;
    let admin = crate::support::admin::Admin::new(side.admin_addr.unwrap());
    let before = admin.metrics().await;
    for i in 0..20 {
        let host = format!("flood-{i}.example");
        let resolve = format!("{host}:{}:127.0.0.1", side.addr.port());
        let url = side.url(&host, "/");
        let (ok, _, _) = crate::support::curl(&["--resolve", &resolve, "-k", &url]).await;
        assert!(!ok, "{host} got a certificate");
    }
    let after = admin.metrics().await;
    let misses = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("tokenizer_cert_cache_misses_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(
        misses(&after),
        misses(&before),
        "certificates forged for strangers"
    );
    assert_eq!(side.get("/").await.status(), 200);
}
