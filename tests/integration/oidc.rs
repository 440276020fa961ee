//! `oidc_auth` (issue 18): workload tokens from a local OIDC issuer over TLS (discovery +
//! JWKS, keys rotated during the test), shaped like GitHub Actions' and Kubernetes'
//! service-account tokens, presented as `Proxy-Authorization: Bearer <jwt>`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::support::binary;
use crate::support::ca::TestCa;
use crate::support::env::{Env, Reply};
use crate::support::oidc_issuer::{OidcIssuer, SigningKey, now};
use crate::support::poll_until;

const TOKEN: &str = "oidc-injected-credential-77c1";
const GITHUB: &str = "issuer.test";
const REFUSED_ISSUER: &str = "elsewhere.test";

/// The proxy, trusting `ca`, with `issuers` allowed and `extra` pins.
async fn env(ca: TestCa, issuers: &[&OidcIssuer], pins: &[String]) -> Env {
    let allowed: Vec<String> = issuers.iter().map(|i| i.url.clone()).collect();
    let allowed = allowed.join(",");
    let pins: Vec<&str> = pins.iter().map(String::as_str).collect();
    Env::builder()
        .ca(ca)
        .names(&["api.test"])
        .pins(&pins)
        .flags(&["--oidc-issuers", &allowed, "--oidc-refresh-interval", "2s"])
        .admin()
        .start()
        .await
}

/// GitHub Actions' token for acme/app on main (the claims a workflow's token carries).
fn github_claims(iss: &str) -> Value {
    let now = now();
    json!({
        "iss": iss,
        "aud": "tokenizer",
        "sub": "repo:acme/app:ref:refs/heads/main",
        "repository": "acme/app",
        "repository_owner": "acme",
        "ref": "refs/heads/main",
        "workflow": "deploy",
        "event_name": "push",
        "run_id": "1234567890",
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
    })
}

fn github_secret(issuer: &str) -> Value {
    json!({
        "inject_processor": {"token": TOKEN},
        "oidc_auth": {
            "issuer": issuer,
            "audience": "tokenizer",
            "claims": {"repository": "acme/app", "ref": "refs/heads/main"},
        },
    })
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

async fn call(e: &Env, sealed: &str, jwt: &str) -> Reply {
    e.get(
        "/v1/thing",
        &[sealed],
        &[("proxy-authorization", &format!("Bearer {jwt}"))],
    )
    .await
}

fn assert_refused(r: &Reply, why: &str, case: &str) {
    assert_eq!(r.status, 407, "{case}: {}", r.body);
    assert!(r.body.contains(why), "{case}: {:?} lacks {why:?}", r.body);
    assert!(!r.body.contains(TOKEN), "{case}: the credential leaked");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_github_actions_token_opens_its_secret_and_nothing_else_does() {
    let ca = TestCa::new();
    let key = SigningKey::rs256("gh-1");
    let issuer = OidcIssuer::start(&ca, GITHUB, &[&key]).await;
    let elsewhere_key = SigningKey::es256("else-1");
    let elsewhere = OidcIssuer::start(&ca, REFUSED_ISSUER, &[&elsewhere_key]).await;
    let e = env(ca, &[&issuer], &[issuer.pin(), elsewhere.pin()]).await;
    let sealed = e.seal(&github_secret(&issuer.url));
    let claims = github_claims(&issuer.url);

    // The right workload.
    let ok = call(&e, &sealed, &key.sign(&claims)).await;
    assert_eq!(
        ok.echo().header("authorization").unwrap(),
        format!("Bearer {TOKEN}")
    );
    // Within the 60 s of clock skew.
    let skewed = with(claims.clone(), json!({"nbf": now() + 30}));
    assert_eq!(call(&e, &sealed, &key.sign(&skewed)).await.status, 200);

    let mut cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            key.sign(&with(claims.clone(), json!({"exp": now() - 120}))),
            "token expired",
        ),
        (
            "not yet valid",
            key.sign(&with(claims.clone(), json!({"nbf": now() + 600}))),
            "not yet valid",
        ),
        (
            "wrong audience",
            key.sign(&with(claims.clone(), json!({"aud": "someone-else"}))),
            "wrong audience",
        ),
        (
            "claim mismatch",
            key.sign(&with(claims.clone(), json!({"ref": "refs/heads/dev"}))),
            "claim ref does not match",
        ),
        (
            "another repository",
            key.sign(&with(
                claims.clone(),
                json!({"repository": "acme/app-fork"}),
            )),
            "claim repository does not match",
        ),
        (
            "no exp",
            key.sign(&{
                let mut c = claims.clone();
                c.as_object_mut().unwrap().remove("exp");
                c
            }),
            "token has no exp",
        ),
    ];
    // Signed by the issuer's key, but claiming another issuer: not this secret's.
    cases.push((
        "wrong issuer",
        key.sign(&with(
            claims.clone(),
            json!({"iss": "https://issuer.test/other"}),
        )),
        "no token from https://issuer.test",
    ));
    // alg none: no signature at all.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    cases.push((
        "alg none",
        format!("{header}.{payload}."),
        "malformed token",
    ));
    // Algorithm confusion: HS256 "signed" with the issuer's public key as the secret.
    let public_pem = key.public_pem.clone().unwrap();
    let confused = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some("gh-1".to_owned()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();
    cases.push((
        "HS256 with the public key",
        confused,
        "algorithm HS256 is not accepted",
    ));
    // Tampered payload: another repository, the original signature.
    let good = key.sign(&claims);
    let parts: Vec<&str> = good.split('.').collect();
    let forged = with(claims.clone(), json!({"repository": "evil/app"}));
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged.to_string()),
        parts[2]
    );
    cases.push(("tampered payload", tampered, "bad signature"));
    // Signed by a key the issuer never published (a kid it does not know).
    let stranger = SigningKey::rs256("gh-unknown");
    cases.push(("unknown kid", stranger.sign(&claims), "unknown signing key"));
    // Signed with another key under the issuer's kid.
    cases.push((
        "another key, known kid",
        stranger.sign_as("gh-1", &claims),
        "bad signature",
    ));
    for (case, jwt, why) in &cases {
        assert_refused(&call(&e, &sealed, jwt).await, why, case);
    }
    // No token, or a password where a token belongs.
    assert_refused(
        &call(&e, &sealed, "caller-password").await,
        "no token from",
        "password",
    );
    let r = e.get("/v1/thing", &[&sealed], &[]).await;
    assert_refused(&r, "no token from", "no proxy-authorization");

    // An issuer the operator did not list: refused, and never contacted, even for a
    // secret that names it.
    let foreign = e.seal(&github_secret(&elsewhere.url));
    let jwt = elsewhere_key.sign(&github_claims(&elsewhere.url));
    assert_refused(
        &call(&e, &foreign, &jwt).await,
        "is not in OIDC_ISSUERS",
        "issuer not in OIDC_ISSUERS",
    );
    assert_eq!(
        elsewhere.fetches(),
        0,
        "the proxy fetched an unlisted issuer's keys"
    );

    // The audit line names the verified workload, never the token.
    let entries = e.admin().audit("status=200", 1).await;
    let identity = entries[0]["identity"].as_str().unwrap();
    assert_eq!(
        identity,
        "oidc https://issuer.test repo:acme/app:ref:refs/heads/main"
    );
    let all = e.admin().audit("", cases.len()).await;
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains(&good[..40]), "a token is in the audit log");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kubernetes_service_account_token_with_nested_claims() {
    let ca = TestCa::new();
    let key = SigningKey::es256("k8s-1");
    let issuer = OidcIssuer::start(&ca, "kubernetes.test", &[&key]).await;
    let e = env(ca, &[&issuer], &[issuer.pin()]).await;
    let sealed = e.seal(&json!({
        "inject_processor": {"token": TOKEN},
        "oidc_auth": {
            "issuer": issuer.url,
            "audience": "tokenizer",
            "claims": {
                "sub": "system:serviceaccount:agents:*",
                "/kubernetes.io/namespace": "agents",
            },
        },
    }));
    let claims = |ns: &str, sa: &str| {
        let now = now();
        json!({
            "iss": issuer.url,
            "aud": ["https://kubernetes.default.svc", "tokenizer"],
            "sub": format!("system:serviceaccount:{ns}:{sa}"),
            "kubernetes.io": {
                "namespace": ns,
                "serviceaccount": {"name": sa, "uid": "6f1c9e8a-0000-4000-8000-000000000001"},
                "pod": {"name": format!("{sa}-7d9f"), "uid": "00000000-0000-4000-8000-000000000002"},
            },
            "iat": now, "nbf": now, "exp": now + 600,
        })
    };
    let ok = call(&e, &sealed, &key.sign(&claims("agents", "worker"))).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let other = call(&e, &sealed, &key.sign(&claims("default", "worker"))).await;
    assert_refused(&other, "does not match", "another namespace");
}

/// The same token with every request is verified once: later requests take it from the
/// cache of verified tokens; a token differing in one byte is checked afresh (and fails).
#[tokio::test(flavor = "multi_thread")]
async fn a_token_sent_again_is_not_verified_again() {
    let ca = TestCa::new();
    let key = SigningKey::rs256("gh-cache");
    let issuer = OidcIssuer::start(&ca, GITHUB, &[&key]).await;
    let e = env(ca, &[&issuer], &[issuer.pin()]).await;
    let sealed = e.seal(&github_secret(&issuer.url));
    let jwt = key.sign(&github_claims(&issuer.url));
    for _ in 0..3 {
        let ok = call(&e, &sealed, &jwt).await;
        assert_eq!(ok.status, 200, "{}", ok.body);
    }
    assert_eq!(
        e.tk.metric("tokenizer_oidc_verified_cache_hits_total")
            .await,
        2.0
    );
    // Tampered signature: not a cache hit, and refused.
    let mut tampered = jwt.clone().into_bytes();
    let i = tampered.len() - 20;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let refused = call(&e, &sealed, &tampered).await;
    assert_eq!(refused.status, 407, "{}", refused.body);
    assert_eq!(
        e.tk.metric("tokenizer_oidc_verified_cache_hits_total")
            .await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_keys_are_fetched_on_an_unknown_kid_at_most_once_per_interval() {
    let ca = TestCa::new();
    let first = SigningKey::eddsa("rot-1");
    let issuer = OidcIssuer::start(&ca, GITHUB, &[&first]).await;
    let e = env(ca, &[&issuer], &[issuer.pin()]).await;
    let sealed = e.seal(&github_secret(&issuer.url));
    let claims = github_claims(&issuer.url);
    assert_eq!(call(&e, &sealed, &first.sign(&claims)).await.status, 200);
    assert_eq!(issuer.fetches(), 1);
    // Cached: more tokens, no more fetches.
    for _ in 0..5 {
        assert_eq!(call(&e, &sealed, &first.sign(&claims)).await.status, 200);
    }
    assert_eq!(issuer.fetches(), 1);

    // The issuer rotates: the new kid is unknown, so the keys are fetched again once the
    // refresh interval (2 s) since the last fetch has passed; until then it is refused
    // without a fetch.
    let second = SigningKey::rs256("rot-2");
    issuer.set_keys(&[&second]);
    let rotated = poll_until(Duration::from_secs(10), || async {
        let got = call(&e, &sealed, &second.sign(&claims)).await;
        if got.status != 200 {
            assert_refused(&got, "unknown signing key", "new kid within the interval");
            assert_eq!(issuer.fetches(), 1, "fetched again within the interval");
        }
        got.status == 200
    })
    .await;
    assert!(rotated.is_some(), "the rotated key was never fetched");
    assert_eq!(issuer.fetches(), 2);
    // The retired key is gone with the refresh.
    assert_refused(
        &call(&e, &sealed, &first.sign(&claims)).await,
        "unknown signing key",
        "retired key",
    );
    // A flood of made-up kids within the interval costs at most one fetch.
    let stranger = SigningKey::rs256("made-up");
    for i in 0..20 {
        let jwt = stranger.sign_as(&format!("made-up-{i}"), &claims);
        assert_refused(
            &call(&e, &sealed, &jwt).await,
            "unknown signing key",
            "made-up kid",
        );
    }
    assert!(issuer.fetches() <= 3, "{} fetches", issuer.fetches());

    // The issuer fails: once the interval allows another fetch, a made-up kid tries one
    // and it fails; the last good keys keep working.
    issuer.set_broken(true);
    let asked = issuer.requests();
    let jwt = stranger.sign_as("made-up-again", &claims);
    let tried = poll_until(Duration::from_secs(10), || async {
        assert_refused(
            &call(&e, &sealed, &jwt).await,
            "unknown signing key",
            "while down",
        );
        issuer.requests() > asked
    })
    .await;
    assert!(
        tried.is_some(),
        "no fetch was tried while the issuer was down"
    );
    assert_eq!(call(&e, &sealed, &second.sign(&claims)).await.status, 200);
}

#[test]
fn seal_flags_make_oidc_auth_and_lint_a_claimless_one() {
    let key = tokenizer::secret::OpenKey::generate();
    let hex = key.to_hex().to_string();
    let out = binary::run(&[
        "seal",
        "--open-key",
        &hex,
        "--host",
        "api.test",
        "--oidc-issuer",
        "https://token.actions.githubusercontent.com",
        "--oidc-audience",
        "tokenizer",
        "--oidc-claim",
        "repository=acme/app",
        "--oidc-claim",
        "ref=refs/heads/*",
        "credential-123",
    ])
    .ok();
    let doc = binary::unseal(&hex, out.stdout.trim(), false);
    assert_eq!(
        doc["oidc_auth"],
        json!({
            "issuer": "https://token.actions.githubusercontent.com",
            "audience": "tokenizer",
            "claims": {"ref": "refs/heads/*", "repository": "acme/app"},
        })
    );
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    let out = binary::run(&[
        "seal",
        "--open-key",
        &hex,
        "--host",
        "api.test",
        "--oidc-issuer",
        "https://token.actions.githubusercontent.com",
        "--oidc-audience",
        "tokenizer",
        "credential-123",
    ])
    .ok();
    assert!(
        out.stderr.contains("oidc_auth without claims"),
        "{}",
        out.stderr
    );
    // A bad OIDC_ISSUERS entry stops serve at start.
    let out = binary::run(&[
        "serve",
        "--open-key",
        &hex,
        "--oidc-issuers",
        "http://plain.test",
    ]);
    assert_eq!(out.code(), Some(2));
    assert!(out.stderr.contains("OIDC_ISSUERS"), "{}", out.stderr);
}
