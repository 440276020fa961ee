//! `macaroon_auth` through the running proxy: the Go checklist's macaroon items, plus
//! wrong keys, tampering, validity windows, unknown caveats, CONNECT tunnels and tokens
//! attenuated by the CLI.

use ::tokenizer::auth::MacaroonAuth;
use ::tokenizer::auth::macaroon::{Caveat, Macaroon};
use ::tokenizer::secret::b64;
use serde_json::json;

use crate::support::Env;
use crate::support::binary::run;
use crate::support::upstream::Echo;

const KEY: [u8; 32] = [9u8; 32];

/// A proxy, an upstream that is `127.0.0.1` and `api.test`, and a secret that injects
/// `supersecret` for callers holding a macaroon minted with `KEY`.
struct M {
    env: Env,
    sealed: String,
}

async fn env() -> M {
    let e = Env::builder()
        .names(&["127.0.0.1", "api.test"])
        .start()
        .await;
    let sealed = e.seal(&json!({
        "inject_processor": {"token": "supersecret"},
        "macaroon_auth": {"key": b64::encode(&KEY)},
    }));
    M { env: e, sealed }
}

impl M {
    fn host(&self) -> String {
        self.env.host()
    }

    async fn send(&self, method: &str, path: &str, auth: &str) -> (u16, String) {
        let got = self
            .env
            .send(
                method,
                path,
                &[&self.sealed],
                &[("proxy-authorization", auth)],
                "",
            )
            .await;
        (got.status, got.body)
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn mint(caveats: Vec<Caveat>) -> String {
    MacaroonAuth::new(KEY.to_vec()).mint(caveats).to_header()
}

#[tokio::test]
async fn go_checklist_caveats() {
    let e = env().await;
    // No caveats.
    let (status, body) = e.send("GET", "/", &mint(vec![])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        Echo::parse(&body).header("authorization").unwrap(),
        "Bearer supersecret"
    );
    // POST + host + path on POST /foo.
    let scoped = || {
        vec![
            Caveat::RequestMethod(strings(&["POST"])),
            Caveat::RequestHost(vec![e.host()]),
            Caveat::RequestPath(strings(&["/foo"])),
        ]
    };
    assert_eq!(e.send("POST", "/foo", &mint(scoped())).await.0, 200);
    // Method GET / host fly.io / path /bar: each refused.
    assert_eq!(e.send("GET", "/foo", &mint(scoped())).await.0, 407);
    assert_eq!(e.send("POST", "/bar", &mint(scoped())).await.0, 407);
    let wrong_host = mint(vec![Caveat::RequestHost(strings(&["fly.io"]))]);
    let (status, body) = e.send("POST", "/foo", &wrong_host).await;
    assert_eq!(status, 407);
    assert!(body.contains("not allowed"), "{body}");
}

#[tokio::test]
async fn prefixes_patterns_and_attenuation_narrow_access() {
    let e = env().await;
    let prefix = mint(vec![Caveat::RequestPathPrefix(strings(&["/v1/"]))]);
    assert_eq!(e.send("GET", "/v1/models", &prefix).await.0, 200);
    assert_eq!(e.send("GET", "/v2/models", &prefix).await.0, 407);
    let pattern = mint(vec![Caveat::RequestPathPattern(strings(&[
        "^/repos/[^/]+/issues$",
    ]))]);
    assert_eq!(e.send("GET", "/repos/x/issues", &pattern).await.0, 200);
    assert_eq!(e.send("GET", "/repos/x/pulls", &pattern).await.0, 407);

    // Anyone holding a token can narrow it without the key (the CLI here).
    let broad = mint(vec![]);
    let out = run(&[
        "macaroon",
        "attenuate",
        "--token",
        &broad,
        "--method",
        "GET",
    ])
    .ok();
    let narrow = out.stdout.trim().to_owned();
    assert!(narrow.starts_with("FlyV1 fm2_"), "{narrow}");
    assert_eq!(e.send("GET", "/", &narrow).await.0, 200);
    assert_eq!(e.send("DELETE", "/", &narrow).await.0, 407);
}

#[tokio::test]
async fn wrong_keys_tampering_and_windows_are_407() {
    let e = env().await;
    let other = MacaroonAuth::new(vec![1u8; 32]).mint(vec![]).to_header();
    let (status, body) = e.send("GET", "/", &other).await;
    assert_eq!(status, 407);
    assert!(body.contains("different key"), "{body}");

    // Strip a caveat by re-encoding the token without it: the HMAC chain breaks.
    let limited =
        MacaroonAuth::new(KEY.to_vec()).mint(vec![Caveat::RequestMethod(strings(&["GET"]))]);
    let mut bytes = limited.to_bytes().to_vec();
    let pos = bytes
        .windows(3)
        .position(|w| w == b"GET")
        .expect("caveat body");
    bytes[pos..pos + 3].copy_from_slice(b"PUT");
    let tampered = format!("FlyV1 fm2_{}", b64::encode(&bytes));
    let (status, body) = e.send("PUT", "/", &tampered).await;
    assert_eq!(status, 407);
    assert!(body.contains("bad macaroon signature"), "{body}");

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expired = mint(vec![Caveat::ValidityWindow {
        not_before: now - 100,
        not_after: now - 10,
    }]);
    let (status, body) = e.send("GET", "/", &expired).await;
    assert_eq!((status, body.contains("expired")), (407, true), "{body}");
    let early = mint(vec![Caveat::ValidityWindow {
        not_before: now + 100,
        not_after: now + 200,
    }]);
    assert_eq!(e.send("GET", "/", &early).await.0, 407);
    let current = mint(vec![Caveat::ValidityWindow {
        not_before: now - 10,
        not_after: now + 100,
    }]);
    assert_eq!(e.send("GET", "/", &current).await.0, 200);

    let unknown = mint(vec![Caveat::Unsupported {
        type_id: 99,
        body: vec![0x90],
    }]);
    let (status, body) = e.send("GET", "/", &unknown).await;
    assert_eq!(status, 407);
    assert!(body.contains("unsupported caveat"), "{body}");

    let (status, _) = e.send("GET", "/", "FlyV1 fm2_!!!").await;
    assert_eq!(status, 407);
    let (status, body) = e.send("GET", "/", "Bearer not-a-macaroon").await;
    assert_eq!(status, 407);
    assert!(body.contains("no macaroon"), "{body}");
    let (_, body) = e.send("GET", "/", &other).await;
    assert!(!body.contains(&b64::encode(&KEY)));
    assert_eq!(e.env.upstream.connection_count(), 1);
}

#[tokio::test]
async fn one_good_token_among_several_is_enough() {
    let e = env().await;
    let good = MacaroonAuth::new(KEY.to_vec()).mint(vec![]).encode();
    let bad = MacaroonAuth::new(vec![1u8; 32]).mint(vec![]).encode();
    let bundle = format!("FlyV1 {bad},{good}");
    assert_eq!(e.send("GET", "/", &bundle).await.0, 200);
    let decoded = Macaroon::decode(&good).unwrap();
    assert_eq!(decoded.location(), "tokenizer");
}

#[tokio::test]
async fn caveats_are_checked_on_each_request_in_a_tunnel() {
    let e = env().await;
    // Secrets on a CONNECT see the CONNECT authority as their host, port included (Go).
    let token = mint(vec![
        Caveat::RequestMethod(strings(&["GET"])),
        Caveat::RequestHost(strings(&["api.test:80"])),
    ]);
    let mut conn = e
        .env
        .tunnel(
            "api.test:80",
            &[&e.sealed],
            &[("proxy-authorization", &token)],
        )
        .await
        .unwrap();
    conn.send(b"GET /inside HTTP/1.1\r\nHost: api.test\r\n\r\n")
        .await;
    let resp = conn.read_response(false).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    conn.send(b"POST /inside HTTP/1.1\r\nHost: api.test\r\nContent-Length: 0\r\n\r\n")
        .await;
    assert_eq!(conn.read_response(false).await.status, 407);
}
