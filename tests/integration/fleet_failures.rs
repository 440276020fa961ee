//! The fleet (instances sharing limits and revocations through Redis) fails closed where
//! it must: an error answer from Redis is not an outage, so a limited secret is refused
//! (503) rather than counted by one instance alone, even with `REDIS_FAILURE=open`, and a
//! caller's own secret cannot provoke one; the fleet's counters stay bounded and make
//! room in the flooder's pool, across restarts; and a revocation outlives the loss of
//! Redis's data (FLUSHALL, a restart without persistence).

use std::time::Duration;

use serde_json::json;

use crate::support::attack::{caller_token, far};
use crate::support::binary::{self, Server};
use crate::support::fleet::{Fleet, Redis, admin_get, call, call_with, secret};
use crate::support::poll_until;

/// Second outside attack (issue 22), finding 1: a Redis error is not an outage. A caller's
/// secret sent first (a lifetime thousands of years long) cannot leave each instance
/// counting a real secret's uses alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_caller_secret_cannot_make_the_fleet_count_alone() {
    let redis = Redis::start();
    let fleet = Fleet::new().await;
    let url = redis.url();
    // REDIS_FAILURE is left at its default, open.
    let servers: Vec<Server> = (0..3)
        .map(|_| fleet.instance(&[("REDIS_URL", &url)]).0)
        .collect();
    let victim = fleet.seal(&secret("tok-victim-max3", json!({"max_requests": 3})));
    // Put first, with a lifetime thousands of years long.
    let attacker = fleet.seal(&caller_token(
        "attacker-own-token",
        json!({"max_requests": 1_000_000, "expires_at": 100_000_000_000i64}),
    ));
    let mut admitted = 0;
    for i in 0..12 {
        let (status, body, _) =
            call_with(&servers[i % 3], &fleet.url(), &[&attacker, &victim]).await;
        match status {
            200 => admitted += 1,
            429 => assert!(body.contains("max_requests"), "{body}"),
            other => panic!("status {other}: {body}"),
        }
    }
    assert_eq!(admitted, 3, "a 3-use secret was used {admitted} times");
    // The victim alone is used up too, on every instance.
    for s in &servers {
        assert_eq!(call(s, &fleet.url(), &victim).await.0, 429);
    }
}

/// Second outside attack (issue 22), finding 1: an error answer (not an outage) refuses
/// limited secrets with 503 even with `REDIS_FAILURE=open`; the count goes on once fixed.
#[tokio::test(flavor = "multi_thread")]
async fn an_error_answer_from_redis_fails_closed_even_when_open() {
    let redis = Redis::start();
    let fleet = Fleet::new().await;
    let url = redis.url();
    let (server, _) = fleet.instance(&[("REDIS_URL", &url), ("REDIS_FAILURE", "open")]);
    let limited = fleet.seal(&secret("tok-err-limited", json!({"max_requests": 2})));
    let plain = fleet.seal(&secret("tok-err-plain", json!({})));
    assert_eq!(call(&server, &fleet.url(), &limited).await.0, 200);
    // Redis answers the limit script with an error (WRONGTYPE): not an outage.
    assert_eq!(
        redis
            .cli(&["SET", "tokenizer:counters", "not-a-sorted-set"])
            .trim(),
        "OK"
    );
    for _ in 0..3 {
        let (status, body, _) = call(&server, &fleet.url(), &limited).await;
        assert_eq!(status, 503, "{body}");
    }
    // Secrets without limits are untouched; the instance stays ready.
    assert_eq!(call(&server, &fleet.url(), &plain).await.0, 200);
    // Fixed: the fleet's count goes on where it was (one use left, then none).
    redis.cli(&["DEL", "tokenizer:counters"]);
    assert_eq!(call(&server, &fleet.url(), &limited).await.0, 200);
    assert_eq!(call(&server, &fleet.url(), &limited).await.0, 429);
    crate::support::assert_no_panic("serve", &server.stderr_text());
}

/// Second outside attack (issue 22), finding 2: a full table makes room, in the fleet too
/// (the proxy's own table: `shared_tables`).
#[tokio::test(flavor = "multi_thread")]
async fn the_fleet_makes_room_too_and_keeps_it_across_restarts() {
    let redis = Redis::start();
    let fleet = Fleet::new().await;
    let url = redis.url();
    let env = [("REDIS_URL", url.as_str()), ("RATE_LIMIT_KEYS", "30")];
    let (a, _) = fleet.instance(&env);
    let victim = fleet.seal(&secret("tok-fleet-victim", json!({"max_requests": 1})));
    assert_eq!(call(&a, &fleet.url(), &victim).await.0, 200);
    for r in 0..20 {
        let flood: Vec<String> = (0..5)
            .map(|i| {
                fleet.seal(&caller_token(
                    &format!("fleet-flood-{r}-{i}"),
                    json!({"max_requests": 1, "expires_at": far()}),
                ))
            })
            .collect();
        let flood: Vec<&str> = flood.iter().map(String::as_str).collect();
        let (status, body, _) = call_with(&a, &fleet.url(), &flood).await;
        assert_eq!(status, 200, "round {r}: {body}");
    }
    let held: usize = redis
        .cli(&["ZCARD", "tokenizer:counters"])
        .trim()
        .parse()
        .unwrap();
    assert!(held <= 30, "{held} counters in Redis");
    assert_eq!(call(&a, &fleet.url(), &victim).await.0, 429);
    // Another instance, started after the flood: the same view.
    drop(a);
    let (b, b_admin) = fleet.instance(&env);
    assert_eq!(call(&b, &fleet.url(), &victim).await.0, 429);
    let fresh = fleet.seal(&secret("tok-fleet-fresh", json!({"max_requests": 1})));
    assert_eq!(call(&b, &fleet.url(), &fresh).await.0, 200);
    assert_eq!(call(&b, &fleet.url(), &fresh).await.0, 429);
    let daily = fleet.seal(&secret("tok-fleet-daily", json!({"rate_limit": "1/day"})));
    assert_eq!(call(&b, &fleet.url(), &daily).await.0, 200);
    let (status, _, retry) = call(&b, &fleet.url(), &daily).await;
    assert_eq!(status, 429);
    let retry: u64 = retry.unwrap().parse().unwrap();
    assert!(retry <= 86_400, "Retry-After {retry}");
    // Counters in Redis live at most MAX_REQUESTS_RETENTION (90 days), whatever expires_at.
    for key in redis
        .cli(&["--scan", "--pattern", "tokenizer:max:*"])
        .lines()
    {
        let ttl: i64 = redis.cli(&["PTTL", key]).trim().parse().unwrap();
        assert!(ttl > 0 && ttl <= 90 * 86_400_000, "{key}: PTTL {ttl}");
    }
    let (_, metrics) = admin_get(b_admin, "/metrics").await;
    assert!(
        metrics.contains("tokenizer_rate_limit_evictions"),
        "{metrics}"
    );
}

/// Second outside attack (issue 22), finding 5: revocations survive the loss of Redis's
/// data; the instances that know one write it back.
#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_outlives_a_flushall_and_an_empty_restart() {
    let mut redis = Redis::start();
    let fleet = Fleet::new().await;
    let url = redis.url();
    let env = [("REDIS_URL", url.as_str())];
    let (a, a_admin) = fleet.instance(&env);
    let (b, _) = fleet.instance(&env);
    let revoked = fleet.seal(&secret("tok-revoked-5", json!({"id": "agent-5"})));
    let other = fleet.seal(&secret("tok-kept-5", json!({"id": "agent-6"})));
    let mut cmd = binary::command();
    cmd.args(["revoke", "--id", "agent-5"])
        .env("REDIS_URL", &url);
    assert!(
        binary::run_cmd(cmd, b"")
            .ok()
            .stdout
            .contains("revoked agent-5")
    );
    for s in [&a, &b] {
        until_refused(s, &fleet.url(), &revoked).await;
    }
    for lose in ["FLUSHALL", "restart"] {
        if lose == "FLUSHALL" {
            assert_eq!(redis.cli(&["FLUSHALL"]).trim(), "OK");
        } else {
            redis.restart();
        }
        // The instances that know it write it back…
        let back = poll_until(Duration::from_secs(10), || async {
            redis
                .cli(&["SISMEMBER", "tokenizer:revoked", "agent-5"])
                .trim()
                == "1"
        })
        .await;
        assert!(
            back.is_some(),
            "{lose}: the revocation was not written back"
        );
        // …so an instance started afterwards refuses the secret too.
        let (late, _) = fleet.instance(&env);
        until_refused(&late, &fleet.url(), &revoked).await;
        assert_eq!(call(&late, &fleet.url(), &other).await.0, 200);
        for s in [&a, &b] {
            let (status, body, _) = call(s, &fleet.url(), &revoked).await;
            assert!(
                status == 400 && body.contains("revoked"),
                "{lose}: {status} {body}"
            );
        }
    }
    let noticed = poll_until(Duration::from_secs(10), || async {
        let (_, metrics) = admin_get(a_admin, "/metrics").await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("tokenizer_redis_data_losses "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .is_some_and(|n| n >= 2.0)
    })
    .await;
    assert!(noticed.is_some(), "the data losses were not counted");
    poll_until(Duration::from_secs(3), || async {
        a.stderr_text().contains("lost its data")
    })
    .await
    .expect("the loss is logged");
}

/// Poll `server` until it refuses `sealed` as revoked (within 10 s).
async fn until_refused(server: &Server, url: &str, sealed: &str) {
    let refused = poll_until(Duration::from_secs(10), || async {
        let (status, body, _) = call(server, url, sealed).await;
        status == 400 && body.contains("revoked")
    })
    .await;
    assert!(refused.is_some(), "the revoked secret is still served");
}
