//! The real binary's command line (section 6.1 of the wire-compat spec and the
//! architecture's external contract): keys, seal/unseal, the tlsproxy shorthand, exit
//! codes, and `serve` running as a process that stops on SIGTERM.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::binary::{self, Output, Server, run, run_cmd};
use crate::support::ca::TestCa;
use crate::support::upstream::{Echo, Upstream};
use crate::support::{bearer, inject, with};

const OPEN: &str = binary::GO_OPEN_KEY;
const SEAL: &str = binary::GO_SEAL_KEY;

fn is_key_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The value of `export NAME=VALUE` lines in `stdout`.
fn export(stdout: &str, name: &str) -> String {
    let prefix = format!("export {name}=");
    let values: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .collect();
    assert_eq!(values.len(), 1, "one {name} line in {stdout:?}");
    values[0].to_owned()
}

/// `tokenizer seal --seal-key SEAL --json JSON`, returning the base64.
fn seal_json(json: &str) -> String {
    let out = run(&["seal", "--seal-key", SEAL, "--json", json]).ok();
    let sealed = out.stdout.trim().to_owned();
    assert!(!sealed.is_empty() && !sealed.contains('\n'), "{out:?}");
    sealed
}

/// `tokenizer unseal --open-key OPEN --token B64 [--show-secrets]`, parsed.
fn unseal(sealed: &str, show: bool) -> Value {
    binary::unseal(OPEN, sealed, show)
}

fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
}

// === keys ===

#[test]
fn genkey_prints_a_key_pair_that_sealkey_agrees_with() {
    let out = run(&["genkey"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{:?}", out.stdout);
    assert!(lines[0].starts_with("export OPEN_KEY="), "{lines:?}");
    assert!(lines[1].starts_with("export SEAL_KEY="), "{lines:?}");
    let open = export(&out.stdout, "OPEN_KEY");
    let seal = export(&out.stdout, "SEAL_KEY");
    assert!(is_key_hex(&open), "{open}");
    assert!(is_key_hex(&seal), "{seal}");
    assert_ne!(open, seal);

    // --open-key
    let by_flag = run(&["sealkey", "--open-key", &open]).ok();
    assert_eq!(by_flag.stdout, format!("export SEAL_KEY={seal}\n"));

    // OPEN_KEY in the environment
    let mut cmd = binary::command();
    cmd.arg("sealkey").env("OPEN_KEY", &open);
    let by_env = run_cmd(cmd, b"").ok();
    assert_eq!(by_env.stdout, format!("export SEAL_KEY={seal}\n"));

    // OPEN_KEY_FILE, with the trailing newline an editor or `echo` leaves
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("open.key");
    std::fs::write(&path, format!("{open}\n")).unwrap();
    let mut cmd = binary::command();
    cmd.arg("sealkey").env("OPEN_KEY_FILE", &path);
    let by_file = run_cmd(cmd, b"").ok();
    assert_eq!(by_file.stdout, format!("export SEAL_KEY={seal}\n"));
    assert!(!by_file.stderr.contains(&open), "{}", by_file.stderr);

    // Two genkeys differ.
    let again = run(&["genkey"]).ok();
    assert_ne!(export(&again.stdout, "OPEN_KEY"), open);
}

#[test]
fn sealkey_matches_the_go_vector() {
    let out = run(&["sealkey", "--open-key", OPEN]).ok();
    assert_eq!(out.stdout, format!("export SEAL_KEY={SEAL}\n"));
    assert!(!out.stderr.contains(OPEN), "{}", out.stderr);

    let mut cmd = binary::command();
    cmd.arg("sealkey").env("OPEN_KEY", OPEN);
    assert_eq!(
        run_cmd(cmd, b"").ok().stdout,
        format!("export SEAL_KEY={SEAL}\n")
    );
}

// === seal / unseal ===

#[test]
fn seal_then_unseal_round_trips_and_redacts_by_default() {
    let secret = with(
        inject("tok-cli-roundtrip-1", "auth-cli-1"),
        json!({"allowed_hosts": ["api.example.com"]}),
    );
    let sealed = seal_json(&secret.to_string());
    // Go's transport form: standard padded base64.
    assert!(
        ::tokenizer::secret::b64::decode(&sealed).is_ok(),
        "{sealed}"
    );

    let redacted = unseal(&sealed, false);
    assert_eq!(redacted["inject_processor"]["token"], "REDACTED");
    assert_eq!(redacted["bearer_auth"]["digest"], "REDACTED");
    assert_eq!(redacted["allowed_hosts"], json!(["api.example.com"]));
    let text = redacted.to_string();
    assert!(!text.contains("tok-cli-roundtrip-1"), "{text}");
    assert!(
        !text.contains(bearer("auth-cli-1")["digest"].as_str().unwrap()),
        "{text}"
    );

    let clear = unseal(&sealed, true);
    assert_eq!(clear, secret);
}

#[test]
fn unseal_reads_the_token_from_stdin() {
    let secret = inject("tok-cli-stdin-1", "auth-cli-2");
    let sealed = seal_json(&secret.to_string());
    let mut cmd = binary::command();
    cmd.args([
        "unseal",
        "--open-key",
        OPEN,
        "--token",
        "-",
        "--show-secrets",
    ]);
    let out = run_cmd(cmd, format!("{sealed}\n").as_bytes()).ok();
    let opened: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(opened, secret);
}

#[test]
fn deny_all_allowed_hosts_survives_sealing() {
    let secret = with(
        inject("tok-cli-denyall-1", "auth-cli-3"),
        json!({"allowed_hosts": []}),
    );
    // A secret no host can use is refused, unless sealed as leniently as Go does.
    let refused = run(&["seal", "--seal-key", SEAL, "--json", &secret.to_string()]);
    assert_code(&refused, 2);
    assert!(
        refused.stderr.contains("allowed_hosts: allows no host"),
        "{}",
        refused.stderr
    );
    let out = run(&[
        "seal",
        "--seal-key",
        SEAL,
        "--lenient",
        "--json",
        &secret.to_string(),
    ])
    .ok();
    assert!(out.stderr.contains("sealed anyway"), "{}", out.stderr);
    let sealed = out.stdout.trim().to_owned();
    assert_eq!(unseal(&sealed, false)["allowed_hosts"], json!([]));
    assert_eq!(unseal(&sealed, true)["allowed_hosts"], json!([]));
}

#[test]
fn seal_warns_about_and_drops_unknown_keys() {
    let secret = with(
        inject("tok-cli-unknown-1", "auth-cli-4"),
        json!({"alowed_hosts": ["typo.example.com"]}),
    );
    // Refused by default, the key named with its right spelling…
    let refused = run(&["seal", "--seal-key", SEAL, "--json", &secret.to_string()]);
    assert_code(&refused, 2);
    assert!(
        refused
            .stderr
            .contains(r#"alowed_hosts: unknown key (did you mean "allowed_hosts"?)"#),
        "{}",
        refused.stderr
    );
    assert!(refused.stdout.trim().is_empty());
    // …sealed as Go would with --lenient, with a warning.
    let out = run(&[
        "seal",
        "--seal-key",
        SEAL,
        "--lenient",
        "--json",
        &secret.to_string(),
    ])
    .ok();
    assert!(
        out.stderr.contains("warning") && out.stderr.contains("alowed_hosts"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("tok-cli-unknown-1"), "{}", out.stderr);
    let opened = unseal(out.stdout.trim(), true);
    assert!(opened.get("alowed_hosts").is_none(), "{opened}");
    assert!(opened.get("allowed_hosts").is_none(), "{opened}");
    assert_eq!(opened["inject_processor"]["token"], "tok-cli-unknown-1");
}

#[test]
fn seal_derives_the_seal_key_from_open_key() {
    let mut cmd = binary::command();
    cmd.args([
        "seal",
        "--json",
        &inject("tok-cli-derive-1", "a").to_string(),
    ])
    .env("OPEN_KEY", OPEN);
    let out = run_cmd(cmd, b"").ok();
    assert_eq!(
        unseal(out.stdout.trim(), true)["inject_processor"]["token"],
        "tok-cli-derive-1"
    );
}

// === the tlsproxy shorthand ===

/// `tokenizer seal --seal-key SEAL --host api.example.com ARGS`.
fn shorthand(args: &[&str]) -> Output {
    let mut all = vec!["seal", "--seal-key", SEAL, "--host", "api.example.com"];
    all.extend_from_slice(args);
    run(&all)
}

#[test]
fn shorthand_with_auth_token() {
    let out = shorthand(&[
        "--header",
        "x-api-key",
        "--auth-token",
        "auth-cli-short-1",
        "tok-cli-short-1",
    ])
    .ok();
    let opened = unseal(out.stdout.trim(), true);
    assert_eq!(
        opened,
        json!({
            "inject_processor": {"token": "tok-cli-short-1", "fmt": "%s", "dst": "x-api-key"},
            "bearer_auth": bearer("auth-cli-short-1"),
            "allowed_hosts": ["api.example.com"],
        })
    );
    // base64(sha256(T)), computed here independently of the crate.
    use sha2::Digest;
    let digest = sha2::Sha256::digest(b"auth-cli-short-1");
    assert_eq!(
        opened["bearer_auth"]["digest"],
        ::tokenizer::secret::b64::encode(&digest)
    );
}

#[test]
fn shorthand_with_org_and_app() {
    let out = shorthand(&[
        "--header",
        "x-api-key",
        "--org",
        "my-org",
        "--app",
        "my-app",
        "tok-cli-short-2",
    ])
    .ok();
    let opened = unseal(out.stdout.trim(), true);
    assert_eq!(
        opened["inject_processor"],
        json!({"token": "tok-cli-short-2", "fmt": "%s", "dst": "x-api-key"})
    );
    assert_eq!(opened["fly_src_auth"]["allowed_orgs"], json!(["my-org"]));
    assert_eq!(opened["fly_src_auth"]["allowed_apps"], json!(["my-app"]));
    assert!(opened.get("bearer_auth").is_none(), "{opened}");
    assert_eq!(opened["allowed_hosts"], json!(["api.example.com"]));
}

#[test]
fn shorthand_reads_the_token_from_stdin() {
    let mut cmd = binary::command();
    cmd.args([
        "seal",
        "--seal-key",
        SEAL,
        "--host",
        "api.example.com",
        "--no-auth",
        "-",
    ]);
    let out = run_cmd(cmd, b"tok-cli-stdin-2\n").ok();
    let opened = unseal(out.stdout.trim(), true);
    assert_eq!(opened["inject_processor"]["token"], "tok-cli-stdin-2");
    assert_eq!(opened["no_auth"], json!({}));
    assert_eq!(opened["allowed_hosts"], json!(["api.example.com"]));
}

#[test]
fn shorthand_needs_an_auth_choice() {
    let out = shorthand(&["tok-cli-short-3"]);
    assert_code(&out, 2);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(!out.stderr.contains("tok-cli-short-3"), "{}", out.stderr);
}

// === exit codes and messages ===

#[test]
fn unknown_subcommand_exits_2() {
    assert_code(&run(&["frobnicate"]), 2);
}

#[test]
fn serve_without_open_key_exits_2() {
    let mut cmd = Command::new(binary::BIN);
    cmd.env_clear().arg("serve");
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    let out = run_cmd(cmd, b"");
    assert_code(&out, 2);
    assert!(out.stderr.contains("OPEN_KEY"), "{}", out.stderr);
}

#[test]
fn serve_with_a_bad_open_key_exits_2_without_printing_it() {
    // Too short, and one hex digit short of a real key.
    let near = &OPEN[..62];
    for bad in ["abcd", near] {
        let out = run(&[
            "serve",
            "--open-key",
            bad,
            "--listen-address",
            "127.0.0.1:0",
        ]);
        assert_code(&out, 2);
        assert!(out.stderr.contains("OPEN_KEY"), "{}", out.stderr);
        assert!(!out.stderr.contains(bad), "{}", out.stderr);
        assert!(!out.stdout.contains(bad), "{}", out.stdout);

        let mut cmd = binary::command();
        cmd.args(["serve", "--listen-address", "127.0.0.1:0"])
            .env("OPEN_KEY", bad);
        let out = run_cmd(cmd, b"");
        assert_code(&out, 2);
        assert!(!out.stderr.contains(bad), "{}", out.stderr);
    }
}

#[test]
fn seal_with_bad_json_exits_2() {
    for bad in [
        "{not json",
        "[]",
        r#"{"inject_processor":{"token":"x"}}"#,
        r#"{"no_auth":{}}"#,
    ] {
        let out = run(&["seal", "--seal-key", SEAL, "--json", bad]);
        assert_code(&out, 2);
        assert!(out.stdout.is_empty(), "{bad}: {}", out.stdout);
    }
}

#[test]
fn unseal_of_a_tampered_token_exits_2() {
    let sealed = seal_json(&inject("tok-cli-tamper-1", "a").to_string());
    let mut bytes = sealed.into_bytes();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let out = run(&["unseal", "--open-key", OPEN, "--token", &tampered]);
    assert_code(&out, 2);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(!out.stderr.contains("tok-cli-tamper-1"), "{}", out.stderr);

    // The right token with another key fails the same way.
    let other = export(&run(&["genkey"]).ok().stdout, "OPEN_KEY");
    let sealed = seal_json(&inject("tok-cli-tamper-2", "a").to_string());
    let out = run(&["unseal", "--open-key", &other, "--token", &sealed]);
    assert_code(&out, 2);
}

#[test]
fn version_prints_name_and_version() {
    let out = run(&["version"]).ok();
    assert_eq!(
        out.stdout.trim(),
        format!("tokenizer {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn serve_help_does_not_show_the_open_key() {
    let key = export(&run(&["genkey"]).ok().stdout, "OPEN_KEY");
    let previous = export(&run(&["genkey"]).ok().stdout, "OPEN_KEY");
    for args in [
        &["serve", "--help"][..],
        &["serve", "-h"],
        &["help", "serve"],
    ] {
        let mut cmd = binary::command();
        cmd.args(args)
            .env("OPEN_KEY", &key)
            .env("PREVIOUS_OPEN_KEYS", &previous);
        let out = run_cmd(cmd, b"").ok();
        assert!(
            out.stdout.contains("--open-key"),
            "{args:?}: {}",
            out.stdout
        );
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(!all.contains(&key), "{args:?} printed OPEN_KEY:\n{all}");
        assert!(
            !all.contains(&previous),
            "{args:?} printed PREVIOUS_OPEN_KEYS:\n{all}"
        );
    }
}

// === serve as a process ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_proxies_and_stops_cleanly_on_sigterm() {
    let ca = TestCa::new();
    let upstream = Upstream::start(&ca, &["127.0.0.1"]).await;
    let server = Server::start_trusting(&ca, OPEN, &["--log-format", "json"], &[]);

    let sealed = seal_json(&inject("tok-cli-serve-1", "auth-cli-serve-1").to_string());
    let addr = server.addr;
    let client = server.client();
    let resp = client
        .get(format!("http://127.0.0.1:{}/hello", upstream.port()))
        .header("proxy-tokenizer", &sealed)
        .header("proxy-authorization", "Bearer auth-cli-serve-1")
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    let echo = Echo::parse(&text);
    assert_eq!(echo.header_all("authorization"), ["Bearer tok-cli-serve-1"]);
    assert!(echo.header("proxy-tokenizer").is_none());
    assert!(echo.header("proxy-authorization").is_none());
    assert_eq!(echo.uri(), "/hello");

    // An idle keep-alive connection from this client must not hold up the exit.
    let stopped = tokio::task::spawn_blocking(move || server.stop_within(Duration::from_secs(5)))
        .await
        .unwrap();
    drop(client);
    assert!(
        stopped.status.success(),
        "exit status {} after SIGTERM; stderr:\n{}",
        stopped.status,
        stopped.stderr
    );

    let lines: Vec<Value> = stopped
        .stderr
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect();
    assert!(
        stopped.stderr.contains(r#""message":"listening""#),
        "{}",
        stopped.stderr
    );
    let listening = lines.iter().find(|l| l["message"] == "listening").unwrap();
    assert_eq!(listening["seal_key"], SEAL, "{listening}");
    assert_eq!(listening["address"], addr.to_string(), "{listening}");
    assert!(
        lines
            .iter()
            .any(|l| l["path"] == "/hello" && l["status"] == 200),
        "{}",
        stopped.stderr
    );
    // A graceful exit, not a kill.
    assert!(
        lines.iter().any(|l| l["message"] == "stopped"),
        "{}",
        stopped.stderr
    );
    assert!(!stopped.stderr.contains(OPEN), "{}", stopped.stderr);
    assert!(
        !stopped.stderr.contains("tok-cli-serve-1"),
        "{}",
        stopped.stderr
    );
}

// === rule flags and lints ===

#[test]
fn seal_rule_flags_land_in_the_secret() {
    let out = shorthand(&[
        "--auth-token",
        "pw",
        "--id",
        "ci-deploy-7",
        "--allowed-methods",
        "GET,POST",
        "--allowed-paths",
        "/v1/**",
        "--allowed-paths",
        "/health",
        "--not-before",
        "2026-01-01T00:00:00Z",
        "--ttl",
        "12h",
        "--rate-limit",
        "60/minute",
        "tok-long-enough-to-guard",
    ])
    .ok();
    let secret = unseal(out.stdout.trim(), false);
    assert_eq!(secret["id"], "ci-deploy-7");
    assert_eq!(secret["allowed_methods"], json!(["GET", "POST"]));
    assert_eq!(secret["allowed_paths"], json!(["/v1/**", "/health"]));
    assert_eq!(secret["not_before"], 1_767_225_600);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expires = secret["expires_at"].as_i64().unwrap();
    assert!(
        (now + 12 * 3600 - 60..=now + 12 * 3600 + 60).contains(&expires),
        "{expires}"
    );
    assert_eq!(secret["rate_limit"], "60/min");
    // A host-restricted, authenticated secret has nothing to warn about.
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
}

#[test]
fn seal_lints_risky_secrets() {
    let risky =
        r#"{"inject_processor":{"token":"t"},"no_auth":{},"allowed_host_pattern":"example\\.com"}"#;
    let out = run(&["seal", "--seal-key", SEAL, "--json", risky]).ok();
    assert!(out.stderr.contains("not anchored"), "{}", out.stderr);
    assert!(out.stderr.contains("no_auth"), "{}", out.stderr);
    let open = r#"{"inject_processor":{"token":"t"},"bearer_auth":{"digest":"K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols="}}"#;
    let out = run(&["seal", "--seal-key", SEAL, "--json", open]).ok();
    assert!(out.stderr.contains("any host"), "{}", out.stderr);
    let out = run(&[
        "seal",
        "--seal-key",
        SEAL,
        "--deny-warnings",
        "--json",
        open,
    ]);
    assert_code(&out, 2);
    assert!(out.stdout.trim().is_empty());
    let expired = run(&[
        "seal",
        "--seal-key",
        SEAL,
        "--host",
        "h",
        "--no-auth",
        "--expires-at",
        "1",
        "t",
    ]);
    // A rule that can never match is a mistake, refused (issue 23).
    assert_code(&expired, 2);
    assert!(
        expired.stderr.contains("expires_at: in the past"),
        "{}",
        expired.stderr
    );
}

#[test]
fn seal_refuses_bad_rules() {
    for bad in [
        vec!["--allowed-paths", "v1/**"],
        vec!["--rate-limit", "lots"],
        vec!["--expires-at", "someday"],
        vec!["--ttl", "soon"],
        vec!["--ttl", "1h", "--expires-at", "1"],
    ] {
        let mut args = vec!["seal", "--seal-key", SEAL, "--host", "h", "--no-auth"];
        args.extend(bad.iter().copied());
        args.push("tok");
        let out = run(&args);
        assert_code(&out, 2);
    }
    let bad_regex = r#"{"inject_processor":{"token":"t"},"no_auth":{},"allowed_host_pattern":"("}"#;
    let out = run(&["seal", "--seal-key", SEAL, "--json", bad_regex]);
    assert_code(&out, 2);
    assert!(
        out.stderr.contains("allowed_host_pattern"),
        "{}",
        out.stderr
    );
}

// === credential forms (issue 25) ===

#[test]
fn seal_shorthand_for_git_basic_auth_on_two_hosts_with_ref_rules() {
    let out = run(&[
        "seal",
        "--seal-key",
        SEAL,
        "--host",
        "github.com,api.github.com",
        "--basic-user",
        "x-access-token",
        "--git-ref",
        "refs/heads/agent/*",
        "--git-ref",
        "refs/tags/agent-*",
        "--auth-token",
        "pw",
        "ghs_cli_git_token_12345",
    ])
    .ok();
    let opened = unseal(out.stdout.trim(), true);
    assert_eq!(
        opened["basic_auth_processor"],
        json!({"user": "x-access-token", "password": "ghs_cli_git_token_12345"})
    );
    assert_eq!(
        opened["allowed_hosts"],
        json!(["github.com", "api.github.com"])
    );
    assert_eq!(
        opened["allowed_git_refs"],
        json!(["refs/heads/agent/*", "refs/tags/agent-*"])
    );
    // Redacted by default.
    let redacted = unseal(out.stdout.trim(), false);
    assert_eq!(redacted["basic_auth_processor"]["user"], "x-access-token");
    assert!(!redacted.to_string().contains("ghs_cli_git_token_12345"));
}

#[test]
fn seal_shorthand_for_a_query_key_with_replace() {
    let out = shorthand(&[
        "--query-param",
        "key",
        "--replace",
        "--no-auth",
        "AIzaSyCLI-query-key-123",
    ])
    .ok();
    let opened = unseal(out.stdout.trim(), true);
    assert_eq!(
        opened["query_param_processor"],
        json!({"param": "key", "token": "AIzaSyCLI-query-key-123", "replace": true})
    );
}

#[test]
fn seal_refuses_credential_form_mistakes() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--replace", "--no-auth", "tok-123456789"],
            "--replace goes with --basic-user or --query-param",
        ),
        (
            &["--git-ref", "agent/*", "--no-auth", "tok-123456789"],
            "--git-ref: git ref pattern \"agent/*\" must start with refs/ (e.g. refs/heads/agent/*)",
        ),
        (
            &["--mcp-tool", "", "--no-auth", "tok-123456789"],
            "--mcp-tool: a pattern of 1 to",
        ),
        (
            &["--basic-user", "a:b", "--no-auth", "tok-123456789"],
            "cannot contain ':'",
        ),
        (
            &[
                "--basic-user",
                "u",
                "--header",
                "x-api-key",
                "--no-auth",
                "t",
            ],
            "cannot be used with",
        ),
        (
            &[
                "--basic-user",
                "u",
                "--query-param",
                "key",
                "--no-auth",
                "t",
            ],
            "cannot be used with",
        ),
    ];
    for (args, want) in cases {
        let out = shorthand(args);
        assert_code(&out, 2);
        assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty());
    }
}
