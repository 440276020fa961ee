use super::derived::site;
use super::response::{DEFAULT_LIFETIME, carries_token, github_token, oauth_token};
use super::*;

#[test]
fn spots_tokens_in_unexpected_shapes() {
    assert!(carries_token(br#"{"access_token":"x"}"#));
    assert!(carries_token(br#"{"data":{"Token":"x"}}"#));
    assert!(carries_token(br#"[{"id_token":"x"}]"#));
    assert!(carries_token(b"access_token=x&token_type=bearer"));
    assert!(!carries_token(
        br#"{"error":"invalid_grant","error_description":"bad"}"#
    ));
    assert!(!carries_token(br#"{"token":null}"#));
    assert!(!carries_token(b"Bad Request"));
    // Quoted inside other text or JSON strings.
    assert!(carries_token(b"error: access_token=x"));
    assert!(carries_token(b"<pre>{\"access_token\": \"x\"}</pre>"));
    assert!(carries_token(br#"{"detail":"{\"token\":\"x\"}"}"#));
    assert!(carries_token(br#"{"detail":"refresh_token: x"}"#));
    assert!(carries_token(b"access%5Ftoken=x"));
    // Prose about tokens is not a token.
    assert!(!carries_token(
        br#"{"error":"invalid_grant","error_description":"The access_token is invalid"}"#
    ));
    assert!(!carries_token(br#"{"message":"invalid token: expired"}"#));
    assert!(!carries_token(b"bad token_type=x; mytoken=y"));
}

// === sealing, end to end on a response ===

use http::HeaderMap;
use http_body_util::BodyExt;
use serde_json::Value;

use tokenizer_core::{OpenKey, OpenKeys, SecretString};
use tokenizer_processor::processor::{ClientCredentialsConfig, JwtConfig, Step};

const YA29: &str = "ya29.test-access-token-from-google";
const GHS: &str = "ghs_installationtokenXYZ";

struct Keys {
    open: OpenKeys,
    seal: SealKey,
}

fn keys() -> Keys {
    let key = OpenKey::generate();
    let seal = key.seal_key();
    Keys {
        open: OpenKeys::new(key, Vec::new()),
        seal,
    }
}

/// The exchange secret: jwt (or GitHub) bound to bearer "trustno1", two hosts, an id.
fn exchange_secret(processor: Value) -> Secret {
    let mut v = json!({
        "bearer_auth": {"digest": "IDtwta6IOTIWG70L3tk1fnY+Y6/OmLFiML4z8LlMLMU="},
        "allowed_hosts": ["oauth2.googleapis.com", "127.0.0.1:8443"],
        "allowed_methods": ["POST"],
        "id": "svc-1",
    });
    v.as_object_mut()
        .unwrap()
        .extend(processor.as_object().unwrap().clone());
    Secret::from_json(v.to_string().as_bytes()).unwrap()
}

fn jwt_secret() -> Secret {
    exchange_secret(json!({"jwt_processor": JwtConfig {
        email: "svc@example.com".to_owned(),
        ..JwtConfig::default()
    }}))
}

const PARENT_DIGEST: &str = "0123456789abcdef";
const PARENT_LIMIT_KEY: [u8; 32] = [7; 32];

fn sealer(kind: Exchange, secret: &Secret) -> TokenSealer {
    TokenSealer::new(kind, secret, PARENT_DIGEST, &PARENT_LIMIT_KEY)
}

fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Body> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body::full(body.to_owned())).unwrap()
}

async fn seal(
    sealer: &TokenSealer,
    keys: &Keys,
    resp: Response<Body>,
) -> Result<(StatusCode, HeaderMap, String), TokenResponseError> {
    let budget = Budget::new(1 << 30);
    let (head, body) = sealer.seal(resp, &keys.seal, &budget).await?.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Ok((
        head.status,
        head.headers,
        String::from_utf8(bytes.to_vec()).unwrap(),
    ))
}

/// Check the sealed body's shape; return the opened secret and the shown lifetime.
fn opened(keys: &Keys, headers: &HeaderMap, body: &str) -> (Secret, i64) {
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["content-length"], body.len().to_string().as_str());
    let v: Value = serde_json::from_str(body).unwrap();
    let obj = v.as_object().unwrap();
    assert_eq!(
        obj.keys().collect::<Vec<_>>(),
        ["sealed_token", "expires_in", "token_type"]
    );
    assert_eq!(v["token_type"], "sealed");
    let sealed = v["sealed_token"].as_str().unwrap();
    assert!(!sealed.is_empty());
    let secret = Secret::open(&keys.open, sealed).expect("sealed for this tokenizer");
    (secret, v["expires_in"].as_i64().unwrap())
}

fn inject_of(secret: &Secret) -> &InjectConfig {
    match &secret.processor {
        ProcessorConfig::Inject(c) => c,
        other => panic!("not an inject secret: {other:?}"),
    }
}

#[tokio::test]
async fn oauth_200_is_sealed_into_an_inject_secret() {
    let keys = keys();
    let original = jwt_secret();
    let sealer = sealer(Exchange::OAuth, &original);
    let body = json!({"access_token": YA29, "expires_in": 3600, "token_type": "Bearer",
        "refresh_token": "1//refresh-never-shown", "id_token": "eyJ.never.shown"});
    let (status, headers, text) = seal(
        &sealer,
        &keys,
        response(
            200,
            &[
                ("content-type", "application/json; charset=utf-8"),
                ("content-length", "999"),
                ("cache-control", "no-store"),
            ],
            &body.to_string(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    for leak in [YA29, "refresh-never-shown", "never.shown"] {
        assert!(!text.contains(leak), "{text}");
    }
    let (secret, shown) = opened(&keys, &headers, &text);
    assert_eq!(shown, 3540);
    let inject = inject_of(&secret);
    assert_eq!(inject.token.expose(), YA29);
    assert_eq!(inject.fmt_dst, FmtDst::default());
    // The original auth, validators and rules are inherited: a derived token is
    // never broader than its parent.
    assert_eq!(secret.auth, original.auth);
    assert_eq!(secret.hosts, original.hosts);
    assert_eq!(secret.policy.derived_from.as_deref(), Some(PARENT_DIGEST));
    assert_eq!(
        secret.policy.rate_limit_key, None,
        "the parent has no limit"
    );
    let json = secret.to_json();
    assert!(json.contains("bearer_auth"), "{}", json.as_str());
    assert!(json.contains("oauth2.googleapis.com"), "{}", json.as_str());
    assert!(json.contains("127.0.0.1:8443"), "{}", json.as_str());
    assert_eq!(secret.policy.allowed_methods, Some(vec!["POST".to_owned()]));
    assert_eq!(secret.policy.id.as_deref(), Some("svc-1"));
    let expires_at = secret.policy.expires_at.expect("expires_at");
    let now = now_unix();
    assert!(
        (now + 3595..=now + 3601).contains(&expires_at),
        "{expires_at}"
    );
    // It builds into `Authorization: Bearer <token>`.
    let mut steps = Vec::new();
    secret
        .processor
        .build(&tokenizer_core::Params::new(), &mut steps)
        .unwrap();
    let Step::SetHeader { name, value } = &steps[0] else {
        panic!("{steps:?}");
    };
    assert_eq!(name, "authorization");
    assert_eq!(value, format!("Bearer {YA29}").as_str());
}

#[tokio::test]
async fn client_credentials_lifetimes() {
    let keys = keys();
    let original = exchange_secret(json!({"client_credentials_processor":
    ClientCredentialsConfig {
        client_id: "id".to_owned(),
        client_secret: SecretString::new("cs"),
        token_url: "https://t".to_owned(),
        scopes: String::new(),
    }}));
    let sealer = sealer(original.processor.exchange().unwrap(), &original);
    for (expires_in, shown, lifetime) in [
        (json!(7200), 7140, 7200),
        (json!("7200"), 7140, 7200),
        (json!(61), 1, 61),
        (json!(60), 60, 60),
        (json!(30), 30, 30),
        (json!(0), 3540, 3600),
        (json!(-5), 3540, 3600),
        (json!(null), 3540, 3600),
        (json!("soon"), 3540, 3600),
    ] {
        let body = json!({"access_token": "hs-access-token-xyz", "expires_in": expires_in});
        let (status, headers, text) = seal(&sealer, &keys, response(200, &[], &body.to_string()))
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert!(!text.contains("hs-access-token-xyz"));
        let (secret, got) = opened(&keys, &headers, &text);
        assert_eq!(got, shown, "{expires_in}");
        assert!(got > 0 && got <= 7200);
        assert_eq!(inject_of(&secret).token.expose(), "hs-access-token-xyz");
        let at = secret.policy.expires_at.unwrap() - now_unix();
        assert!(
            (lifetime - 5..=lifetime).contains(&at),
            "{expires_in}: {at}"
        );
    }
}

#[tokio::test]
async fn github_201_is_pinned_to_api_github_com() {
    let keys = keys();
    // Without any validator on the original, and with other hosts on it: the
    // sealed token is always pinned to api.github.com alone.
    for extra in [
        json!({}),
        json!({"allowed_hosts": ["evil.example"], "allowed_host_pattern": ".*"}),
    ] {
        let mut v = json!({
            "github_app_processor": {"app_id": "123456", "installation_id": "789012"},
            "bearer_auth": {"digest": "IDtwta6IOTIWG70L3tk1fnY+Y6/OmLFiML4z8LlMLMU="},
        });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let original = Secret::from_json(v.to_string().as_bytes()).unwrap();
        let sealer = sealer(Exchange::GitHubApp, &original);
        let expires_at = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let body = json!({
            "token": GHS,
            "expires_at": expires_at.format(&time::format_description::well_known::Rfc3339).unwrap(),
            "permissions": {"contents": "read"},
        });
        let (status, headers, text) = seal(&sealer, &keys, response(201, &[], &body.to_string()))
            .await
            .unwrap();
        assert_eq!(status, 201);
        assert!(!text.contains(GHS), "{text}");
        let (secret, shown) = opened(&keys, &headers, &text);
        assert!((3535..=3540).contains(&shown), "{shown}");
        let inject = inject_of(&secret);
        assert_eq!(inject.token.expose(), GHS);
        assert_eq!(inject.fmt_dst.fmt, "token %s");
        assert_eq!(secret.auth, original.auth);
        assert_eq!(
            secret.hosts,
            HostRules {
                allowed_hosts: Some(vec!["api.github.com".to_owned()]),
                allowed_host_pattern: None,
            }
        );
        let json = secret.to_json();
        assert!(json.contains("bearer_auth") && json.contains("api.github.com"));
        assert!(!json.contains("evil.example"));
    }
}

#[test]
fn derived_tokens_keep_every_rule_and_never_go_anywhere() {
    let parent = Secret::from_json(
        json!({
            "client_credentials_processor": {"client_id": "i", "client_secret": "s",
                "token_url": "https://oauth2.googleapis.com/token"},
            "no_auth": {},
            "allowed_methods": ["GET"],
            "allowed_paths": ["/v1/**"],
            "rate_limit": "5/min",
            "pii": {"action": "block"},
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let derived = sealer(Exchange::OAuth, &parent).sealed_secret(SecretString::new("t"), 60);
    assert_eq!(
        derived.policy.allowed_methods,
        parent.policy.allowed_methods
    );
    assert_eq!(derived.policy.allowed_paths, parent.policy.allowed_paths);
    assert_eq!(derived.policy.rate_limit, parent.policy.rate_limit);
    assert_eq!(derived.policy.pii, parent.policy.pii);
    assert_eq!(
        derived.policy.rate_limit_key.as_deref(),
        Some(hex::encode(PARENT_LIMIT_KEY).as_str())
    );
    assert!(
        !derived
            .stripped_json()
            .contains(&hex::encode(PARENT_LIMIT_KEY))
    );
    // The parent had no host rule: the token stays on the token URL's site.
    for (host, ok) in [
        ("www.googleapis.com", true),
        ("storage.googleapis.com:443", true),
        ("googleapis.com", true),
        ("evil.example", false),
        ("googleapis.com.evil.example", false),
        ("evilgoogleapis.com", false),
    ] {
        assert_eq!(derived.hosts.check(host).is_ok(), ok, "{host}");
    }
    for (url, host, ok) in [
        ("https://127.0.0.1:8443/token", "127.0.0.1:8443", true),
        ("https://127.0.0.1:8443/token", "127.0.0.2", false),
        ("https://localhost/token", "localhost", true),
        ("https://localhost/token", "evil.localhost", false),
    ] {
        let p = Secret::from_json(
            json!({"client_credentials_processor": {"client_id": "i",
                "client_secret": "s", "token_url": url}, "no_auth": {}})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            derived_hosts(Exchange::OAuth, &p).check(host).is_ok(),
            ok,
            "{url} {host}"
        );
    }
}

#[test]
fn sites_follow_the_whole_public_suffix_list() {
    for (host, domain) in [
        ("oauth2.googleapis.com", Some("googleapis.com")),
        ("api.github.com", Some("github.com")),
        ("login.microsoftonline.com", Some("microsoftonline.com")),
        ("auth.example.co.uk", Some("example.co.uk")),
        ("example.com", Some("example.com")),
        ("co.uk", None),
        ("localhost", None),
        // Shared hosting: each customer's name is a site of its own.
        ("auth-myco.fly.dev", Some("auth-myco.fly.dev")),
        ("login.auth-myco.fly.dev", Some("auth-myco.fly.dev")),
        ("auth-myco.herokuapp.com", Some("auth-myco.herokuapp.com")),
        ("myco.github.io", Some("myco.github.io")),
        ("fly.dev", None),
        ("Auth-MyCo.Fly.Dev", Some("Auth-MyCo.Fly.Dev")),
    ] {
        assert_eq!(site(host), domain, "{host}");
    }
}

#[test]
fn a_token_from_a_shared_hosting_domain_stays_with_its_tenant() {
    for (token_url, own, strangers) in [
        (
            "https://auth-myco.fly.dev/oauth/token",
            ["auth-myco.fly.dev", "api.auth-myco.fly.dev"],
            ["evil-attacker.fly.dev", "fly.dev"],
        ),
        (
            "https://auth-myco.herokuapp.com/token",
            ["auth-myco.herokuapp.com", "v2.auth-myco.herokuapp.com"],
            ["evil.herokuapp.com", "herokuapp.com"],
        ),
    ] {
        let p = Secret::from_json(
            json!({"client_credentials_processor": {"client_id": "i",
                "client_secret": "s", "token_url": token_url}, "no_auth": {}})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let hosts = derived_hosts(Exchange::OAuth, &p);
        for host in own {
            assert!(hosts.check(host).is_ok(), "{token_url}: {host}");
        }
        for host in strangers {
            assert!(hosts.check(host).is_err(), "{token_url}: {host}");
        }
    }
}

#[tokio::test]
async fn github_without_expiry_lasts_an_hour() {
    let keys = keys();
    let original = exchange_secret(json!({"github_app_processor": {"app_id": "1"}}));
    let sealer = sealer(Exchange::GitHubApp, &original);
    let (_, headers, text) = seal(
        &sealer,
        &keys,
        response(201, &[], &json!({"token": GHS}).to_string()),
    )
    .await
    .unwrap();
    assert_eq!(opened(&keys, &headers, &text).1, 3540);
}

#[tokio::test]
async fn errors_pass_through_unchanged() {
    let keys = keys();
    let oauth = sealer(Exchange::OAuth, &jwt_secret());
    let github = sealer(Exchange::GitHubApp, &jwt_secret());
    let cases = [
        (
            &oauth,
            400,
            r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
        ),
        (&oauth, 401, r#"{"error":"invalid_client"}"#),
        (&oauth, 503, "Service Unavailable"),
        (&oauth, 204, ""),
        (
            &github,
            401,
            r#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}"#,
        ),
        (&github, 404, r#"{"message":"Not Found"}"#),
    ];
    for (sealer, status, body) in cases {
        let (got, headers, text) = seal(
            sealer,
            &keys,
            response(
                status,
                &[("content-type", "application/json"), ("x-request-id", "r1")],
                body,
            ),
        )
        .await
        .unwrap();
        assert_eq!(got, status);
        assert_eq!(text, body);
        assert_eq!(headers["x-request-id"], "r1");
        assert_eq!(headers["content-type"], "application/json");
    }
}

/// Anything token-shaped the processor does not expect is refused, never passed on.
#[tokio::test]
async fn unexpected_shapes_fail_closed() {
    use TokenResponseError::*;
    let keys = keys();
    let oauth = sealer(Exchange::OAuth, &jwt_secret());
    let github = sealer(Exchange::GitHubApp, &jwt_secret());
    let gzip = [("content-encoding", "gzip")];
    /// Sealer, status, headers, body, and the refusal expected.
    type Case<'a> = (
        &'a TokenSealer,
        u16,
        &'a [(&'a str, &'a str)],
        &'a str,
        TokenResponseError,
    );
    let cases: Vec<Case<'_>> = vec![
        // The expected status, but not the expected shape.
        (
            &oauth,
            200,
            &[],
            r#"{"accessToken":"ya29.leak1"}"#,
            MissingToken("access_token"),
        ),
        (
            &oauth,
            200,
            &[],
            r#"{"token":"ya29.leak2"}"#,
            MissingToken("access_token"),
        ),
        (
            &oauth,
            200,
            &[],
            r#"{"data":{"access_token":"ya29.leak3"}}"#,
            MissingToken("access_token"),
        ),
        (
            &oauth,
            200,
            &[],
            r#"{"access_token":""}"#,
            MissingToken("access_token"),
        ),
        (&oauth, 200, &[], r#"{"access_token":12345}"#, NotJson),
        (
            &oauth,
            200,
            &[],
            "access_token=ya29.leak4&token_type=bearer",
            NotJson,
        ),
        (&oauth, 200, &[], "<html>ya29.leak5</html>", NotJson),
        (&oauth, 200, &[], "", NotJson),
        (
            &oauth,
            200,
            &gzip,
            r#"{"access_token":"ya29.leak6"}"#,
            Encoded,
        ),
        (
            &github,
            201,
            &[],
            r#"{"access_token":"ghs_leak7"}"#,
            MissingToken("token"),
        ),
        (
            &github,
            201,
            &[],
            r#"{"message":"created"}"#,
            MissingToken("token"),
        ),
        (&github, 201, &[], "token=ghs_leak8", NotJson),
        // Another status, carrying a token.
        (
            &oauth,
            201,
            &[],
            r#"{"access_token":"ya29.leak9","expires_in":3600}"#,
            Unexpected,
        ),
        (
            &oauth,
            500,
            &[],
            "access_token=ya29.leak10&token_type=bearer",
            Unexpected,
        ),
        (
            &oauth,
            302,
            &[],
            r#"{"Refresh_Token":"1//leak11"}"#,
            Unexpected,
        ),
        (&oauth, 400, &[], r#"[{"id_token":"leak12"}]"#, Unexpected),
        (&oauth, 400, &gzip, r#"{"error":"x"}"#, Unexpected),
        (
            &github,
            200,
            &[],
            r#"{"token":"ghs_leak13","expires_at":"2999-01-01T00:00:00Z"}"#,
            Unexpected,
        ),
    ];
    for (sealer, status, headers, body, want) in cases {
        let got = seal(sealer, &keys, response(status, headers, body)).await;
        assert_eq!(got.unwrap_err(), want, "{status} {body}");
        assert!(!want.to_string().contains("leak"));
    }
}

/// Text around the form, or a JSON string that embeds a token response, still
/// carries the token.
#[tokio::test]
async fn embedded_tokens_in_error_bodies_fail_closed() {
    let keys = keys();
    let oauth = sealer(Exchange::OAuth, &jwt_secret());
    for body in [
        "upstream error; echo: access_token=ya29.leak&token_type=bearer",
        "error\naccess_token=ya29.leak",
        r#"{"error":"server_error","detail":"{\"access_token\":\"ya29.leak\"}"}"#,
        r#"{"error":"server_error","detail":"access_token=ya29.leak"}"#,
    ] {
        let got = seal(&oauth, &keys, response(500, &[], body)).await;
        assert_eq!(got.unwrap_err(), TokenResponseError::Unexpected, "{body}");
    }
}

#[tokio::test]
async fn oversized_responses_are_refused() {
    let keys = keys();
    let oauth = sealer(Exchange::OAuth, &jwt_secret());
    let big = format!(
        r#"{{"access_token":"ya29.x","pad":"{}"}}"#,
        "a".repeat(MAX_TOKEN_RESPONSE)
    );
    for status in [200, 400] {
        let got = seal(&oauth, &keys, response(status, &[], &big)).await;
        assert_eq!(got.unwrap_err(), TokenResponseError::TooLarge);
    }
}

#[tokio::test]
async fn sealed_tokens_never_outlive_the_exchange_secret() {
    let keys = keys();
    let mut secret = jwt_secret();
    let soon = now_unix() + 120;
    secret.policy.expires_at = Some(soon);
    let sealer = sealer(Exchange::OAuth, &secret);
    let resp = response(200, &[], r#"{"access_token":"ya29.x","expires_in":3600}"#);
    let (_, headers, body) = seal(&sealer, &keys, resp).await.unwrap();
    let (opened, _) = opened(&keys, &headers, &body);
    assert_eq!(opened.policy.expires_at, Some(soon));
}

#[test]
fn exchange_hosts_come_from_token_url() {
    let jwt: ProcessorConfig =
        serde_json::from_value(json!({"jwt_processor": {"email": "e"}})).unwrap();
    assert_eq!(
        jwt.exchange_host().as_deref(),
        Some("oauth2.googleapis.com")
    );
    let cc: ProcessorConfig = serde_json::from_value(
        json!({"client_credentials_processor": {"token_url": "https://Auth.Example.com:8443/t"}}),
    )
    .unwrap();
    assert_eq!(cc.exchange_host().as_deref(), Some("auth.example.com"));
    let gh: ProcessorConfig = serde_json::from_value(json!({"github_app_processor": {}})).unwrap();
    assert_eq!(gh.exchange_host().as_deref(), Some("api.github.com"));
    let inject: ProcessorConfig =
        serde_json::from_value(json!({"inject_processor": {"token": "t"}})).unwrap();
    assert_eq!(inject.exchange_host(), None);
}

#[test]
fn reads_lifetimes() {
    let (t, n) = oauth_token(br#"{"access_token":"a","expires_in":3599}"#).unwrap();
    assert_eq!((t.expose(), n), ("a", 3599));
    assert_eq!(
        oauth_token(br#"{"access_token":"a","expires_in":"120"}"#)
            .unwrap()
            .1,
        120
    );
    assert_eq!(
        oauth_token(br#"{"access_token":"a"}"#).unwrap().1,
        DEFAULT_LIFETIME
    );
    assert_eq!(
        oauth_token(br#"{"token":"a"}"#).unwrap_err(),
        TokenResponseError::MissingToken("access_token")
    );
    assert_eq!(
        oauth_token(b"<html>").unwrap_err(),
        TokenResponseError::NotJson
    );
    let (_, n) = github_token(br#"{"token":"ghs","expires_at":"2999-01-01T00:00:00Z"}"#).unwrap();
    assert!(n > 3600);
    assert_eq!(
        github_token(br#"{"token":"ghs","expires_at":"2000-01-01T00:00:00Z"}"#)
            .unwrap()
            .1,
        DEFAULT_LIFETIME
    );
}
