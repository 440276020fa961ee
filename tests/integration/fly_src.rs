//! `fly_src_auth` with USE_FLYSRC / REQUIRE_FLYSRC: Ed25519-signed Fly-Src headers
//! (spec §4), through absolute-form, transparent and CONNECT requests.

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};

use crate::support::raw::RawConn;
use crate::support::upstream::Echo;
use crate::support::{Env, with};
use ::tokenizer::secret::b64;

/// fly-proxy's signing key, a tokenizer that trusts it, and an upstream.
struct Fly {
    env: Env,
    key: SigningKey,
    _dir: tempfile::TempDir,
}

async fn env(extra: &[&str]) -> Fly {
    let key = SigningKey::from_bytes(&[42u8; 32]);
    let dir = tempfile::tempdir().unwrap();
    let pub_file = dir.path().join("fly-src.pub");
    std::fs::write(
        &pub_file,
        format!("{}\n", hex::encode(key.verifying_key().as_bytes())),
    )
    .unwrap();
    let mut flags = vec![
        "--use-flysrc",
        "--flysrc-public-key-file",
        pub_file.to_str().unwrap(),
    ];
    if !extra.contains(&"--flysrc-proxy-nets") {
        flags.extend(["--flysrc-proxy-nets", "127.0.0.0/8"]);
    }
    flags.extend_from_slice(extra);
    let env = Env::builder()
        .names(&["api.test"])
        .flags(&flags)
        .start()
        .await;
    Fly {
        env,
        key,
        _dir: dir,
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `(Fly-Src, Fly-Src-Signature)` for org/app/instance at `ts`.
fn fly_src(key: &SigningKey, org: &str, ts: i64) -> (String, String) {
    let src = format!("instance=m8e2;app=sandbox;org={org};ts={ts}");
    let sig = b64::encode(&key.sign(src.as_bytes()).to_bytes());
    (src, sig)
}

/// The `Fly-Src` and `Fly-Src-Signature` headers.
fn signed<'a>(src: &'a str, sig: &'a str) -> [(&'static str, &'a str); 2] {
    [("fly-src", src), ("fly-src-signature", sig)]
}

fn secret(orgs: &[&str]) -> Value {
    with(
        json!({"inject_processor": {"token": "supersecret"}}),
        json!({"fly_src_auth": {"allowed_orgs": orgs, "allowed_apps": ["sandbox"], "allowed_instances": null}}),
    )
}

impl Fly {
    /// A secret for org `foo`, and a fresh `Fly-Src` for `foo` that fly-proxy signed.
    fn foo(&self) -> (String, String, String) {
        let (src, sig) = fly_src(&self.key, "foo", now());
        (self.env.seal(&secret(&["foo"])), src, sig)
    }

    async fn get(&self, sealed: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let got = self.env.get("/", &[sealed], headers).await;
        (got.status, got.body)
    }
}

#[tokio::test]
async fn a_valid_signed_fly_src_authorizes_and_is_forwarded() {
    let e = env(&[]).await;
    let (sealed, src, sig) = e.foo();
    let (status, body) = e.get(&sealed, &signed(&src, &sig)).await;
    assert_eq!(status, 200, "{body}");
    let echo = Echo::parse(&body);
    assert_eq!(echo.header("authorization").unwrap(), "Bearer supersecret");
    assert_eq!(echo.header("fly-src").unwrap(), src);
    assert_eq!(echo.header("fly-src-signature").unwrap(), sig);
}

#[tokio::test]
async fn wrong_org_forgery_replay_and_missing_signature_are_407() {
    let e = env(&[]).await;
    let sealed = e.env.seal(&secret(&["foo"]));
    let t = now();
    let (src, sig) = fly_src(&e.key, "WRONG!", t);
    let (status, body) = e.get(&sealed, &signed(&src, &sig)).await;
    assert_eq!(
        (status, body.trim()),
        (
            407,
            "unauthorized to use secret: not authorized: org WRONG! not allowed"
        )
    );

    let forger = SigningKey::from_bytes(&[1u8; 32]);
    let (src, sig) = fly_src(&forger, "foo", t);
    let (status, body) = e.get(&sealed, &signed(&src, &sig)).await;
    assert_eq!(status, 407);
    assert!(body.contains("bad fly-src signature"), "{body}");

    let (src, sig) = fly_src(&e.key, "foo", t - 31);
    let (status, body) = e.get(&sealed, &signed(&src, &sig)).await;
    assert_eq!(status, 407);
    assert!(body.contains("too old"), "{body}");

    let (src, _) = fly_src(&e.key, "foo", t);
    let (status, _) = e.get(&sealed, &[("fly-src", &src)]).await;
    assert_eq!(status, 407);

    // A signed header for another org cannot be edited into ours.
    let (src, sig) = fly_src(&e.key, "bar", t);
    let edited = src.replace("org=bar", "org=foo");
    let (status, _) = e.get(&sealed, &signed(&edited, &sig)).await;
    assert_eq!(status, 407);
    assert_eq!(e.env.upstream.connection_count(), 0);
}

#[tokio::test]
async fn without_use_flysrc_fly_src_auth_fails_closed() {
    let e = Env::builder().names(&["api.test"]).start().await;
    let key = SigningKey::from_bytes(&[42u8; 32]);
    let (src, sig) = fly_src(&key, "foo", now());
    let got = e
        .get("/", &[&e.seal(&secret(&["foo"]))], &signed(&src, &sig))
        .await;
    assert_eq!(got.status, 407);
    assert!(got.body.contains("no flysrc parser"));
}

#[tokio::test]
async fn fly_src_must_come_from_the_proxy_networks() {
    let e = env(&["--flysrc-proxy-nets", "172.16.0.0/16"]).await;
    let (sealed, src, sig) = e.foo();
    let (status, body) = e.get(&sealed, &signed(&src, &sig)).await;
    assert_eq!(status, 407);
    assert!(body.contains("not from fly-proxy"), "{body}");
}

#[tokio::test]
async fn require_flysrc_refuses_requests_without_one() {
    let e = env(&["--require-flysrc"]).await;
    let bearer = e
        .env
        .seal(&crate::support::inject("supersecret", "trustno1"));
    let (status, body) = e
        .get(&bearer, &[("proxy-authorization", "Bearer trustno1")])
        .await;
    assert_eq!(status, 400);
    assert!(body.starts_with("bad request: Fly-Src required"), "{body}");
    let (src, sig) = fly_src(&e.key, "anyone", now());
    let (status, _) = e
        .get(
            &bearer,
            &[
                ("proxy-authorization", "Bearer trustno1"),
                ("fly-src", &src),
                ("fly-src-signature", &sig),
            ],
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn fly_src_works_in_transparent_mode() {
    let e = env(&["--tokenizer-hostnames", "tokenizer.internal"]).await;
    let (sealed, src, sig) = e.foo();
    let mut conn = RawConn::open(e.env.tk.addr).await;
    conn.send(
        format!(
            "GET /t HTTP/1.1\r\nHost: api.test\r\nProxy-Tokenizer: {sealed}\r\nFly-Src: {src}\r\n\
             Fly-Src-Signature: {sig}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let resp = conn.read_response(false).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        Echo::parse(&resp.text()).header("authorization").unwrap(),
        "Bearer supersecret"
    );
}

#[tokio::test]
async fn a_connect_carries_its_fly_src_into_the_tunnel() {
    let e = env(&[]).await;
    let (sealed, src, sig) = e.foo();
    let fly = [
        ("fly-src", src.as_str()),
        ("fly-src-signature", sig.as_str()),
    ];
    let mut conn = e.env.tunnel("api.test:80", &[&sealed], &fly).await.unwrap();
    conn.send(b"GET /in-tunnel HTTP/1.1\r\nHost: api.test\r\n\r\n")
        .await;
    let resp = conn.read_response(false).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        Echo::parse(&resp.text()).header("authorization").unwrap(),
        "Bearer supersecret"
    );

    // A CONNECT without a valid Fly-Src is refused before the tunnel opens.
    let refused = e.env.tunnel("api.test:80", &[&sealed], &[]).await;
    assert_eq!(refused.unwrap_err().status, 407);
}

#[tokio::test]
async fn bad_flysrc_configuration_stops_startup() {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let key = ::tokenizer::secret::OpenKey::generate().to_hex();
    let bad_key = dir.path().join("bad.pub");
    std::fs::write(&bad_key, "not hex").unwrap();
    let missing = dir.path().join("missing.pub");
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "--use-flysrc",
            "--flysrc-public-key-file",
            missing.to_str().unwrap(),
        ],
        vec![
            "--use-flysrc",
            "--flysrc-public-key-file",
            bad_key.to_str().unwrap(),
        ],
        vec!["--require-flysrc"],
        vec![
            "--use-flysrc",
            "--flysrc-public-key-file",
            bad_key.to_str().unwrap(),
            "--flysrc-proxy-nets",
            "x",
        ],
    ];
    for extra in cases {
        let mut argv = vec!["serve", "--open-key", key.as_str()];
        argv.extend(extra.iter().copied());
        let args = ::tokenizer::cli::ServeArgs::try_parse_from(&argv).unwrap();
        let err = args.into_config().err().map(|e| e.to_string());
        assert!(err.is_some(), "{extra:?} accepted");
        let err = err.unwrap();
        assert!(
            err.contains("FLYSRC") || err.contains("FLY"),
            "{extra:?}: {err}"
        );
    }
}

#[tokio::test]
async fn the_verified_fly_src_is_recorded_in_the_audit_entry() {
    let e = env(&["--admin-address", "127.0.0.1:0"]).await;
    let (sealed, src, sig) = e.foo();
    let (status, _) = e.get(&sealed, &signed(&src, &sig)).await;
    assert_eq!(status, 200);
    // Refused requests carry the caller too.
    let (status, _) = e
        .get(&e.env.seal(&secret(&["bar"])), &signed(&src, &sig))
        .await;
    assert_eq!(status, 407);
    let entries = e.env.admin().audit("", 2).await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    for entry in &entries {
        assert_eq!(entry["flysrc"], "foo/sandbox/m8e2", "{entry}");
    }
}
