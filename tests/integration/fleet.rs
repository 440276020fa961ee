//! The fleet on Redis (issue 17): three real `tokenizer serve` processes share one real
//! `redis-server` (started here, with a password); limits hold across them, a
//! revocation on one (or by the CLI) reaches all within a second, `REDIS_FAILURE`
//! decides what happens while Redis is down and both modes recover, and nothing secret
//! is ever written to Redis.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use tokenizer::secret::OpenKey;

use crate::support::binary::{self, Server};
use crate::support::ca::TestCa;
use crate::support::fleet::{ADMIN_TOKEN, AUTH, Fleet, Redis, admin_get, call, secret};

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limit_holds_across_three_instances() {
    let redis = Redis::start();
    let fleet = Fleet::new().await;
    let url = redis.url();
    let env = [("REDIS_URL", url.as_str())];
    let servers: Vec<Server> = (0..3).map(|_| fleet.instance(&env).0).collect();
    let sealed = fleet.seal(&secret("tok-rate-fleet", json!({"rate_limit": "10/min"})));
    let mut admitted = 0;
    let mut limited = 0;
    for i in 0..30 {
        let (status, body, retry) = call(&servers[i % 3], &fleet.url(), &sealed).await;
        match status {
            200 => admitted += 1,
            429 => {
                limited += 1;
                let secs: u64 = retry.expect("429 without Retry-After").parse().unwrap();
                assert!((1..=60).contains(&secs), "Retry-After {secs}: {body}");
            }
            other => panic!("status {other}: {body}"),
        }
    }
    assert_eq!(
        (admitted, limited),
        (10, 20),
        "three instances sharing Redis admit the limit once"
    );
    // The control: without Redis each instance counts alone (10 each).
    let alone: Vec<Server> = (0..3).map(|_| fleet.instance(&[]).0).collect();
    let sealed = fleet.seal(&secret("tok-rate-alone", json!({"rate_limit": "10/min"})));
    let mut admitted = 0;
    for i in 0..30 {
        if call(&alone[i % 3], &fleet.url(), &sealed).await.0 == 200 {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 30, "per-instance limits without Redis");
}

#[tokio::test(flavor = "multi_thread")]
async fn max_requests_is_a_lifetime_cap_across_instances() {
    let redis = Redis::start();
    let fleet = Fleet::new().await;
    let url = redis.url();
    let env = [("REDIS_URL", url.as_str())];
    let servers: Vec<Server> = (0..3).map(|_| fleet.instance(&env).0).collect();
    let sealed = fleet.seal(&secret(
        "tok-max",
        json!({"max_requests": 5, "id": "capped"}),
    ));
    let mut statuses = Vec::new();
    for i in 0..9 {
        let (status, body, retry) = call(&servers[i % 3], &fleet.url(), &sealed).await;
        if status == 429 {
            assert!(body.contains("max_requests"), "{body}");
            assert_eq!(retry, None, "a used-up cap has nothing to wait for");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429, 429]);
    // Without Redis the cap is per instance (the README says so).
    let alone: Vec<Server> = (0..2).map(|_| fleet.instance(&[]).0).collect();
    let sealed = fleet.seal(&secret("tok-max-alone", json!({"max_requests": 2})));
    let mut admitted = 0;
    for i in 0..6 {
        if call(&alone[i % 2], &fleet.url(), &sealed).await.0 == 200 {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_reaches_every_instance_within_a_second() {
    let redis = Redis::start();
    let fleet = Fleet::new().await;
    let url = redis.url();
    let env = [("REDIS_URL", url.as_str())];
    let instances: Vec<(Server, SocketAddr)> = (0..3).map(|_| fleet.instance(&env)).collect();
    let by_id = fleet.seal(&secret("tok-rev-id", json!({"id": "agent-7"})));
    let by_sealed = fleet.seal(&secret("tok-rev-sealed", json!({})));
    for (server, _) in &instances {
        assert_eq!(call(server, &fleet.url(), &by_id).await.0, 200);
        assert_eq!(call(server, &fleet.url(), &by_sealed).await.0, 200);
    }
    let admin = instances[0].1;
    let http = reqwest::Client::new();
    // The admin route needs the admin token.
    let resp = http
        .post(format!("http://{admin}/v1/revoke"))
        .json(&json!({"id": "agent-7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http
        .post(format!("http://{admin}/v1/revoke"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"id": "agent-7", "digest": "ab"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "two entries at once are refused");

    let resp = http
        .post(format!("http://{admin}/v1/revoke"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"id": "agent-7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let servers: Vec<&Server> = instances.iter().map(|(s, _)| s).collect();
    let took = until_all_refuse(&servers, &fleet.url(), &by_id).await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // The other secret is untouched.
    assert_eq!(call(servers[2], &fleet.url(), &by_sealed).await.0, 200);

    // The CLI, by sealed text on standard input.
    let mut cmd = binary::command();
    cmd.args(["revoke", "--sealed", "-"]).env("REDIS_URL", &url);
    let out = binary::run_cmd(cmd, by_sealed.as_bytes()).ok();
    assert!(out.stdout.starts_with("revoked "), "{}", out.stdout);
    let took = until_all_refuse(&servers, &fleet.url(), &by_sealed).await;
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // An instance that starts later loads the set.
    let (late, _) = fleet.instance(&env);
    assert!(
        call(&late, &fleet.url(), &by_id)
            .await
            .1
            .contains("revoked")
    );
    let (status, body) = admin_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("tokenizer_redis_up 1"), "{body}");
    assert!(body.contains("tokenizer_fleet_revocations 2"), "{body}");
}

/// Poll every server until each refuses `sealed` as revoked; how long that took.
async fn until_all_refuse(servers: &[&Server], url: &str, sealed: &str) -> Duration {
    let started = Instant::now();
    let mut pending: Vec<&Server> = servers.to_vec();
    while !pending.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{} instance(s) still accept a revoked secret after 5s",
            pending.len()
        );
        let mut still = Vec::new();
        for s in pending {
            let (status, body, _) = call(s, url, sealed).await;
            if !(status == 400 && body.contains("revoked")) {
                assert_eq!(status, 200, "{body}");
                still.push(s);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_needs_an_admin_token_and_redis() {
    let fleet = Fleet::new().await;
    // No REDIS_URL: 409, the file is the way.
    let (_server, admin) = fleet.instance(&[]);
    let resp = reqwest::Client::new()
        .post(format!("http://{admin}/v1/revoke"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"id": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    // The CLI without REDIS_URL: a clear error, exit 2.
    let out = binary::run(&["revoke", "--id", "x"]);
    assert_eq!(out.code(), Some(2));
    assert!(out.stderr.contains("REDIS_URL"), "{}", out.stderr);
}

/// Wait until `check` holds (polling every 50 ms, at most `within`).
async fn eventually(within: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_failure_open_and_closed_and_recovery() {
    let mut redis = Redis::start();
    let fleet = Fleet::new().await;
    let url = redis.url();
    let (open, open_admin) = fleet.instance(&[("REDIS_URL", &url), ("REDIS_FAILURE", "open")]);
    let (closed, closed_admin) =
        fleet.instance(&[("REDIS_URL", &url), ("REDIS_FAILURE", "closed")]);
    let limited = fleet.seal(&secret("tok-fail", json!({"rate_limit": "3/min"})));
    let plain = fleet.seal(&secret("tok-fail-plain", json!({"id": "plain"})));
    let revoked = fleet.seal(&secret("tok-fail-revoked", json!({"id": "gone"})));
    for s in [&open, &closed] {
        assert_eq!(call(s, &fleet.url(), &plain).await.0, 200);
    }
    let out = binary::run_cmd(
        {
            let mut c = binary::command();
            c.args(["revoke", "--id", "gone"]).env("REDIS_URL", &url);
            c
        },
        b"",
    )
    .ok();
    assert!(out.stdout.contains("revoked gone"));
    let servers = [&open, &closed];
    until_all_refuse(&servers, &fleet.url(), &revoked).await;
    // Two of the fleet's three requests, taken before Redis goes.
    assert_eq!(call(&open, &fleet.url(), &limited).await.0, 200);
    assert_eq!(call(&closed, &fleet.url(), &limited).await.0, 200);

    redis.kill();
    eventually(
        Duration::from_secs(5),
        "both instances see redis down",
        async || {
            admin_get(open_admin, "/readyz")
                .await
                .1
                .contains("redis: down")
                && admin_get(closed_admin, "/readyz")
                    .await
                    .1
                    .contains("redis: down")
        },
    )
    .await;
    // open: ready, counting alone (a fresh 3/min), the last revocations still in force.
    let (status, body) = admin_get(open_admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let statuses: Vec<u16> = statuses(&open, &fleet.url(), &limited, 4).await;
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "open: per-instance counting"
    );
    assert!(
        call(&open, &fleet.url(), &revoked)
            .await
            .1
            .contains("revoked")
    );
    assert_eq!(call(&open, &fleet.url(), &plain).await.0, 200);
    // closed: unready, and every secret refused with 503 + Retry-After.
    let (status, body) = admin_get(closed_admin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    for sealed in [&limited, &plain] {
        let (status, body, retry) = call(&closed, &fleet.url(), sealed).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(retry.as_deref(), Some("1"));
    }
    let (_, metrics) = admin_get(open_admin, "/metrics").await;
    assert!(metrics.contains("tokenizer_redis_up 0"), "{metrics}");
    // Logged lines are written in batches (at least every 100 ms).
    eventually(
        Duration::from_secs(2),
        "the lost Redis is logged",
        async || open.stderr_text().contains("fleet view (Redis) lost"),
    )
    .await;

    // Redis returns (empty: it kept nothing): both recover.
    redis.restart();
    eventually(
        Duration::from_secs(10),
        "both instances see redis again and the closed one serves",
        async || {
            call(&closed, &fleet.url(), &plain).await.0 == 200
                && admin_get(open_admin, "/readyz")
                    .await
                    .1
                    .contains("redis: up")
        },
    )
    .await;
    let (status, body) = admin_get(closed_admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("redis: up"), "{body}");
    eventually(
        Duration::from_secs(2),
        "the returned Redis is logged",
        async || closed.stderr_text().contains("fleet view (Redis) up"),
    )
    .await;
    // The fleet counts again, shared: 3 more across both, then 429.
    let mut admitted = 0;
    for i in 0..6 {
        let s = if i % 2 == 0 { &open } else { &closed };
        if call(s, &fleet.url(), &limited).await.0 == 200 {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3, "fleet counting after recovery");
}

async fn statuses(server: &Server, url: &str, sealed: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(call(server, url, sealed).await.0);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_secret_is_written_to_redis() {
    let redis = Redis::start();
    let fleet = Fleet::new().await;
    let url = redis.url();
    let env = [("REDIS_URL", url.as_str())];
    let (a, admin) = fleet.instance(&env);
    let (b, _) = fleet.instance(&env);
    let token = "tok-never-in-redis-3a91f";
    let sealed = fleet.seal(&secret(
        token,
        json!({"rate_limit": "100/min", "max_requests": 50, "id": "visible-id"}),
    ));
    let other = fleet.seal(&secret("tok-other-never-7d2", json!({"max_requests": 3})));
    for s in [&a, &b] {
        assert_eq!(call(s, &fleet.url(), &sealed).await.0, 200);
        assert_eq!(call(s, &fleet.url(), &other).await.0, 200);
    }
    let resp = reqwest::Client::new()
        .post(format!("http://{admin}/v1/revoke"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"sealed": other}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let dump = redis.dump();
    // What the fleet wrote: counters, their registry and the revocations.
    for key in [
        "tokenizer:counters",
        "tokenizer:revoked",
        "tokenizer:rl:",
        "tokenizer:max:",
    ] {
        assert!(dump.contains(key), "no {key} in Redis:\n{dump}");
    }
    let sealed_b64 = [sealed.as_str(), other.as_str()];
    for needle in [
        token,
        "tok-other-never-7d2",
        AUTH,
        &redis.password,
        &fleet.open_hex,
        ADMIN_TOKEN,
    ]
    .into_iter()
    .chain(sealed_b64)
    {
        assert!(!dump.contains(needle), "Redis holds a secret: {needle}");
    }
    // Not even in part: no 16-character piece of a sealed secret.
    for s in sealed_b64 {
        for i in (0..s.len().saturating_sub(16)).step_by(8) {
            assert!(
                !dump.contains(&s[i..i + 16]),
                "Redis holds part of a sealed secret"
            );
        }
    }
    for s in [&a, &b] {
        let log = s.stderr_text();
        assert!(
            !log.contains(&redis.password),
            "the Redis password was logged"
        );
    }
}

#[test]
fn a_bad_redis_url_is_refused_at_start() {
    for (url, want) in [
        ("http://127.0.0.1:6379", "redis://"),
        ("redis://[bad", "not a valid Redis URL"),
    ] {
        let out = binary::run(&[
            "serve",
            "--open-key",
            &OpenKey::generate().to_hex(),
            "--redis-url",
            url,
        ]);
        assert_eq!(out.code(), Some(2), "{url}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{url}: {}", out.stderr);
    }
    let out = binary::run(&[
        "serve",
        "--open-key",
        &OpenKey::generate().to_hex(),
        "--redis-url",
        "redis://:hunter2-pw@127.0.0.1:1",
        "--redis-failure",
        "sometimes",
    ]);
    assert_eq!(out.code(), Some(2));
    assert!(!out.stderr.contains("hunter2-pw"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fleet_holds_at_most_rate_limit_keys_counters() {
    let redis = Redis::start();
    let fleet = Fleet::new().await;
    let url = redis.url();
    let env = [("REDIS_URL", url.as_str()), ("RATE_LIMIT_KEYS", "2")];
    let (a, _) = fleet.instance(&env);
    let (b, _) = fleet.instance(&env);
    let secrets: Vec<String> = (0..3)
        .map(|i| {
            fleet.seal(&secret(
                &format!("tok-cap-{i}"),
                json!({"rate_limit": "1/day"}),
            ))
        })
        .collect();
    assert_eq!(call(&a, &fleet.url(), &secrets[0]).await.0, 200);
    assert_eq!(call(&b, &fleet.url(), &secrets[1]).await.0, 200);
    // Two counters live in the fleet, both in this caller's pool: a third secret makes
    // room there (the least recently used goes) instead of being refused.
    let (status, body, _) = call(&a, &fleet.url(), &secrets[2]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(redis.cli(&["ZCARD", "tokenizer:counters"]).trim(), "2");
    // The counters kept still hold their spent day.
    for s in [&secrets[1], &secrets[2]] {
        let (status, body, _) = call(&b, &fleet.url(), s).await;
        assert_eq!(status, 429, "{body}");
        assert!(body.contains("retry in"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rediss_with_a_private_ca() {
    let ca = TestCa::new();
    let redis = Redis::start_tls(&ca);
    let fleet = Fleet::new().await;
    let url = redis.url();
    assert!(url.starts_with("rediss://"));
    let ca_file = ca.pem_file();
    let env = [
        ("REDIS_URL", url.as_str()),
        ("REDIS_CA_FILE", ca_file.as_str()),
    ];
    let (a, admin) = fleet.instance(&env);
    let (b, _) = fleet.instance(&env);
    let sealed = fleet.seal(&secret("tok-tls", json!({"rate_limit": "3/min"})));
    let mut admitted = 0;
    for i in 0..6 {
        let s = if i % 2 == 0 { &a } else { &b };
        if call(s, &fleet.url(), &sealed).await.0 == 200 {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3, "counted across both over TLS");
    assert!(admin_get(admin, "/readyz").await.1.contains("redis: up"));
    // Without the CA, the server's certificate is not trusted: the fleet view is down
    // once a ping has failed.
    let (c, c_admin) = fleet.instance(&[("REDIS_URL", url.as_str())]);
    let _ = c;
    eventually(
        Duration::from_secs(10),
        "a failed ping counted",
        async || {
            let (_, metrics) = admin_get(c_admin, "/metrics").await;
            metrics
                .lines()
                .find_map(|l| l.strip_prefix("tokenizer_redis_errors "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|n| n >= 1.0)
        },
    )
    .await;
    assert!(
        admin_get(c_admin, "/readyz")
            .await
            .1
            .contains("redis: down")
    );
}
