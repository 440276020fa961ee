//! Issue 23: a seal means exactly what its author meant, and a newcomer is never stuck.
//! The real binary for the CLI cases (the validator's mistakes and messages, presets,
//! spellings, errors, help), the real proxy for the wire ones.

use serde_json::{Value, json};

use crate::support::binary::{self, Output, Server, run, run_cmd};
use crate::support::ca::TestCa;
use crate::support::upstream::Upstream;
use crate::support::{Env, bearer, inject};

const OPEN: &str = binary::GO_OPEN_KEY;
const SEAL: &str = binary::GO_SEAL_KEY;

fn seal(args: &[&str]) -> Output {
    let mut all = vec!["seal", "--seal-key", SEAL];
    all.extend_from_slice(args);
    run(&all)
}

fn unseal(sealed: &str) -> Value {
    binary::unseal(OPEN, sealed, true)
}

#[test]
fn sealing_refuses_mistakes_naming_the_key() {
    let digest = bearer("caller-pw")["digest"].as_str().unwrap().to_owned();
    let base = |extra: Value| {
        let mut s = json!({"inject_processor": {"token": "sk-live-123456"},
            "bearer_auth": {"digest": digest}, "allowed_hosts": ["api.example.com"]});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s.to_string()
    };
    let cases = [
        (
            base(json!({"alowed_paths": ["/v1/**"]})),
            r#"alowed_paths: unknown key (did you mean "allowed_paths"?)"#,
        ),
        (
            base(json!({"inject_processor": {"tokn": "sk-1"}})),
            r#"inject_processor.tokn: unknown key (did you mean "token"?)"#,
        ),
        (
            base(json!({"inject_processor": {"token": "sk-live-1", "dts": "x-api-key"}})),
            r#"inject_processor.dts: unknown key (did you mean "dst"?)"#,
        ),
        (
            base(json!({"bearer_auth": {"digest": "c2hvcnQ="}})),
            "bearer_auth.digest: not a SHA-256 digest",
        ),
        (
            base(json!({"inject_processor": {"token": ""}})),
            "inject_processor.token: empty credential",
        ),
        (
            base(json!({"allowed_methods": []})),
            "allowed_methods: allows no method",
        ),
        (
            base(json!({"inject_processor": {"token": "sk-1", "dst": "bad header"}})),
            "inject_processor: bad dst",
        ),
        (
            r#"{"inject_procesor":{"token":"x"},"no_auth":{}}"#.to_owned(),
            r#"inject_procesor: unknown key (did you mean "inject_processor"?)"#,
        ),
    ];
    for (json, want) in cases {
        let out = seal(&["--json", &json]);
        assert_eq!(out.code(), Some(2), "{json}: {}", out.stderr);
        assert!(
            out.stderr.contains(want),
            "{json}: want {want:?} in {}",
            out.stderr
        );
        assert!(out.stdout.trim().is_empty(), "{json}: sealed anyway");
        assert!(
            !out.stderr.contains("sk-live"),
            "a credential in {}",
            out.stderr
        );
    }
    // The README's example with $OPENAI_API_KEY unset: an empty credential, refused.
    let out = seal(&["--host", "api.openai.com", "--auth-token", "pw", ""]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("token: empty credential"),
        "{}",
        out.stderr
    );
    // --lenient seals what Go would, each mistake a warning.
    let json = base(json!({"alowed_paths": ["/v1/**"]}));
    let out = seal(&["--lenient", "--json", &json]).ok();
    assert!(out.stderr.contains("alowed_paths") && out.stderr.contains("--lenient"));
    assert!(unseal(out.stdout.trim()).get("allowed_paths").is_none());
    // A secret sealed elsewhere (Go's tool seals the bytes it is given) opens as in Go,
    // and unseal names what the tokenizer ignores.
    let raw = ::tokenizer::secret::SealKey::from_hex(SEAL)
        .unwrap()
        .seal_base64(json.as_bytes());
    let out = run(&["unseal", "--open-key", OPEN, &raw]).ok();
    assert!(
        out.stderr.contains("alowed_paths: unknown key"),
        "{}",
        out.stderr
    );
}

#[test]
fn presets_seal_an_api_in_one_flag_and_list_themselves() {
    let out = seal(&["--for", "anthropic", "--auth-token", "pw", "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmno"]).ok();
    let secret = unseal(out.stdout.trim());
    assert_eq!(secret["allowed_hosts"], json!(["api.anthropic.com"]));
    assert!(
        secret["inject_processor"]["dst"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("x-api-key")
    );
    assert_eq!(secret["inject_processor"]["fmt"], "%s");
    assert!(!out.stderr.contains("does not look like"), "{}", out.stderr);
    // A key of the wrong shape is a warning (a paste from the wrong API?).
    let out = seal(&[
        "--for",
        "openai",
        "--auth-token",
        "pw",
        "ghp_notanopenaikey000000000000000000",
    ])
    .ok();
    assert!(
        out.stderr.contains("does not look like a OpenAI key"),
        "{}",
        out.stderr
    );
    let out = seal(&["--for", "nosuchapi", "--auth-token", "pw", "k"]);
    assert_eq!(out.code(), Some(2));
    assert!(
        out.stderr.contains("openai, anthropic, github"),
        "{}",
        out.stderr
    );
    let list = run(&["presets"]).ok();
    for name in [
        "openai",
        "anthropic",
        "github",
        "stripe",
        "slack",
        "huggingface",
        "google-ai",
        "mistral",
        "groq",
        "linear",
    ] {
        assert!(
            list.stdout.lines().any(|l| l.starts_with(name)),
            "{name}: {}",
            list.stdout
        );
    }
    assert!(list.stdout.contains("sk-ant-api03-…"), "{}", list.stdout);
}

#[test]
fn sideproxy_env_gives_dummy_keys_the_real_keys_shape() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "x").unwrap();
    let ca_dir = dir.path().display().to_string();
    let mut cmd = binary::command();
    cmd.args(["sideproxy", "env", "--ca-dir", &ca_dir]).env(
        "TARGETS",
        "api.openai.com=OPENAI_SEALED,api.anthropic.com=ANT,internal.example=X",
    );
    let out = run_cmd(cmd, b"").ok();
    assert!(
        out.stdout
            .contains("export OPENAI_API_KEY=sk-proj-tokenizerDUMMY"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("export ANTHROPIC_API_KEY=sk-ant-api03-tokenizerDUMMY"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("internal"), "{}", out.stdout);
}

#[test]
fn small_cli_things_a_newcomer_trips_over() {
    // unseal takes the sealed value bare, as seal takes its token.
    let sealed = seal(&[
        "--host",
        "h.example",
        "--auth-token",
        "pw",
        "tok-long-enough-1",
    ])
    .ok();
    let bare = run(&["unseal", "--open-key", OPEN, sealed.stdout.trim()]).ok();
    let flagged = run(&[
        "unseal",
        "--open-key",
        OPEN,
        "--token",
        sealed.stdout.trim(),
    ])
    .ok();
    assert_eq!(bare.stdout, flagged.stdout);
    assert!(bare.stdout.contains("h.example"));
    // A closed pipe ends the command quietly.
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg(format!(
        "{} seal --seal-key {SEAL} --host h.example --no-auth tok-long-enough-2 | head -c 4",
        binary::BIN
    ));
    let out = run_cmd(cmd, b"");
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(out.stdout.len(), 4);
    // Go's sealtoken spellings.
    let out = run(&[
        "seal",
        "-sealkey",
        SEAL,
        "-org",
        "acme",
        "-app",
        "sandbox",
        "-host",
        "api.example.com",
        "tok-long-enough-3",
    ])
    .ok();
    let secret = unseal(out.stdout.trim());
    assert_eq!(secret["fly_src_auth"]["allowed_orgs"], json!(["acme"]));
    // An unknown single-dash flag is named whole.
    let out = run(&["seal", "-bogus", "x"]);
    assert_eq!(out.code(), Some(2));
    assert!(out.stderr.contains("'--bogus'"), "{}", out.stderr);
    // Configuration errors: one style, naming what was set and what is accepted.
    let key = ::tokenizer::secret::OpenKey::generate()
        .to_hex()
        .to_string();
    for (env, flag, want) in [
        (
            Some(("RATE_LIMIT_KEYS", "abc")),
            None,
            r#"RATE_LIMIT_KEYS: "abc": want a whole number"#,
        ),
        (
            None,
            Some(["--rate-limit-keys", "abc"]),
            r#"--rate-limit-keys: "abc": want a whole number"#,
        ),
        (
            Some(("LISTEN_ADDRESS", "nonsense")),
            None,
            r#"LISTEN_ADDRESS: "nonsense": want host:port, :port"#,
        ),
        (
            Some(("LOG_FORMAT", "xml")),
            None,
            r#"LOG_FORMAT: "xml": want one of: json, text"#,
        ),
    ] {
        let mut cmd = binary::command();
        cmd.args(["serve", "--open-key", &key]);
        if let Some((name, value)) = env {
            cmd.env(name, value);
        }
        if let Some(args) = flag {
            cmd.args(args);
        }
        let out = run_cmd(cmd, b"");
        assert_eq!(out.code(), Some(2), "{}", out.stderr);
        assert!(out.stderr.contains(want), "want {want:?}: {}", out.stderr);
    }
    // Help: grouped, and only the options a subcommand uses.
    let help = run(&["serve", "--help"]).ok().stdout;
    for heading in [
        "Keys:",
        "Listening:",
        "Upstream:",
        "Fleet (Redis):",
        "Identity (OIDC, mTLS):",
    ] {
        assert!(help.contains(heading), "{heading}: {help}");
    }
    assert!(
        !run(&["seal", "--help"])
            .ok()
            .stdout
            .contains("previous-open-keys")
    );
    assert!(
        !run(&["sealkey", "--help"])
            .ok()
            .stdout
            .contains("previous-open-keys")
    );
    assert!(
        !run(&["revoke", "--help"])
            .ok()
            .stdout
            .contains("redis-failure")
    );
}

#[tokio::test]
async fn start_up_lines_and_audit_lines_read_cleanly() {
    let ca = TestCa::new();
    let upstream = Upstream::start(&ca, &["127.0.0.1"]).await;
    let server = Server::start_trusting(&ca, OPEN, &["--log-format", "json"], &[]);
    let sealed = ::tokenizer::secret::Secret::from_json(
        inject("tok-clean-lines-1", "pw").to_string().as_bytes(),
    )
    .unwrap()
    .seal(
        &::tokenizer::secret::OpenKey::from_hex(OPEN)
            .unwrap()
            .seal_key(),
    );
    let got = server
        .client()
        .get(format!("http://127.0.0.1:{}/x", upstream.port()))
        .header("proxy-tokenizer", sealed)
        .header("proxy-authorization", "Bearer pw")
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let log = crate::support::poll_until(std::time::Duration::from_secs(3), || async {
        let text = server.stderr_text();
        text.contains("\"total_ms\"").then_some(text)
    })
    .await
    .expect("an audit line");
    let listening: Value =
        serde_json::from_str(log.lines().find(|l| l.contains("listening")).unwrap()).unwrap();
    assert_eq!(
        listening["fields"]["admin"]
            .as_str()
            .or(listening["admin"].as_str()),
        Some("off"),
        "{listening}"
    );
    assert!(!log.contains("Some("), "{log}");
    let audit: Value =
        serde_json::from_str(log.lines().find(|l| l.contains("\"total_ms\"")).unwrap()).unwrap();
    let total = audit.to_string();
    let ms = total
        .split("\"total_ms\":")
        .nth(1)
        .unwrap()
        .split([',', '}'])
        .next()
        .unwrap();
    let decimals = ms.split('.').nth(1).map_or(0, str::len);
    assert!(decimals <= 3, "total_ms {ms}");
}

#[tokio::test]
async fn drop_in_details_on_the_wire() {
    let e = Env::builder().names(&["api.test"]).start().await;
    // A credential sealed (leniently) with a trailing space goes out trimmed, as Go's
    // header writer sends it.
    let sealed = e.seal(&inject("tok-with-space-1 ", "pw"));
    let got = e
        .get("/x", &[&sealed], &[("proxy-authorization", "Bearer pw")])
        .await;
    assert_eq!(
        got.echo().header_all("authorization"),
        ["Bearer tok-with-space-1"]
    );
    // `curl -x … https://…`: the refusal says what to do.
    let got = e.tunnel("api.test:443", &[&sealed], &[]).await.unwrap_err();
    assert_eq!(got.status, 400);
    assert!(got.text().contains("takes http:// URLs"), "{}", got.text());
    assert!(got.text().contains("tokenizer sideproxy"), "{}", got.text());
    // The destination guard's refusal names the setting that admits a destination.
    let guarded = Env::builder()
        .names(&["api.test"])
        .guard(true)
        .start()
        .await;
    let sealed = guarded.seal(&inject("tok-guarded-1", "pw"));
    let got = guarded
        .get("/x", &[&sealed], &[("proxy-authorization", "Bearer pw")])
        .await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert!(got.body.contains("UPSTREAM_ALLOW_CIDRS"), "{}", got.body);
}
