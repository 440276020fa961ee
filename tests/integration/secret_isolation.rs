//! No secret a caller seals can reach another's credential: a token a token exchange
//! returns is no broader than the secret that made it (its host, methods, paths and
//! counter), even when the token URL's host is a shared-hosting domain; an exchange cannot
//! seal another secret's credential into a token of its own; and a caller-sealed
//! processor cannot rewrite or sign a credential another secret injected.

use serde_json::{Value, json};
use tokenizer::secret::{Secret, b64};

use crate::support::attack::{AUTH, REAL, assert_no_credential, call, caller_sealed, env, real};
use crate::support::upstream::Echo;
use crate::support::{Env, bearer};

// === tokens from token exchanges ===

/// First outside attack (issue 13), finding 2: the sealed token an exchange returns
/// carries its secret's host, method and path rules and counts on its counter.
#[tokio::test]
async fn a_token_from_an_exchange_is_no_broader_than_its_secret() {
    let e = env(&[]).await;
    let port = e.upstream.port();
    // No host rule: the exchange is pinned to its token URL's host, and so is the token.
    let parent = json!({
        "client_credentials_processor": {"client_id": "id", "client_secret": "cs-parent-secret",
            "token_url": format!("https://127.0.0.1:{port}/token/cc")},
        "bearer_auth": bearer(AUTH),
        "allowed_methods": ["POST", "GET"],
        "allowed_paths": ["/token/cc", "/v1/**"],
        "rate_limit": "3/min",
    });
    let got = call(
        &e,
        "POST",
        &format!("http://{}/token/cc", e.host()),
        &[&parent],
        &[],
        "",
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let v: Value = serde_json::from_str(&got.body).unwrap();
    let token = v["sealed_token"].as_str().unwrap().to_owned();
    let send = |method: &'static str, url: String| {
        let token = token.clone();
        let e = &e;
        async move { call(e, method, &url, &[&token], &[], "").await }
    };
    // Another host: refused (it was injected there on e0c932c).
    let got = send("GET", "http://other.test/v1/x".to_owned()).await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert!(
        got.body.contains("secret not valid for other.test"),
        "{}",
        got.body
    );
    // The parent's methods and paths hold.
    let got = send("DELETE", format!("http://{}/v1/x", e.host())).await;
    assert_eq!(got.status, 400, "{}", got.body);
    let got = send("GET", format!("http://{}/admin", e.host())).await;
    assert_eq!(got.status, 400, "{}", got.body);
    // Its own host works, on the parent's counter: 1 exchange + 2 uses of 3/min.
    for expected in [200, 200, 429] {
        let got = send("GET", format!("http://{}/v1/x", e.host())).await;
        assert_eq!(got.status, expected, "{}", got.body);
    }
    // What was sealed says so.
    let opened = Secret::open(&e.tk.open_keys(), &token).unwrap();
    assert!(opened.hosts.allowed_host_pattern.is_some());
    assert_eq!(
        opened.policy.allowed_methods,
        Some(vec!["POST".into(), "GET".into()])
    );
}

/// First outside attack (issue 13), with finding 2: a caller's exchange whose token
/// endpoint echoes the real credential seals it masked, not as its own.
#[tokio::test]
async fn an_exchange_cannot_seal_another_secrets_credential() {
    let e = env(&[]).await;
    let host = e.host();
    // The real secret injects into Authorization; the caller's exchange secret asks a
    // token endpoint that answers with the Authorization it got. Sealed as is, the
    // "access token" would be the real credential, in a token the caller may send to
    // any host its own secret names.
    let real = real(json!({"allowed_hosts": [host.clone()]}));
    let exchange = caller_sealed(
        json!({"client_credentials_processor": {"client_id": "i", "client_secret": "caller-cs-1",
            "token_url": format!("https://{host}/token/echo-auth")}}),
        json!({"allowed_hosts": [host.clone(), "other.test"]}),
    );
    let got = call(
        &e,
        "POST",
        &format!("http://{host}/token/echo-auth"),
        &[&real, &exchange],
        &[],
        "",
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let v: Value = serde_json::from_str(&got.body).unwrap();
    let opened = Secret::open(&e.tk.open_keys(), v["sealed_token"].as_str().unwrap()).unwrap();
    let json = opened.to_json();
    assert_no_credential("sealed token", &json, REAL);
    assert!(json.contains("[REDACTED]"), "{}", json.as_str());
}

/// Second outside attack (issue 22), finding 3: derived tokens stay with their tenant.
/// A token from `auth-myco.fly.dev` is valid for its own subdomains, not for another
/// tenant of `fly.dev`.
#[tokio::test]
async fn a_token_from_a_shared_hosting_domain_never_reaches_its_neighbours() {
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
    let got = call(
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
    let got = call(
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
    let got = call(
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

// === one secret's processors on another's credential ===

/// First outside attack (issue 13), finding 4: a caller-sealed body processor cannot
/// rewrite the real credential another secret injected, and a caller-sealed signer cannot
/// be combined with it.
#[tokio::test]
async fn a_second_secret_cannot_rewrite_a_body_injected_credential() {
    let e = env(&[]).await;
    let real = json!({"inject_body_processor": {"token": REAL, "placeholder": "{{T}}"},
        "bearer_auth": bearer(AUTH)});
    let rewriter = caller_sealed(
        json!({"inject_body_processor": {"token": "-!", "placeholder": "-"}}),
        json!({}),
    );
    for order in [[&real, &rewriter], [&rewriter, &real]] {
        let got = call(
            &e,
            "POST",
            "http://api.test/echo",
            &order,
            &[],
            r#"{"key":"{{T}}"}"#,
        )
        .await;
        assert_eq!(got.status, 200, "{}", got.body);
        assert!(!got.body.contains("sk-!live"), "{}", got.body);
        assert_no_credential("body echo", &got.body, REAL);
        let echoed = Echo::parse(&got.body);
        assert!(echoed.body().contains("[REDACTED]"), "{}", echoed.body());
    }
    // A signing secret sealed by the caller would sign the real credential.
    let signer = caller_sealed(
        json!({"inject_hmac_processor": {"key": b64::encode(b"caller-knows-this"),
            "hash": "sha256", "dst": "x-sig"}}),
        json!({}),
    );
    let got = call(
        &e,
        "POST",
        "http://api.test/echo",
        &[&real, &signer],
        &[],
        "{{T}}",
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert!(got.body.contains("cannot be combined"), "{}", got.body);
}
