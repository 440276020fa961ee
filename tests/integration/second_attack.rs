//! Regression tests for the second outside attack (issue 22): no caller decides another's
//! fate through its own secrets, its own token keys or its own sockets. The attacker is
//! a compromised sandbox that reaches the proxy and holds the public seal key, so it seals
//! secrets of its own (`no_auth`, any rules) and sends them beside a real one. One test
//! per finding (named after it), then the class: every piece of shared state a request
//! can create, size or name.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::support::attack::{caller_sealed, env};
use crate::support::binary::{self, Server};
use crate::support::ca::TestCa;
use crate::support::fleet::{Fleet, Redis, admin_get, call, call_with, secret};
use crate::support::oidc_issuer::{OidcIssuer, SigningKey, now};
use crate::support::raw::RawConn;
use crate::support::sidecar::SideProxy;
use crate::support::upstream::Echo;
use crate::support::{Env, Reply, bearer, poll_until, with};

/// The real credential the operator sealed.
const REAL: &str = "sk-live-REAL-second-7c1e9a";
/// The caller password the real secret is bound to.
const AUTH: &str = "caller-pw-second-4b2f";

/// The operator's secret: `REAL` into `Authorization`, for callers holding `AUTH`.
fn real(extra: Value) -> Value {
    with(
        json!({"inject_processor": {"token": REAL}, "bearer_auth": bearer(AUTH)}),
        extra,
    )
}

/// A secret anyone can seal: no auth, its own token into `x-caller`, plus `extra`.
fn caller(token: &str, extra: Value) -> Value {
    caller_sealed(
        json!({"inject_processor": {"token": token, "dst": "x-caller"}}),
        extra,
    )
}

/// `method url` with each of `sealed` (in order), `AUTH`, `headers` and `body`.
async fn send(
    e: &Env,
    method: &str,
    url: &str,
    sealed: &[&str],
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let auth = format!("Bearer {AUTH}");
    let mut all = vec![("proxy-authorization", auth.as_str())];
    all.extend_from_slice(headers);
    e.send(method, url, sealed, &all, body.to_owned()).await
}

/// Far in the future: a billion seconds from now.
fn far() -> i64 {
    now() + 1_000_000_000
}

// === 1. a Redis error is not an outage ===

#[tokio::test(flavor = "multi_thread")]
async fn finding_1_a_caller_secret_cannot_make_the_fleet_count_alone() {
    let redis = Redis::start();
    let fleet = Fleet::new().await;
    let url = redis.url();
    // REDIS_FAILURE is left at its default, open.
    let servers: Vec<Server> = (0..3)
        .map(|_| fleet.instance(&[("REDIS_URL", &url)]).0)
        .collect();
    let victim = fleet.seal(&secret("tok-victim-max3", json!({"max_requests": 3})));
    // Put first, with a lifetime thousands of years long.
    let attacker = fleet.seal(&caller(
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

#[tokio::test(flavor = "multi_thread")]
async fn finding_1_an_error_answer_from_redis_fails_closed_even_when_open() {
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

// === 2. a full table makes room ===

#[tokio::test]
async fn finding_2_a_flood_of_caller_secrets_never_locks_out_a_new_limited_secret() {
    let e = env(&["--rate-limit-keys", "60"]).await;
    let url = "http://api.test/";
    // A real one-use secret, used before the flood.
    let real_once = e.seal(&real(json!({"max_requests": 1})));
    assert_eq!(
        send(&e, "GET", url, &[&real_once], &[], "").await.status,
        200
    );
    // 30 requests of 10 self-sealed secrets, each counted for a billion seconds.
    for r in 0..30 {
        let flood: Vec<String> = (0..10)
            .map(|i| {
                e.seal(&caller(
                    &format!("flood-{r}-{i}-token"),
                    json!({"max_requests": 1, "expires_at": far()}),
                ))
            })
            .collect();
        let flood: Vec<&str> = flood.iter().map(String::as_str).collect();
        let got = send(&e, "GET", url, &flood, &[], "").await;
        assert_eq!(got.status, 200, "round {r}: {}", got.body);
    }
    assert!(e.tk.metric("tokenizer_rate_limit_keys").await <= 60.0);
    assert!(e.tk.metric("tokenizer_rate_limit_evictions").await >= 240.0);
    // The real secret's use is still counted: the flood made room in its own pool.
    let got = send(&e, "GET", url, &[&real_once], &[], "").await;
    assert_eq!(got.status, 429, "{}", got.body);
    assert!(got.body.contains("max_requests"), "{}", got.body);
    // New limited secrets, real or anonymous, are admitted and counted.
    let fresh = e.seal(&real(json!({"max_requests": 2})));
    let statuses: Vec<u16> = futures_statuses(&e, &fresh, 3).await;
    assert_eq!(statuses, [200, 200, 429]);
    let anon = e.seal(&caller("anon-daily-token", json!({"rate_limit": "1/day"})));
    assert_eq!(send(&e, "GET", url, &[&anon], &[], "").await.status, 200);
    let got = send(&e, "GET", url, &[&anon], &[], "").await;
    assert_eq!(got.status, 429);
    let retry: u64 = got.header("retry-after").unwrap().parse().unwrap();
    assert!(retry <= 86_400, "Retry-After {retry}");
}

/// `n` requests in a row with `sealed`; their statuses.
async fn futures_statuses(e: &Env, sealed: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            send(e, "GET", "http://api.test/", &[sealed], &[], "")
                .await
                .status,
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_2_the_fleet_makes_room_too_and_keeps_it_across_restarts() {
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
                fleet.seal(&caller(
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

// === 3. derived tokens stay with their tenant ===

#[tokio::test]
async fn finding_3_a_token_from_a_shared_hosting_domain_never_reaches_its_neighbours() {
    let e = Env::builder()
        .names(&[
            "auth-myco.fly.dev",
            "api.auth-myco.fly.dev",
            "evil-attacker.fly.dev",
        ])
        .start()
        .await;
    let exchange = e.seal(&json!({
        "client_credentials_processor": {
            "client_id": "myco", "client_secret": "cc-secret-myco-1",
            "token_url": "https://auth-myco.fly.dev/token/cc"},
        "bearer_auth": bearer(AUTH),
    }));
    let got = send(
        &e,
        "POST",
        "http://auth-myco.fly.dev/token/cc",
        &[&exchange],
        &[],
        "",
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let doc: Value = serde_json::from_str(&got.body).unwrap();
    let token = doc["sealed_token"].as_str().unwrap().to_owned();
    let got = send(
        &e,
        "GET",
        "http://evil-attacker.fly.dev/",
        &[&token],
        &[],
        "",
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert!(got.body.contains("secret not valid for"), "{}", got.body);
    let got = send(
        &e,
        "GET",
        "http://api.auth-myco.fly.dev/",
        &[&token],
        &[],
        "",
    )
    .await;
    let echo = got.echo();
    assert_eq!(echo.header_all("authorization").len(), 1);
}

// === 4. method overrides in the body ===

#[tokio::test]
async fn finding_4_a_method_override_in_a_post_body_is_refused() {
    let e = env(&[]).await;
    let url = "http://api.test/v1/items";
    let ruled = e.seal(&real(json!({"allowed_methods": ["GET", "POST"]})));
    let companion = e.seal(&caller("companion-token-1", json!({})));
    let before = e.upstream.seen().len();
    let multipart =
        "--XyZ\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--XyZ--\r\n";
    for (content_type, body) in [
        (
            Some("application/x-www-form-urlencoded"),
            "title=x&_method=DELETE",
        ),
        (
            Some("application/x-www-form-urlencoded"),
            "title=x;%5Fmethod=DELETE",
        ),
        (None, "_method=DELETE"),
        (Some("multipart/form-data; boundary=XyZ"), multipart),
        (
            Some("application/json"),
            r#"{"title":"x","\u005fmethod":"DELETE"}"#,
        ),
        (Some("application/json"), "{not json"),
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|c| ("content-type", c))
            .into_iter()
            .collect();
        let got = send(&e, "POST", url, &[&companion, &ruled], &headers, body).await;
        assert_eq!(got.status, 400, "{content_type:?} {body}: {}", got.body);
        assert!(!got.body.contains(REAL));
    }
    assert_eq!(
        e.upstream.seen().len(),
        before,
        "a refused request reached the upstream"
    );
    // A clean form goes through, byte for byte, with the credential.
    let form = "title=x&method=y&_methodical=1";
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    let got = send(&e, "POST", url, &[&companion, &ruled], &headers, form).await;
    let echo = got.echo();
    assert_eq!(echo.body(), form);
    assert!(
        echo.header_all("authorization")
            .iter()
            .any(|a| a.contains("[REDACTED]") || a.contains(REAL))
    );
    // Without method rules the body is not read for overrides.
    let free = e.seal(&real(json!({})));
    let got = send(&e, "POST", url, &[&free], &headers, "_method=DELETE").await;
    assert_eq!(got.status, 200, "{}", got.body);
}

// === 5. revocations survive the loss of Redis's data ===

#[tokio::test(flavor = "multi_thread")]
async fn finding_5_a_revocation_outlives_a_flushall_and_an_empty_restart() {
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

// === 6. an encoded ..; ===

#[tokio::test]
async fn finding_6_an_encoded_dot_segment_parameter_is_refused() {
    let e = env(&[]).await;
    let ruled = e.seal(&real(json!({"allowed_paths": ["/v1/**"]})));
    let companion = e.seal(&caller("companion-token-6", json!({})));
    for path in [
        "/v1/..%3B/admin",
        "/v1/..%3b/admin",
        "/v1/%2e%2e%3b/admin",
        "/v1/.%3B/admin",
    ] {
        let got = send(
            &e,
            "GET",
            &format!("http://api.test{path}"),
            &[&companion, &ruled],
            &[],
            "",
        )
        .await;
        assert_eq!(got.status, 400, "{path}: {}", got.body);
        assert!(
            got.body.contains("parameter on a dot segment"),
            "{path}: {}",
            got.body
        );
    }
    let got = send(&e, "GET", "http://api.test/v1/a%3Bb", &[&ruled], &[], "").await;
    assert_eq!(got.status, 200, "{}", got.body);
}

// === 7. short credentials ===

#[test]
fn finding_7_sealing_a_credential_the_guard_cannot_mask_warns() {
    let key = ::tokenizer::secret::OpenKey::generate();
    let out = binary::run(&[
        "seal",
        "--seal-key",
        &key.seal_key().to_hex(),
        "--json",
        &json!({"inject_processor": {"token": "abc123"}, "allowed_hosts": ["api.test"],
                "bearer_auth": bearer(AUTH)})
        .to_string(),
    ]);
    assert!(
        out.stderr.contains("shorter than 8 bytes"),
        "{}",
        out.stderr
    );
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md")).unwrap();
    assert!(docs.contains("shorter credential is **not** masked"));
}

// === 8 and 12. OIDC ===

/// The proxy with `issuer` allowed (refresh interval 2 s), an admin listener.
async fn oidc_env(ca: TestCa, issuer: &OidcIssuer) -> Env {
    Env::builder()
        .ca(ca)
        .names(&["api.test"])
        .pins(&[&issuer.pin()])
        .flags(&[
            "--oidc-issuers",
            &issuer.url,
            "--oidc-refresh-interval",
            "2s",
        ])
        .admin()
        .start()
        .await
}

fn oidc_secret(issuer: &str) -> Value {
    json!({
        "inject_processor": {"token": REAL},
        "oidc_auth": {"issuer": issuer, "audience": "tokenizer", "claims": {"repository": "acme/app"}},
    })
}

fn oidc_claims(iss: &str, jti: &str) -> Value {
    let now = now();
    json!({"iss": iss, "aud": "tokenizer", "sub": "repo:acme/app", "repository": "acme/app",
           "jti": jti, "iat": now, "nbf": now - 5, "exp": now + 300})
}

async fn oidc_call(e: &Env, sealed: &str, jwt: &str) -> Reply {
    e.get(
        "/v1/x",
        &[sealed],
        &[("proxy-authorization", &format!("Bearer {jwt}"))],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_8_an_unknown_kid_stalls_nobody_whose_key_is_known() {
    let ca = TestCa::new();
    let key = SigningKey::es256("known-1");
    let issuer = OidcIssuer::start(&ca, "issuer.test", &[&key]).await;
    let e = Arc::new(oidc_env(ca, &issuer).await);
    let sealed = e.seal(&oidc_secret(&issuer.url));
    let first = key.sign(&oidc_claims(&issuer.url, "first"));
    assert_eq!(oidc_call(&e, &sealed, &first).await.status, 200);
    // Past the refresh interval, the issuer turns slow, and a made-up kid asks for keys.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    issuer.set_stall(Duration::from_secs(4));
    let fetches = issuer.fetches();
    let attacker = SigningKey::es256("attacker");
    let made_up = attacker.sign_as("no-such-kid", &oidc_claims(&issuer.url, "evil"));
    let stalled = {
        let (e, sealed) = (e.clone(), sealed.clone());
        tokio::spawn(async move { oidc_call(&e, &sealed, &made_up).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A new token (not in the cache of verified tokens) with a known kid: at once.
    let started = Instant::now();
    let fresh = key.sign(&oidc_claims(&issuer.url, "fresh"));
    assert_eq!(oidc_call(&e, &sealed, &fresh).await.status, 200);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "waited {took:?} behind another's fetch"
    );
    let refused = stalled.await.unwrap();
    assert_eq!(refused.status, 407, "{}", refused.body);
    assert!(
        refused.body.contains("unknown signing key"),
        "{}",
        refused.body
    );
    assert!(
        issuer.fetches() > fetches,
        "the made-up kid fetched the keys"
    );
    // The fetch brought the same keys: the verified token stays cached (no new check).
    issuer.set_stall(Duration::ZERO);
    let hits =
        e.tk.metric("tokenizer_oidc_verified_cache_hits_total")
            .await;
    assert_eq!(oidc_call(&e, &sealed, &first).await.status, 200);
    let after =
        e.tk.metric("tokenizer_oidc_verified_cache_hits_total")
            .await;
    assert_eq!(
        after,
        hits + 1.0,
        "an identical key set invalidated the cache"
    );
    // More made-up kids fetch at most once per interval, and wait for nothing more.
    let fetches = issuer.fetches();
    let started = Instant::now();
    for i in 0..5 {
        let jwt = attacker.sign_as(&format!("kid-{i}"), &oidc_claims(&issuer.url, "x"));
        assert_eq!(oidc_call(&e, &sealed, &jwt).await.status, 407);
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        issuer.fetches() <= fetches + 1,
        "{} fetches",
        issuer.fetches() - fetches
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_12_a_string_nbf_is_refused_and_a_key_after_many_is_found() {
    let ca = TestCa::new();
    let key = SigningKey::es256("real-after-junk");
    let issuer = OidcIssuer::start(&ca, "issuer.test", &[&key]).await;
    // 100 usable keys of no use to anyone, then the real one.
    let mut jwks: Vec<Value> = (0..100)
        .map(|i| SigningKey::es256(&format!("junk-{i}")).jwk)
        .collect();
    jwks.push(key.jwk.clone());
    issuer.set_jwks(jwks);
    let e = oidc_env(ca, &issuer).await;
    let sealed = e.seal(&oidc_secret(&issuer.url));
    let ok = key.sign(&oidc_claims(&issuer.url, "ok"));
    assert_eq!(oidc_call(&e, &sealed, &ok).await.status, 200);
    for (name, value, why) in [
        (
            "nbf",
            json!((now() + 3600).to_string()),
            "nbf is not a number",
        ),
        ("nbf", json!(now() as f64 + 3600.5), "not yet valid"),
        ("iat", json!("yesterday"), "iat is not a number"),
    ] {
        let mut claims = oidc_claims(&issuer.url, name);
        claims[name] = value;
        let got = oidc_call(&e, &sealed, &key.sign(&claims)).await;
        assert_eq!(got.status, 407, "{name}: {}", got.body);
        assert!(got.body.contains(why), "{name}: {}", got.body);
    }
}

// === 9. an mTLS identity ends with its certificate ===

/// A rustls client presenting `cert` (PEM cert, key), trusting `ca`, keeping sessions
/// for resumption.
fn mtls_client(ca: &TestCa, cert: &(String, String)) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der.clone()).unwrap();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.0.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(cert.1.as_bytes()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(tokenizer::upstream::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

/// One connection to the TLS listener: whether it resumed a session, and a sender.
async fn mtls_connect(
    config: &Arc<rustls::ClientConfig>,
    listener: SocketAddr,
) -> Option<(bool, hyper::client::conn::http1::SendRequest<String>)> {
    let tcp = tokio::net::TcpStream::connect(listener).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .ok()?;
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some((resumed, sender))
}

/// `GET url` in absolute form with `sealed`; the status (None: the connection failed).
async fn mtls_get(
    sender: &mut hyper::client::conn::http1::SendRequest<String>,
    url: &str,
    sealed: &str,
) -> Option<u16> {
    let req = http::Request::get(url)
        .header(
            "host",
            url.trim_start_matches("http://").split('/').next().unwrap(),
        )
        .header("proxy-tokenizer", sealed)
        .body(String::new())
        .unwrap();
    sender.ready().await.ok()?;
    let resp = sender.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Some(status)
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_9_an_expired_client_certificate_is_refused_on_kept_and_resumed_connections() {
    let setup = crate::mtls::Setup::start().await;
    let (ca, client_ca) = (&setup.ca, &setup.client_ca);
    let listener = setup.server.tls.expect("the TLS listener");
    let agent = "spiffe://example.org/ns/agents/short-lived";
    let sealed =
        setup.seal(&json!({"inject_processor": {"token": REAL}, "mtls_auth": {"uris": [agent]}}));
    let url = format!("http://127.0.0.1:{}/v1/thing", setup.upstream.port());
    // A certificate that expires in 4 seconds.
    let expiry = std::time::SystemTime::now() + Duration::from_secs(4);
    let short = client_ca.client_leaf_pem_until(&[agent], &[], Some(expiry));
    let config = mtls_client(ca, &short);
    let (resumed, mut kept) = mtls_connect(&config, listener)
        .await
        .expect("a full handshake");
    assert!(!resumed);
    assert_eq!(mtls_get(&mut kept, &url, &sealed).await, Some(200));
    // A second connection resumes the session: served while the certificate is valid.
    let (resumed, mut second) = mtls_connect(&config, listener).await.expect("resumption");
    assert!(resumed, "the client did not resume");
    assert_eq!(mtls_get(&mut second, &url, &sealed).await, Some(200));
    tokio::time::sleep(
        expiry
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
            + Duration::from_millis(1500),
    )
    .await;
    // Expired: the kept connection, a resumed one and a fresh handshake all fail.
    assert_eq!(mtls_get(&mut kept, &url, &sealed).await, Some(407));
    let (resumed, mut third) = mtls_connect(&config, listener).await.expect("resumption");
    assert!(resumed);
    assert_eq!(mtls_get(&mut third, &url, &sealed).await, Some(407));
    let fresh = mtls_client(ca, &short);
    match mtls_connect(&fresh, listener).await {
        None => {}
        Some((_, mut s)) => assert_ne!(mtls_get(&mut s, &url, &sealed).await, Some(200)),
    }
    crate::support::assert_no_panic("serve", &setup.server.stderr_text());
}

// === 10. connection slots ===

/// `n` keep-alive connections from `from`, each having made one request.
async fn hold_connections(e: &Env, from: IpAddr, n: usize, path: &str) -> Vec<RawConn> {
    let sealed = e.seal(&caller("slot-holder-token", json!({})));
    let mut conns = Vec::new();
    for _ in 0..n {
        let mut c = RawConn::open_from(from, e.tk.addr).await;
        c.send(
            format!(
                "GET http://api.test{path} HTTP/1.1\r\nHost: api.test\r\nProxy-Tokenizer: {sealed}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        conns.push(c);
    }
    conns
}

/// A newcomer: one request on a connection of its own (a pooled connection the proxy
/// closed to make room would fail the request, as after any keep-alive timeout).
async fn newcomer(e: &Env, sealed: &str, path: &str) -> Reply {
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(e.tk.proxy_url()).unwrap())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    Reply::read(
        client
            .get(format!("http://api.test{path}"))
            .header("proxy-tokenizer", sealed)
            .header("proxy-authorization", format!("Bearer {AUTH}")),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_10_one_client_cannot_hold_every_connection_slot() {
    let e = env(&["--max-connections", "10"]).await;
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let good = e.seal(&real(json!({})));
    // Idle keep-alive connections, kept alive with a cheap request now and then.
    let mut idle = hold_connections(&e, other, 10, "/").await;
    for c in &mut idle {
        assert_eq!(c.read_response(false).await.status, 200);
    }
    for round in 0..3 {
        let got = newcomer(&e, &good, "/").await;
        assert_eq!(got.status, 200, "round {round}: {}", got.body);
    }
    drop(idle);
    poll_until(Duration::from_secs(5), || async {
        e.tk.metric("tokenizer_connections_parked").await == 0.0
    })
    .await;
    // Busy connections (a slow upstream) from one source: a newcomer from another
    // source is still served, and the hog's next connection is the one refused.
    let _busy = hold_connections(&e, other, 10, "/fault/slow-headers?ms=15000").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for round in 0..3 {
        let started = Instant::now();
        let got = newcomer(&e, &good, "/").await;
        assert_eq!(got.status, 200, "round {round}: {}", got.body);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // While a newcomer's request is in flight, the source holding the most gets no more.
    let slow = {
        let e = Arc::new(e);
        let good = good.clone();
        let task = {
            let e = e.clone();
            tokio::spawn(async move {
                Ok::<u16, ()>(
                    newcomer(&e, &good, "/fault/slow-headers?ms=1500")
                        .await
                        .status,
                )
            })
        };
        (e, task)
    };
    let (e, slow) = slow;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut hog = RawConn::open_from(other, e.tk.addr).await;
    assert!(
        hog.is_closed().await,
        "the source holding every slot got one more"
    );
    assert_eq!(slow.await.unwrap().unwrap(), 200);
}

// === 11. plain-HTTP passthrough ===

/// A plain HTTP server on 127.0.0.1:0 answering with the Host it was sent; the Hosts seen.
async fn plain_http_server() -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let host = req
                            .headers()
                            .get_all("host")
                            .iter()
                            .map(|h| h.to_str().unwrap_or("?").to_owned())
                            .collect::<Vec<_>>()
                            .join(",");
                        log.lock().unwrap().push(format!("{host} {}", req.uri()));
                        async move {
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from(format!(
                                    "host={host}"
                                ))),
                            ))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_11_every_request_on_a_plain_http_passthrough_is_judged() {
    let e = Env::builder().names(&["api.test"]).start().await;
    let (plain, seen) = plain_http_server().await;
    let sealed = e.seal(&real(json!({"allowed_hosts": ["api.test"]})));
    let pin = format!("plain.test:80={plain}");
    let side = SideProxy::start(
        &[
            "--targets",
            "api.test=API_SEALED",
            "--proxy",
            &e.tk.proxy_url(),
            "--https-proxy-address",
            "127.0.0.1:0",
            "--passthrough",
            "plain.test:80",
            "--upstream-resolve",
            &pin,
            "--upstream-allow-cidrs",
            "127.0.0.0/8",
            "--admin-address",
            "127.0.0.1:0",
        ],
        &[("API_SEALED", &sealed)],
    )
    .await;
    let proxy = side.proxy_addr.unwrap();
    let mut tunnel = RawConn::tunnel(proxy, "plain.test:80", &[])
        .await
        .expect("CONNECT");
    let mut ask = async |req: &str| {
        tunnel.send(req.as_bytes()).await;
        tunnel.read_response(false).await
    };
    let first = ask("GET /a HTTP/1.1\r\nHost: plain.test\r\n\r\n").await;
    assert_eq!(
        (first.status, first.text()),
        (200, "host=plain.test".to_owned())
    );
    // A second keep-alive request to another site sharing the address.
    let other = ask("GET /b HTTP/1.1\r\nHost: other.example\r\n\r\n").await;
    assert_eq!(other.status, 403, "{}", other.text());
    let absolute = ask("GET http://other.example/c HTTP/1.1\r\nHost: plain.test\r\n\r\n").await;
    assert_eq!(absolute.status, 403, "{}", absolute.text());
    let two = ask("GET /d HTTP/1.1\r\nHost: plain.test\r\nHost: other.example\r\n\r\n").await;
    assert_eq!(two.status, 400, "{}", two.text());
    // The right host again, on the same connection.
    let again = ask("GET /e HTTP/1.1\r\nHost: plain.test:80\r\n\r\n").await;
    assert_eq!(again.status, 200);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        ["plain.test /a", "plain.test:80 /e"],
        "the upstream saw {seen:?}"
    );
    let audit = crate::support::admin::Admin::new(side.admin_addr.unwrap())
        .audit("", 5)
        .await;
    assert!(
        audit
            .iter()
            .any(|x| x["decision"] == "denied" && x.to_string().contains("other.example")),
        "{audit:?}"
    );
}

// === the class: every piece of shared state ===

#[tokio::test]
async fn class_a_real_secret_decides_the_same_after_its_cache_entry_was_pushed_out() {
    // The unseal cache: a flood of large caller secrets pushes the real one out; opening it
    // again costs a decryption, and changes no decision: its limit still counts.
    let e = env(&["--unseal-cache-bytes", "256KiB", "--unseal-cache-size", "8"]).await;
    let capped = e.seal(&real(json!({"max_requests": 2})));
    assert_eq!(
        send(&e, "GET", "http://api.test/", &[&capped], &[], "")
            .await
            .status,
        200
    );
    for i in 0..40 {
        let big = e.seal(&caller(&format!("{i:03}{}", "b".repeat(2000)), json!({})));
        assert_eq!(
            send(&e, "GET", "http://api.test/", &[&big], &[], "")
                .await
                .status,
            200
        );
        assert!(e.tk.metric("tokenizer_unseal_cache_bytes").await <= 256.0 * 1024.0);
    }
    assert!(e.tk.metric("tokenizer_unseal_cache_entries").await <= 8.0);
    assert_eq!(
        send(&e, "GET", "http://api.test/", &[&capped], &[], "")
            .await
            .status,
        200
    );
    assert_eq!(
        send(&e, "GET", "http://api.test/", &[&capped], &[], "")
            .await
            .status,
        429
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn class_made_up_tokens_grow_no_oidc_cache_and_fetch_at_most_once_per_interval() {
    let ca = TestCa::new();
    let key = SigningKey::es256("k1");
    let issuer = OidcIssuer::start(&ca, "issuer.test", &[&key]).await;
    let e = oidc_env(ca, &issuer).await;
    let sealed = e.seal(&oidc_secret(&issuer.url));
    let attacker = SigningKey::es256("k1");
    let hits =
        e.tk.metric("tokenizer_oidc_verified_cache_hits_total")
            .await;
    for i in 0..30 {
        // The right kid, the wrong key: never verified, never cached.
        let forged = attacker.sign(&oidc_claims(&issuer.url, &format!("f{i}")));
        assert_eq!(oidc_call(&e, &sealed, &forged).await.status, 407);
    }
    assert!(issuer.fetches() <= 1, "{} fetches", issuer.fetches());
    assert_eq!(
        e.tk.metric("tokenizer_oidc_verified_cache_hits_total")
            .await,
        hits
    );
    let good = key.sign(&oidc_claims(&issuer.url, "good"));
    assert_eq!(oidc_call(&e, &sealed, &good).await.status, 200);
}

#[tokio::test]
async fn class_the_sidecar_forges_certificates_only_for_its_targets() {
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

#[tokio::test]
async fn class_audit_lines_stay_bounded_whatever_a_caller_seals() {
    let e = env(&[]).await;
    let long_id = "i".repeat(5000);
    let many: Vec<String> = (0..40)
        .map(|i| {
            e.seal(&caller(
                &format!("t{i}-token"),
                json!({"id": format!("{long_id}{i}")}),
            ))
        })
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let path = format!("/{}", "p".repeat(6000));
    let got = send(&e, "GET", &format!("http://api.test{path}"), &many, &[], "").await;
    assert_eq!(got.status, 200, "{}", got.body);
    let entries = e.admin().audit("", 1).await;
    let last = entries.last().expect("an entry");
    assert!(last.to_string().len() <= ::tokenizer::audit::MAX_ENTRY_BYTES);
    assert!(!last.to_string().contains(&long_id));
}

#[tokio::test(flavor = "multi_thread")]
async fn class_a_stalled_log_drops_lines_and_never_stalls_requests() {
    // The log buffer: whatever a caller makes the proxy log, and however slowly the log
    // is read, the buffer stays bounded and requests are answered.
    let ca = TestCa::new();
    let upstream = crate::support::upstream::Upstream::start(&ca, &["127.0.0.1"]).await;
    let open = ::tokenizer::secret::OpenKey::generate();
    let server = Server::start_trusting(
        &ca,
        &open.to_hex(),
        &["--admin-address", "127.0.0.1:0"],
        &[],
    );
    let admin = server.admin.expect("admin");
    // Every audit line carries this secret, a few KiB once logged.
    let paths: Vec<String> = (0..40)
        .map(|i| format!("/v1/{i:02}/{}/**", "p".repeat(90)))
        .collect();
    let sealed = ::tokenizer::secret::Secret::from_json(
        caller("log-filler-token", json!({"allowed_paths": paths}))
            .to_string()
            .as_bytes(),
    )
    .unwrap()
    .seal(&open.seal_key());
    let url = format!(
        "http://127.0.0.1:{}/v1/00/{}/x",
        upstream.port(),
        "p".repeat(90)
    );
    server.stall_stderr(true);
    let client = server.client();
    let dropped = poll_until(Duration::from_secs(60), || async {
        let batch = (0..64).map(|_| {
            client
                .get(&url)
                .header("proxy-tokenizer", &sealed)
                .timeout(Duration::from_secs(5))
                .send()
        });
        for got in futures_util::future::join_all(batch).await {
            assert_eq!(
                got.expect("answered while the log is stalled").status(),
                200
            );
        }
        let (_, metrics) = admin_get(admin, "/metrics").await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("tokenizer_log_lines_dropped "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|n| *n > 0.0)
    })
    .await;
    assert!(
        dropped.is_some(),
        "no line was dropped: the buffer grew instead?"
    );
    // Still answering at once, the log still stalled.
    let started = Instant::now();
    let got = client
        .get(&url)
        .header("proxy-tokenizer", &sealed)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    server.stall_stderr(false);
}

#[tokio::test]
async fn class_the_echo_check_still_holds_with_the_guard() {
    // Sanity for the helpers above: the real credential reaches the upstream and is
    // masked in what comes back.
    let e = env(&[]).await;
    let sealed = e.seal(&real(json!({})));
    let got = send(&e, "GET", "http://api.test/", &[&sealed], &[], "").await;
    assert!(!got.body.contains(REAL));
    let echo = Echo::parse(&got.body);
    assert!(echo.header("authorization").unwrap().contains("[REDACTED]"));
}
