//! Token exchanges through the running proxy (spec §2.3.2, §2.3.3, §7.1 jwt, §7.2 jwt /
//! client_credentials / github_app): the exchange request as the token endpoint sees it,
//! the sealed response, then the sealed token in use; on CONNECT and inside
//! multi_processor too; and every response shape that must fail closed.

use std::sync::OnceLock;
use std::time::Duration;

use ::tokenizer::processor::ProcessorConfig;
use ::tokenizer::secret::{Secret, b64};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{Value, json};

use crate::support::binary::Server;
use crate::support::ca::TestCa;
use crate::support::raw::{RawConn, RawResponse};
use crate::support::upstream::{Echo, Upstream};
use crate::support::{Env, Reply, bearer, inject, poll_until, seal_for, with};

const GOOGLE: &str = "ya29.test-access-token-from-google";
const CC_TOKEN: &str = "hs-access-token-xyz";
const GHS: &str = "ghs_installationtokenXYZ";
const CLIENT_SECRET: &str = "cs-SECRET-client-1";
const AUTH: &str = "trustno1";
const GRANT_JWT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

// === keys ===

struct RsaKey {
    /// PKCS#1 PEM text.
    pem: String,
    public_pem: String,
}

/// One RSA key per test binary (keygen is slow).
fn rsa_key() -> &'static RsaKey {
    static KEY: OnceLock<RsaKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        RsaKey {
            pem: key.to_pkcs1_pem(LineEnding::LF).unwrap().to_string(),
            public_pem: rsa::RsaPublicKey::from(&key)
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
        }
    })
}

/// A P-256 key, PKCS#8 PEM, and its SPKI public PEM.
fn p256_key() -> &'static (String, String) {
    static KEY: OnceLock<(String, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = p256::SecretKey::random(&mut rand_core::OsRng);
        (
            key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            key.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
        )
    })
}

/// Verify a JWT with a public key (`jsonwebtoken`); its header and claims.
fn verify(jwt: &str, alg: jsonwebtoken::Algorithm, public_pem: &str) -> (Value, Value) {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let key = match alg {
        Algorithm::RS256 => DecodingKey::from_rsa_pem(public_pem.as_bytes()),
        _ => DecodingKey::from_ec_pem(public_pem.as_bytes()),
    }
    .unwrap();
    let mut validation = Validation::new(alg);
    validation.validate_aud = false;
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .unwrap_or_else(|e| panic!("JWT does not verify: {e}"))
        .claims;
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    (header, claims)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

// === secrets ===

fn jwt_processor(pem: &str) -> Value {
    json!({"jwt_processor": {
        "private_key": b64::encode(pem.as_bytes()),
        "email": "svc@project.iam.gserviceaccount.com",
        "scopes": "https://www.googleapis.com/auth/cloud-platform",
        "token_url": "https://oauth2.googleapis.com/token",
    }})
}

fn cc_processor(scopes: &str) -> Value {
    json!({"client_credentials_processor": {
        "client_id": "my-client",
        "client_secret": CLIENT_SECRET,
        "token_url": "https://auth.example.test/oauth/token",
        "scopes": scopes,
    }})
}

fn github_processor(token_url: &str) -> Value {
    json!({"github_app_processor": {
        "private_key": b64::encode(rsa_key().pem.as_bytes()),
        "app_id": "123456",
        "installation_id": "789012",
        "token_url": token_url,
    }})
}

/// The hosts these tests send exchanges to. An exchange secret without host rules may
/// only be sent to its `token_url` host, so the test secrets name these explicitly.
const TEST_HOSTS: &str = r"^(127\.0\.0\.1:\d+|oauth\.test(:80)?|api\.github\.com)$";

/// `processor` bound to bearer `AUTH`, plus `extra` top-level keys (and, when `extra`
/// has no host rule, a pattern for the test hosts).
fn secret(processor: Value, extra: Value) -> Value {
    let mut s = with(with(processor, json!({"bearer_auth": bearer(AUTH)})), extra);
    if s.get("allowed_hosts").is_none() && s.get("allowed_host_pattern").is_none() {
        s["allowed_host_pattern"] = json!(TEST_HOSTS);
    }
    s
}

// === environment ===

/// One TLS upstream (echo and token endpoints) known as 127.0.0.1:PORT, and pinned as
/// `api.github.com` and `oauth.test` for the proxy.
async fn env() -> Env {
    env_with(&[]).await
}

/// The environment with more `serve` flags.
async fn env_with(extra: &[&str]) -> Env {
    Env::builder()
        .names(&["127.0.0.1", "api.github.com", "oauth.test"])
        .flags(extra)
        .start()
        .await
}

/// What a client of a token exchange got.
trait Got {
    /// The sealed token response: `(sealed_token, expires_in)`.
    fn sealed(&self) -> (String, i64);
    fn assert_no_plaintext(&self);
}

impl Got for Reply {
    fn sealed(&self) -> (String, i64) {
        assert!(
            self.status == 200 || self.status == 201,
            "{}: {}",
            self.status,
            self.body
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
        let v: Value = serde_json::from_str(&self.body).unwrap();
        assert_eq!(
            v.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["sealed_token", "expires_in", "token_type"],
            "{v}"
        );
        assert_eq!(v["token_type"], "sealed");
        let sealed = v["sealed_token"].as_str().unwrap().to_owned();
        assert!(!sealed.is_empty());
        (sealed, v["expires_in"].as_i64().unwrap())
    }

    fn assert_no_plaintext(&self) {
        for token in [GOOGLE, "ya29", CC_TOKEN, GHS, CLIENT_SECRET, "assertion"] {
            assert!(
                !self.body.contains(token),
                "{} body holds {token}: {}",
                self.status,
                self.body
            );
        }
    }
}

/// Requests through the proxy with one secret.
trait Through {
    /// `method url` with `sealed` and, when given, `Proxy-Authorization: Bearer auth`; a
    /// POST carries a stale JSON body.
    async fn call(&self, method: &str, url: &str, sealed: &str, auth: Option<&str>) -> Reply;

    /// The exchange: POST `url` with the exchange secret and the right auth.
    async fn exchange(&self, url: &str, sealed: &str) -> Reply {
        let got = self.call("POST", url, sealed, Some(AUTH)).await;
        got.assert_no_plaintext();
        got
    }

    /// Use a sealed token: GET `url` with the right auth; what the upstream saw.
    async fn use_token(&self, url: &str, sealed: &str) -> Echo {
        self.call("GET", url, sealed, Some(AUTH)).await.echo()
    }
}

impl Through for Env {
    async fn call(&self, method: &str, url: &str, sealed: &str, auth: Option<&str>) -> Reply {
        let auth = auth.map(|a| format!("Bearer {a}"));
        let mut headers = Vec::new();
        if let Some(a) = &auth {
            headers.push(("proxy-authorization", a.as_str()));
        }
        let mut body = "";
        if method == "POST" {
            headers.push(("content-type", "application/json"));
            body = r#"{"stale":"client body"}"#;
        }
        self.send(method, url, &[sealed], &headers, body).await
    }
}

/// The JWT assertion the token endpoint received, checked to be Go's form body.
fn assertion(received: &Echo) -> String {
    assert_eq!(received.0["method"], "POST");
    assert_eq!(
        received.header("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    let body = received.body();
    assert_eq!(
        received.header("content-length").unwrap(),
        body.len().to_string()
    );
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(pairs.len(), 2, "{body}");
    assert_eq!(pairs[0].0, "assertion");
    assert_eq!(pairs[1], ("grant_type".to_owned(), GRANT_JWT.to_owned()));
    assert!(
        body.ends_with("&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
        "{body}"
    );
    for hop in ["proxy-tokenizer", "proxy-authorization"] {
        assert!(received.header(hop).is_none(), "{hop} sent upstream");
    }
    pairs[0].1.clone()
}

// === jwt ===

#[tokio::test]
async fn jwt_exchange_then_use_the_sealed_token() {
    let e = env().await;
    let host = e.host();
    let sealed = e.seal(&secret(
        jwt_processor(&rsa_key().pem),
        json!({"allowed_hosts": [host]}),
    ));

    // 1. The exchange: the client never sees the access token.
    let got = e.exchange(&e.url("/token"), &sealed).await;
    assert_eq!(got.status, 200);
    let (token, expires_in) = got.sealed();
    assert!(0 < expires_in && expires_in <= 3540, "{expires_in}");

    // The endpoint got an RS256 assertion that verifies with the public key.
    let received = e.upstream.last_received();
    assert_eq!(received.uri(), "/token");
    let (header, claims) = verify(
        &assertion(&received),
        jsonwebtoken::Algorithm::RS256,
        &rsa_key().public_pem,
    );
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], "svc@project.iam.gserviceaccount.com");
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/cloud-platform"
    );
    assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!((now() - 10..=now()).contains(&iat));
    assert!((3599..=3601).contains(&(exp - iat)));
    assert!(claims.get("sub").is_none());

    // 2. The sealed token, with the same auth, injects the access token.
    let echo = e.use_token(&e.url("/"), &token).await;
    assert_eq!(
        echo.header_all("authorization"),
        [format!("Bearer {GOOGLE}")]
    );

    // Wrong or no auth → 407.
    for auth in [Some("wrong"), None] {
        let got = e.call("GET", &e.url("/"), &token, auth).await;
        assert_eq!(got.status, 407, "{}", got.body);
        got.assert_no_plaintext();
    }

    // 3. What was sealed: the token, the original auth and hosts, an expiry.
    let opened = Secret::open(&e.tk.open_keys(), &token).unwrap();
    let ProcessorConfig::Inject(inject) = &opened.processor else {
        panic!("not an inject secret: {}", opened.stripped_json());
    };
    assert_eq!(inject.token.expose(), GOOGLE);
    let json: Value = serde_json::from_str(&opened.to_json()).unwrap();
    assert_eq!(json["bearer_auth"], bearer(AUTH));
    assert_eq!(json["allowed_hosts"], json!([host]));
    let expires_at = opened.policy.expires_at.expect("expires_at");
    assert!(
        (now() + 3590..=now() + 3600).contains(&expires_at),
        "{expires_at}"
    );
}

#[tokio::test]
async fn jwt_params_and_ec_keys() {
    let e = env().await;
    let (pem, public) = p256_key();
    let mut processor = jwt_processor(pem);
    processor["jwt_processor"]["sub"] = json!("config-user@example.com");
    processor["jwt_processor"]["token_url"] = json!("");
    let sealed = e.seal(&secret(processor, json!({})));
    let with_params = format!(r#"{sealed}; {{"sub":"param-user@example.com","scopes":"a b"}}"#);
    for (header, sub, scope) in [
        (
            sealed.as_str(),
            "config-user@example.com",
            "https://www.googleapis.com/auth/cloud-platform",
        ),
        (with_params.as_str(), "param-user@example.com", "a b"),
    ] {
        let got = e.exchange(&e.url("/token"), header).await;
        got.sealed();
        let (h, claims) = verify(
            &assertion(&e.upstream.last_received()),
            jsonwebtoken::Algorithm::ES256,
            public,
        );
        assert_eq!(h["alg"], "ES256");
        assert_eq!(claims["sub"], sub);
        assert_eq!(claims["scope"], scope);
        assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");
    }
}

#[tokio::test]
async fn expired_sealed_tokens_are_refused() {
    let e = env().await;
    // A token whose lifetime has passed, as the tokenizer issues it.
    let sealed = e.seal(&secret(jwt_processor(&rsa_key().pem), json!({})));
    let got = e.exchange(&e.url("/token/short"), &sealed).await;
    let (token, expires_in) = got.sealed();
    assert_eq!(expires_in, 1);
    let opened = Secret::open(&e.tk.open_keys(), &token).unwrap();
    assert!(opened.policy.expires_at.unwrap() <= now() + 1);
    // Expiry has a one-second grain: ask until the token is refused.
    let got = poll_until(Duration::from_secs(10), || async {
        let got = e.call("GET", &e.url("/"), &token, Some(AUTH)).await;
        (got.status != 200).then_some(got)
    })
    .await
    .expect("the token is still accepted 10 s after it expired");
    assert_eq!(got.status, 400, "{}", got.body);
    assert!(got.body.contains("secret expired"), "{}", got.body);
    got.assert_no_plaintext();

    // One forged with an expiry in the past.
    let forged = e.seal(&with(
        inject(GOOGLE, AUTH),
        json!({"expires_at": now() - 10}),
    ));
    let got = e.call("GET", &e.url("/"), &forged, Some(AUTH)).await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert!(got.body.contains("secret expired"), "{}", got.body);
    got.assert_no_plaintext();
    // Still in force → ok.
    let fresh = e.seal(&with(
        inject(GOOGLE, AUTH),
        json!({"expires_at": now() + 60}),
    ));
    e.use_token(&e.url("/"), &fresh).await;
}

/// The reflection guard (on by default in production; off in most tests) masks the
/// credentials a request injects in its response: it leaves token exchanges working.
#[tokio::test]
async fn exchanges_work_with_the_reflection_guard_on() {
    let e = env_with(&["--reflection-guard=true"]).await;
    for (processor, path, want) in [
        (jwt_processor(&rsa_key().pem), "/token", GOOGLE),
        (cc_processor("read"), "/token/cc", CC_TOKEN),
    ] {
        let sealed = e.seal(&secret(processor, json!({})));
        let got = e.exchange(&e.url(path), &sealed).await;
        assert_eq!(got.status, 200, "{}", got.body);
        let (token, _) = got.sealed();
        let opened = Secret::open(&e.tk.open_keys(), &token).unwrap();
        let ProcessorConfig::Inject(inject) = &opened.processor else {
            panic!("not inject");
        };
        assert_eq!(inject.token.expose(), want);
        let got = e.call("GET", &e.url("/"), &token, Some(AUTH)).await;
        assert_eq!(got.status, 200, "{}", got.body);
        got.assert_no_plaintext();
    }
    let sealed = e.seal(&secret(github_processor(""), json!({})));
    let (token, _) = e.exchange("http://api.github.com/", &sealed).await.sealed();
    let got = e
        .call("GET", "http://api.github.com/user", &token, Some(AUTH))
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    got.assert_no_plaintext();
}

// === client_credentials ===

#[tokio::test]
async fn client_credentials_exchange_then_use() {
    let e = env().await;
    for scopes in ["read:all write", ""] {
        let sealed = e.seal(&secret(cc_processor(scopes), json!({})));
        let got = e.exchange(&e.url("/token/cc"), &sealed).await;
        assert_eq!(got.status, 200);
        let (token, expires_in) = got.sealed();
        assert!(0 < expires_in && expires_in <= 7200, "{expires_in}");

        // The endpoint got the grant form, wherever token_url points.
        let received = e.upstream.last_received();
        assert_eq!(received.uri(), "/token/cc");
        assert_eq!(
            received.header("content-type").unwrap(),
            "application/x-www-form-urlencoded"
        );
        assert_eq!(
            received.header("content-length").unwrap(),
            received.body().len().to_string()
        );
        let pairs: Vec<(String, String)> = form_urlencoded::parse(received.body().as_bytes())
            .into_owned()
            .collect();
        let mut want = vec![
            ("client_id".to_owned(), "my-client".to_owned()),
            ("client_secret".to_owned(), CLIENT_SECRET.to_owned()),
            ("grant_type".to_owned(), "client_credentials".to_owned()),
        ];
        if !scopes.is_empty() {
            want.push(("scope".to_owned(), scopes.to_owned()));
        }
        assert_eq!(pairs, want);

        let echo = e.use_token(&e.url("/"), &token).await;
        assert_eq!(
            echo.header_all("authorization"),
            [format!("Bearer {CC_TOKEN}")]
        );
        assert_eq!(
            e.call("GET", &e.url("/"), &token, Some("wrong"))
                .await
                .status,
            407
        );
        let opened = Secret::open(&e.tk.open_keys(), &token).unwrap();
        let at = opened.policy.expires_at.unwrap() - now();
        assert!((7190..=7200).contains(&at), "{at}");
    }
}

// === github_app ===

#[tokio::test]
async fn github_app_exchange_then_use() {
    let e = env().await;
    let sealed = e.seal(&secret(github_processor(""), json!({})));
    // Any path: the processor replaces it with the installation path.
    let got = e
        .exchange("http://api.github.com/whatever?per_page=1", &sealed)
        .await;
    assert_eq!(got.status, 201);
    let (token, expires_in) = got.sealed();
    assert!(0 < expires_in && expires_in <= 3540, "{expires_in}");

    let received = e.upstream.last_received();
    assert_eq!(received.0["method"], "POST");
    assert_eq!(
        received.uri(),
        "/app/installations/789012/access_tokens?per_page=1"
    );
    assert_eq!(received.header("host").unwrap(), "api.github.com");
    assert_eq!(
        received.header("accept").unwrap(),
        "application/vnd.github+json"
    );
    assert_eq!(
        received.header("x-github-api-version").unwrap(),
        "2022-11-28"
    );
    assert_eq!(received.body(), "");
    assert_eq!(received.header("content-length").as_deref(), Some("0"));
    assert!(received.header("content-type").is_none());
    let auth = received.header("authorization").unwrap();
    let jwt = auth.strip_prefix("Bearer ").expect("Bearer app JWT");
    let (header, claims) = verify(jwt, jsonwebtoken::Algorithm::RS256, &rsa_key().public_pem);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], json!("123456"));
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!((599..=601).contains(&(exp - iat)));
    for absent in ["aud", "scope", "sub"] {
        assert!(claims.get(absent).is_none(), "{claims}");
    }

    // The sealed token works on api.github.com only, as `token %s`.
    let echo = e.use_token("http://api.github.com/user", &token).await;
    assert_eq!(echo.header_all("authorization"), [format!("token {GHS}")]);
    assert_eq!(echo.header("host").unwrap(), "api.github.com");
    let got = e.call("GET", &e.url("/"), &token, Some(AUTH)).await;
    assert_eq!(got.status, 400, "{}", got.body);
    got.assert_no_plaintext();
    let got = e
        .call("GET", "http://api.github.com/user", &token, Some("wrong"))
        .await;
    assert_eq!(got.status, 407);

    let opened = Secret::open(&e.tk.open_keys(), &token).unwrap();
    let json: Value = serde_json::from_str(&opened.to_json()).unwrap();
    assert_eq!(json["inject_processor"]["fmt"], "token %s");
    assert_eq!(json["bearer_auth"], bearer(AUTH));
    assert_eq!(json["allowed_hosts"], json!(["api.github.com"]));
    let at = opened.policy.expires_at.unwrap() - now();
    assert!((3580..=3600).contains(&at), "{at}");
}

#[tokio::test]
async fn github_enterprise_template() {
    let e = env().await;
    let sealed = e.seal(&secret(
        github_processor(
            "https://ghe.example.test/api/v3/app/installations/{installation_id}/access_tokens",
        ),
        json!({"allowed_hosts": [e.host()]}),
    ));
    let got = e.exchange(&e.url("/"), &sealed).await;
    let (token, _) = got.sealed();
    let received = e.upstream.last_received();
    assert_eq!(
        received.uri(),
        "/api/v3/app/installations/789012/access_tokens"
    );
    // The installation token is pinned to the token URL's host, where the Enterprise
    // API lives (Go pins every installation token to api.github.com, useless there).
    let opened = Secret::open(&e.tk.open_keys(), &token).unwrap();
    assert_eq!(
        opened.hosts.allowed_hosts,
        Some(vec!["ghe.example.test".to_owned()])
    );
}

// === CONNECT and multi_processor ===

/// A tunnel to `oauth.test:80` opened with `sealed` and the right auth.
async fn tunnel(e: &Env, sealed: &str) -> RawConn {
    let auth = format!("Bearer {AUTH}");
    e.tunnel(
        "oauth.test:80",
        &[sealed],
        &[("proxy-authorization", &auth)],
    )
    .await
    .expect("a tunnel")
}

async fn tunnel_request(conn: &mut RawConn, method: &str, path: &str) -> RawResponse {
    conn.send(
        format!("{method} {path} HTTP/1.1\r\nHost: oauth.test\r\nContent-Length: 2\r\n\r\n{{}}")
            .as_bytes(),
    )
    .await;
    conn.read_response(false).await
}

fn sealed_of(resp: RawResponse) -> String {
    Reply::from(resp).sealed().0
}

#[tokio::test]
async fn exchanges_on_a_connect_are_sealed() {
    let e = env().await;
    let sealed = e.seal(&secret(
        jwt_processor(&rsa_key().pem),
        json!({"allowed_hosts": ["oauth.test:80"]}),
    ));
    let mut conn = tunnel(&e, &sealed).await;
    let resp = tunnel_request(&mut conn, "POST", "/token").await;
    assert!(!resp.text().contains("ya29"), "{}", resp.text());
    let token = sealed_of(resp);
    verify(
        &assertion(&e.upstream.last_received()),
        jsonwebtoken::Algorithm::RS256,
        &rsa_key().public_pem,
    );
    // A second exchange in the same tunnel is sealed too; a shape the processor does
    // not expect fails closed there as well.
    sealed_of(tunnel_request(&mut conn, "POST", "/token").await);
    let resp = tunnel_request(&mut conn, "POST", "/token/renamed").await;
    assert_eq!(resp.status, 502, "{}", resp.text());
    assert!(!resp.text().contains("ya29"));
    // The echo route answers 200 with the request it got, assertion included: not a
    // token response, so it never reaches the client.
    let resp = tunnel_request(&mut conn, "POST", "/").await;
    assert_eq!(resp.status, 502, "{}", resp.text());
    assert!(!resp.text().contains("assertion"), "{}", resp.text());

    // The sealed token inherited the CONNECT-level host rule: it works in a tunnel to
    // the same authority.
    let mut conn = tunnel(&e, &token).await;
    let resp = tunnel_request(&mut conn, "GET", "/").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echo = Echo::parse(&resp.text());
    assert_eq!(
        echo.header_all("authorization"),
        [format!("Bearer {GOOGLE}")]
    );
}

#[tokio::test]
async fn exchanges_inside_multi_processor_are_sealed() {
    let e = env().await;
    let multi = json!({"multi_processor": [
        {"inject_processor": {"token": "extra-header-value", "dst": "X-Extra"}},
        {"multi_processor": [cc_processor("")]},
    ]});
    let sealed = e.seal(&secret(multi.clone(), json!({})));
    let got = e.exchange(&e.url("/token/cc"), &sealed).await;
    let (token, _) = got.sealed();
    let received = e.upstream.last_received();
    assert_eq!(
        received.header("x-extra").unwrap(),
        "Bearer extra-header-value"
    );
    assert!(received.body().contains("grant_type=client_credentials"));
    let echo = e.use_token(&e.url("/"), &token).await;
    assert_eq!(
        echo.header_all("authorization"),
        [format!("Bearer {CC_TOKEN}")]
    );

    // A jwt in a multi on a CONNECT.
    let multi_jwt = e.seal(&secret(
        json!({"multi_processor": [jwt_processor(&rsa_key().pem)]}),
        json!({}),
    ));
    let mut conn = tunnel(&e, &multi_jwt).await;
    let resp = tunnel_request(&mut conn, "POST", "/token").await;
    assert!(!resp.text().contains("ya29"), "{}", resp.text());
    let token = sealed_of(resp);
    let opened = Secret::open(&e.tk.open_keys(), &token).unwrap();
    let ProcessorConfig::Inject(inject) = &opened.processor else {
        panic!("not inject");
    };
    assert_eq!(inject.token.expose(), GOOGLE);

    // Two exchanges for one request are refused before anything is sent.
    let before = e.upstream.received().len();
    let two = e.seal(&secret(
        json!({"multi_processor": [cc_processor(""), jwt_processor(&rsa_key().pem)]}),
        json!({}),
    ));
    let got = e.call("POST", &e.url("/token"), &two, Some(AUTH)).await;
    assert_eq!(got.status, 400, "{}", got.body);
    let mut req = e
        .client
        .post(e.url("/token"))
        .header("proxy-tokenizer", &sealed)
        .header(
            "proxy-tokenizer",
            e.seal(&secret(cc_processor(""), json!({}))),
        )
        .header("proxy-authorization", format!("Bearer {AUTH}"));
    req = req.body("");
    assert_eq!(req.send().await.unwrap().status(), 400);
    assert_eq!(e.upstream.received().len(), before);
}

// === fail closed ===

#[tokio::test]
async fn unexpected_token_responses_fail_closed() {
    let e = env().await;
    let jwt = e.seal(&secret(jwt_processor(&rsa_key().pem), json!({})));
    let cc = e.seal(&secret(cc_processor(""), json!({})));
    let cases = [
        (&jwt, "/token/renamed", 502),
        (&jwt, "/token/created", 502),
        (&jwt, "/token/not-json", 502),
        (&jwt, "/token/gzip", 502),
        (&jwt, "/token/form-500", 502),
        (&cc, "/token/renamed", 502),
        (&cc, "/token/form-500", 502),
        // An echo of the exchange request is no token response either.
        (&cc, "/", 502),
    ];
    for (sealed, path, status) in cases {
        let got = e.call("POST", &e.url(path), sealed, Some(AUTH)).await;
        assert_eq!(got.status, status, "{path}: {}", got.body);
        got.assert_no_plaintext();
        assert!(
            got.body.starts_with("bad gateway: "),
            "{path}: {}",
            got.body
        );
    }

    // A plain OAuth error passes through unchanged.
    for sealed in [&jwt, &cc] {
        let got = e
            .call("POST", &e.url("/token/invalid-grant"), sealed, Some(AUTH))
            .await;
        assert_eq!(got.status, 400);
        assert_eq!(got.body, r#"{"error":"invalid_grant"}"#);
        assert_eq!(got.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn unexpected_github_responses_fail_closed() {
    let e = env().await;
    for (path, status) in [("ok-200", 502), ("no-token", 502), ("unauthorized", 401)] {
        let sealed = e.seal(&secret(
            github_processor(&format!(
                "https://api.github.com/gh/{path}/{{installation_id}}"
            )),
            json!({}),
        ));
        let got = e
            .call("POST", "http://api.github.com/", &sealed, Some(AUTH))
            .await;
        assert_eq!(got.status, status, "{path}: {}", got.body);
        got.assert_no_plaintext();
        assert_eq!(
            e.upstream.last_received().uri(),
            format!("/gh/{path}/789012")
        );
        if status == 401 {
            assert!(got.body.contains("Bad credentials"), "{}", got.body);
        }
    }
}

// === bad input ===

#[tokio::test]
async fn bad_exchange_secrets_are_400_without_key_material() {
    let e = env().await;
    let (ec_pem, _) = p256_key();
    let not_pem = b64::encode(b"not-a-real-key");
    let cases = [
        (
            json!({"jwt_processor": {"private_key": not_pem, "email": "e@x"}}),
            "invalid PEM-encoded private key",
        ),
        (
            json!({"jwt_processor": {"email": "e@x"}}),
            "missing private key",
        ),
        (
            json!({"jwt_processor": {"private_key": b64::encode(rsa_key().pem.as_bytes())}}),
            "missing email",
        ),
        (
            json!({"client_credentials_processor": {"client_id": "id", "token_url": "https://t"}}),
            "missing client_secret",
        ),
        (
            json!({"client_credentials_processor": {"client_secret": CLIENT_SECRET, "token_url": "https://t"}}),
            "missing client_id",
        ),
        (
            json!({"client_credentials_processor": {"client_id": "id", "client_secret": CLIENT_SECRET}}),
            "missing token_url",
        ),
        (
            json!({"github_app_processor": {
                "private_key": b64::encode(ec_pem.as_bytes()), "app_id": "1", "installation_id": "2"}}),
            "GitHub App requires an RSA private key",
        ),
        (
            json!({"github_app_processor": {
                "private_key": b64::encode(rsa_key().pem.as_bytes()), "installation_id": "2"}}),
            "missing app_id",
        ),
        (
            json!({"github_app_processor": {
                "private_key": b64::encode(rsa_key().pem.as_bytes()), "app_id": "1"}}),
            "missing installation_id",
        ),
    ];
    let pem_line = rsa_key().pem.lines().nth(1).unwrap().to_owned();
    let ec_line = ec_pem.lines().nth(1).unwrap().to_owned();
    for (processor, want) in cases {
        let sealed = e.seal(&secret(processor, json!({})));
        let got = e.call("POST", &e.url("/token"), &sealed, Some(AUTH)).await;
        assert_eq!(got.status, 400, "{want}: {}", got.body);
        assert_eq!(got.body.trim(), format!("bad request: {want}"));
        for material in [&pem_line, &ec_line, CLIENT_SECRET, "not-a-real-key"] {
            assert!(!got.body.contains(material));
        }
    }
    assert!(e.upstream.received().is_empty(), "nothing was sent");
}

/// The real binary's logs, at trace level, hold no key, client secret, assertion or
/// token after exchanges, uses and failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_exchange_secrets() {
    let ca = TestCa::new();
    let upstream = Upstream::start(&ca, &["127.0.0.1", "api.github.com"]).await;
    let open = ::tokenizer::secret::OpenKey::generate();
    let open_hex = open.to_hex().to_string();
    let pin = upstream.pin(&["api.github.com"]);
    let server = Server::start_trusting(
        &ca,
        &open_hex,
        &["--log-format", "json", "--upstream-resolve", &pin],
        &[("RUST_LOG", "trace")],
    );
    let client = server.client();
    let seal = |v: &Value| seal_for(&open, v);
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", upstream.port());
    let post = |url: String, sealed: String| {
        client
            .post(url)
            .header("proxy-tokenizer", sealed)
            .header("proxy-authorization", format!("Bearer {AUTH}"))
            .body("{}")
            .send()
    };
    let mut bodies = Vec::new();
    let mut tokens = Vec::new();
    let jwt = seal(&secret(jwt_processor(&rsa_key().pem), json!({})));
    let cc = seal(&secret(cc_processor("read"), json!({})));
    let gh = seal(&secret(github_processor(""), json!({})));
    for (u, s) in [
        (url("/token"), &jwt),
        (url("/token/cc"), &cc),
        ("http://api.github.com/".to_owned(), &gh),
        (url("/token/form-500"), &jwt),
        (url("/token/renamed"), &cc),
    ] {
        let resp = post(u, s.clone()).await.unwrap();
        let text = resp.text().await.unwrap();
        if let Ok(v) = serde_json::from_str::<Value>(&text)
            && let Some(t) = v["sealed_token"].as_str()
        {
            tokens.push(t.to_owned());
        }
        bodies.push(text);
    }
    assert_eq!(tokens.len(), 3, "{bodies:?}");
    for (t, u) in tokens
        .iter()
        .zip([url("/"), url("/"), "http://api.github.com/".to_owned()])
    {
        let resp = client
            .get(u)
            .header("proxy-tokenizer", t)
            .header("proxy-authorization", format!("Bearer {AUTH}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let bad = seal(&secret(
        json!({"jwt_processor": {"private_key": b64::encode(b"not-a-real-key"), "email": "e"}}),
        json!({}),
    ));
    bodies.push(
        post(url("/token"), bad)
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );

    let assertions: Vec<String> = upstream
        .received()
        .iter()
        .filter_map(|r| {
            form_urlencoded::parse(r.body().as_bytes())
                .find(|(k, _)| k == "assertion")
                .map(|(_, v)| v.into_owned())
        })
        .chain(
            upstream
                .received()
                .iter()
                .filter_map(|r| r.header("authorization")),
        )
        .collect();
    assert!(assertions.len() >= 3, "{assertions:?}");
    let stopped = tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
    let mut forbidden: Vec<String> = vec![
        GOOGLE.to_owned(),
        CC_TOKEN.to_owned(),
        GHS.to_owned(),
        CLIENT_SECRET.to_owned(),
        b64::encode(CLIENT_SECRET.as_bytes()),
        b64::encode(rsa_key().pem.as_bytes()),
        "not-a-real-key".to_owned(),
        open_hex,
    ];
    forbidden.extend(rsa_key().pem.lines().skip(1).take(3).map(str::to_owned));
    // The JWTs' signatures (the claims are not secret, the signed whole is).
    forbidden.extend(
        assertions
            .iter()
            .map(|a| a.rsplit('.').next().unwrap().to_owned()),
    );
    for f in &forbidden {
        assert!(!stopped.stderr.contains(f.as_str()), "the log holds {f:?}");
        for b in &bodies {
            assert!(!b.contains(f.as_str()), "a response holds {f:?}: {b}");
        }
    }
    assert!(stopped.stderr.contains("REDACTED"));
}

/// An exchange secret without host rules goes only to its token_url host: a client
/// cannot send the client secret or a signed assertion to a server of its choosing.
#[tokio::test]
async fn unrestricted_exchange_secrets_are_pinned_to_their_token_url() {
    let e = env().await;
    let mut cc = cc_processor("");
    cc["client_credentials_processor"]["token_url"] = json!("https://oauth.test/token/cc");
    let pinned = e.seal(&with(cc, json!({"bearer_auth": bearer(AUTH)})));
    let got = e
        .call(
            "POST",
            &format!("http://{}/token/cc", e.host()),
            &pinned,
            Some(AUTH),
        )
        .await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert!(got.body.contains("secret not valid for"), "{}", got.body);
    assert!(!got.body.contains(CLIENT_SECRET));
    let got = e.exchange("http://oauth.test/token/cc", &pinned).await;
    assert_eq!(got.status, 200, "{}", got.body);
    got.sealed();
}
