//! A true drop-in for the Go tokenizer (issue 14): what a Go user's scripts, image and
//! secrets do, through the binary and the running proxy. The Go behaviour each test
//! shows is cited from superfly/tokenizer a60499d (and superfly/macaroon 61a02aa).

use ::tokenizer::secret::OpenKey;
use serde_json::{Value, json};

use crate::support::binary::{self, Server};
use crate::support::ca::TestCa;
use crate::support::upstream::{Echo, Upstream};
use crate::support::{Env, seal_for};

const OPEN_KEY: &str = binary::GO_OPEN_KEY;
const SEAL_KEY: &str = binary::GO_SEAL_KEY;

fn run(args: &[&str]) -> binary::Output {
    binary::run(args)
}

// === flags ===

#[test]
fn go_flag_spellings_work_for_every_subcommand() {
    // `tokenizer seal -json …` (and `-seal-key`, `-json=`), as scripts call Go's.
    let json = r#"{"inject_processor":{"token":"go-flags-token"},"no_auth":{}}"#;
    let mut sealed = Vec::new();
    for args in [
        vec!["seal", "-seal-key", SEAL_KEY, "-json", json],
        vec![
            "seal",
            &format!("-seal-key={SEAL_KEY}"),
            &format!("-json={json}"),
        ],
        vec!["seal", "--seal-key", SEAL_KEY, "--json", json],
        vec!["seal", "-open-key", OPEN_KEY, "-json", json],
    ] {
        let out = run(&args).ok();
        sealed.push(out.stdout.trim().to_owned());
    }
    // `tokenizer unseal -token …` opens each of them.
    for token in &sealed {
        let out = run(&["unseal", "-open-key", OPEN_KEY, "-token", token]).ok();
        assert!(out.stdout.contains("inject_processor"), "{}", out.stdout);
        let out = run(&[
            "unseal",
            &format!("-open-key={OPEN_KEY}"),
            &format!("-token={token}"),
        ])
        .ok();
        assert!(out.stdout.contains("REDACTED"), "{}", out.stdout);
    }
    // `tokenizer sealkey -open-key …`.
    let out = run(&["sealkey", "-open-key", OPEN_KEY]).ok();
    assert_eq!(out.stdout.trim(), format!("export SEAL_KEY={SEAL_KEY}"));
    // An unknown single-dash word is still refused, as Go refuses it.
    let out = run(&["seal", "-no-such-flag", "x"]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
}

#[test]
fn go_image_command_line_starts_the_proxy() {
    // Go's image runs `tokenizer serve -use-flysrc=true`; the key file is Fly's.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("fly-src.pub");
    std::fs::write(&key, format!("{}\n", "11".repeat(32))).unwrap();
    let mut cmd = binary::command();
    cmd.args([
        "serve",
        "-use-flysrc=true",
        "-listen-address",
        "127.0.0.1:0",
        "-open-key",
        OPEN_KEY,
        "-open-proxy",
        "false",
    ])
    .env("FLYSRC_PUBLIC_KEY_FILE", &key);
    let server = Server::launch(cmd).expect("starts");
    let stopped = server.stop();
    assert!(stopped.status.success(), "{}", stopped.stderr);
    // `-debug true` and `-debug-tcp` (Go's string flags) are accepted too.
    let mut cmd = binary::command();
    cmd.args([
        "serve",
        "-debug",
        "true",
        "-debug-tcp=1",
        "-listen-address",
        "127.0.0.1:0",
        "-open-key",
        OPEN_KEY,
    ]);
    let server = Server::launch(cmd).expect("starts");
    let stopped = server.stop();
    assert!(
        stopped.stderr.contains("DEBUG_TCP is not supported"),
        "{}",
        stopped.stderr
    );
}

// === unseal ===

#[test]
fn unseal_prints_any_decrypted_document_as_go_does() {
    let seal = |plain: &str| {
        ::tokenizer::secret::SealKey::from_hex(SEAL_KEY)
            .unwrap()
            .seal_base64(plain.as_bytes())
    };
    // Not a secret at all: Go prints the bytes; so do we (with a warning).
    let doc = r#"{"hello": "world", "n": 1}"#;
    let out = run(&["unseal", "-open-key", OPEN_KEY, "-token", &seal(doc)]).ok();
    assert_eq!(out.stdout, format!("{doc}\n"));
    assert!(out.stderr.contains("warning"), "{}", out.stderr);
    // A secret: redacted by default; `--raw` prints exactly what was sealed.
    let secret = r#"{"inject_processor":{"token":"raw-token-1"} , "no_auth":{}}"#;
    let out = run(&["unseal", "-open-key", OPEN_KEY, "-token", &seal(secret)]).ok();
    assert!(!out.stdout.contains("raw-token-1"), "{}", out.stdout);
    let out = run(&[
        "unseal",
        "-open-key",
        OPEN_KEY,
        "-token",
        &seal(secret),
        "--raw",
    ])
    .ok();
    assert_eq!(out.stdout, format!("{secret}\n"));
    // Bytes that do not decrypt are an error, as in Go.
    let out = run(&["unseal", "-open-key", OPEN_KEY, "-token", "aGVsbG8="]);
    assert_eq!(out.code(), Some(2));
}

// === the image's defaults ===

/// `ENV` of containers/tokenizer.Dockerfile.
fn image_env() -> Vec<(String, String)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/containers/tokenizer.Dockerfile"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut env = Vec::new();
    let mut in_env = false;
    for line in text.lines().map(str::trim) {
        let rest = match line.strip_prefix("ENV ") {
            Some(rest) => rest,
            None if in_env => line,
            None => continue,
        };
        in_env = rest.ends_with('\\');
        for pair in rest.trim_end_matches('\\').split_whitespace() {
            let (k, v) = pair.split_once('=').unwrap();
            env.push((k.to_owned(), v.to_owned()));
        }
    }
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_filters_fly_headers_and_verifies_fly_src_like_gos() {
    let env = image_env();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("USE_FLYSRC").as_deref(), Some("true"));
    // Go's build bakes these ten in (Dockerfile ldflags `main.FilteredHeaders`).
    let fly = "Fly-Client-Ip,Fly-Forwarded-Port,Fly-Forwarded-Proto,Fly-Forwarded-Ssl,\
               Fly-Region,Fly-Request-Id,Fly-Traceparent,Fly-Tracestate,Fly-Src,Fly-Src-Signature";
    assert_eq!(get("DEFAULT_FILTERED_HEADERS").as_deref(), Some(fly));

    // Run the binary with the image's environment, plus what fly.toml would add.
    let ca = TestCa::new();
    let upstream = Upstream::start(&ca, &["api.test"]).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("fly-src.pub");
    std::fs::write(&key, format!("{}\n", "11".repeat(32))).unwrap();
    let pin = upstream.pin(&["api.test"]);
    let mut envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let key_path = key.display().to_string();
    envs.extend([
        ("FLYSRC_PUBLIC_KEY_FILE", key_path.as_str()),
        ("FILTERED_HEADERS", "X-Also-Filtered"),
    ]);
    let server = Server::start_trusting(&ca, OPEN_KEY, &["--upstream-resolve", &pin], &envs);
    let open_key = OpenKey::from_hex(OPEN_KEY).unwrap();
    let sealed = seal_for(
        &open_key,
        &json!({"inject_processor": {"token": "image-token"}, "no_auth": {}}),
    );
    let mut req = server
        .client()
        .get("http://api.test/")
        .header("proxy-tokenizer", &sealed)
        .header("x-also-filtered", "1")
        .header("x-kept", "1");
    for name in fly.split(',') {
        req = req.header(name, "from-fly-proxy");
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let echo = Echo::parse(&resp.text().await.unwrap());
    let names = echo.header_names();
    for name in fly.split(',') {
        assert!(
            !names.contains(&name.to_ascii_lowercase()),
            "{name} leaked: {names:?}"
        );
    }
    assert!(!names.contains(&"x-also-filtered".to_owned()), "{names:?}");
    assert!(names.contains(&"x-kept".to_owned()));
    // Fly-Src verification is on: a fly_src_auth secret is checked, not refused as
    // "no flysrc parser".
    let bound = seal_for(
        &open_key,
        &json!({"inject_processor": {"token": "t"}, "fly_src_auth": {"allowed_orgs": ["o"]}}),
    );
    let resp = server
        .client()
        .get("http://api.test/")
        .header("proxy-tokenizer", &bound)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 407);
    let text = resp.text().await.unwrap();
    assert!(!text.contains("no flysrc parser"), "{text}");
    drop(server);
}

// === RE2 patterns ===

#[tokio::test]
async fn host_patterns_mean_what_they_mean_in_go() {
    let e = Env::builder()
        .names(&["api-1.example.test", "x.example.test", "api.stripe.test"])
        .start()
        .await;
    // Patterns as deployments write them; Go compiles each (ASCII `\w`, `\Q…\E`).
    for (pattern, host, ok) in [
        (r"^[\w-]{1,63}\.example\.test$", "api-1.example.test", true),
        (r"^\Qapi-1.example.test\E$", "api-1.example.test", true),
        (r"^\Qx.example.test\E$", "api-1.example.test", false),
        (r"\bstripe\.test$", "api.stripe.test", true),
        (r"^[\w.-]+\.example\.test(:\d+)?$", "x.example.test", true),
        (r"(?i)^X\.EXAMPLE\.test$", "x.example.test", true),
    ] {
        let sealed = e.seal(&json!({"inject_processor": {"token": "re2-token"},
            "no_auth": {}, "allowed_host_pattern": pattern}));
        let got = e.get(&format!("http://{host}/"), &[&sealed], &[]).await;
        let expected = if ok { 200 } else { 400 };
        assert_eq!(got.status, expected, "{pattern} on {host}");
    }
    // What Go refuses is refused (the secret does not open: 400).
    for pattern in [r"a**", r"(a{500}){3}", r"\8", r"(?x)a", "*.fly.dev"] {
        let sealed = e.seal_raw(
            &json!({"inject_processor": {"token": "t"}, "no_auth": {},
                "allowed_host_pattern": pattern})
            .to_string(),
        );
        let got = e.get("http://x.example.test/", &[&sealed], &[]).await;
        assert_eq!(got.status, 400, "{pattern}");
    }
    // `tokenizer seal` takes the pattern Go takes, and refuses what Go refuses.
    let ok = json!({"inject_processor": {"token": "t"}, "no_auth": {},
        "allowed_host_pattern": r"^[\w-]{1,63}\.example\.com$"})
    .to_string();
    run(&["seal", "-seal-key", SEAL_KEY, "-json", &ok]).ok();
    let bad = json!({"inject_processor": {"token": "t"}, "no_auth": {},
        "allowed_host_pattern": "*.fly.dev"})
    .to_string();
    assert_eq!(
        run(&["seal", "-seal-key", SEAL_KEY, "-json", &bad]).code(),
        Some(2)
    );
}

// === third-party caveats ===

/// Tokens from superfly/macaroon 61a02aa, each checked against the Go tokenizer
/// (crates/secret/src/auth/macaroon/testdata/README.md has the table this test replays).
fn third_party_vectors() -> Value {
    serde_json::from_str(include_str!(
        "../../crates/secret/src/auth/macaroon/testdata/go_tokenizer_third_party.json"
    ))
    .unwrap()
}

#[tokio::test]
async fn third_party_caveats_with_discharges_are_accepted_as_in_go() {
    let v = third_party_vectors();
    let e = Env::builder().names(&["localhost:8443"]).start().await;
    let sealed = e.seal(&json!({"inject_processor": {"token": "macaroon-guarded"},
        "macaroon_auth": {"key": v["root_key_b64"]}}));
    let cases = [
        ("t1_header", "GET", "/x", 200),
        ("t1_header", "PUT", "/x", 407),
        ("t2_header", "GET", "/api/v1/x", 200),
        ("t2_header", "GET", "/api/x", 407),
        ("t3_header_without_discharge", "GET", "/ok", 407),
        ("t3_header_with_discharge", "GET", "/ok", 200),
        ("t3_header_with_discharge", "GET", "/okay", 200),
        ("t3_header_with_discharge", "GET", "/nope", 407),
        ("t3_header_with_wrongly_bound_discharge", "GET", "/ok", 407),
        ("t3_header_with_unbound_discharge", "GET", "/nope", 200),
        ("t3_attenuated_header_with_discharge", "GET", "/ok", 200),
        ("t3_attenuated_header_with_discharge", "POST", "/ok", 407),
    ];
    for (token, method, path, status) in cases {
        let auth = ("proxy-authorization", v[token].as_str().unwrap());
        let got = e.send(method, path, &[&sealed], &[auth], "").await;
        assert_eq!(got.status, status, "{token} {method} {path}");
        if status == 200 {
            let echo = Echo::parse(&got.body);
            assert_eq!(
                echo.header("authorization").unwrap(),
                "Bearer macaroon-guarded"
            );
        }
    }
}

// === version ===

#[test]
fn version_says_tokenizer_and_a_version() {
    // Go prints `tokenizer v0.0.1` on stderr; this tokenizer prints its own version on
    // stdout (the compatibility table says so).
    let out = run(&["version"]).ok();
    assert!(out.stdout.starts_with("tokenizer "), "{}", out.stdout);
}
