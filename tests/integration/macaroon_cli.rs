//! `tokenizer macaroon`: genkey → mint → attenuate → inspect with the real binary, the
//! tokens checked by the library's `macaroon_auth`, and the refusals (exit 2, one line).

use ::tokenizer::auth::macaroon::{self, MacaroonError, RequestFacts};
use ::tokenizer::auth::{Candidates, MacaroonAuth};
use ::tokenizer::secret::b64;
use http::header::PROXY_AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::support::binary::{self, Output, command, run, run_cmd};

const OPEN: &str = binary::GO_OPEN_KEY;
const SEAL: &str = binary::GO_SEAL_KEY;

/// `tokenizer macaroon ARGS` with `stdin`.
fn macaroon_cmd(args: &[&str], stdin: &str) -> Output {
    let mut cmd = command();
    cmd.arg("macaroon").args(args);
    run_cmd(cmd, stdin.as_bytes())
}

/// The one line a successful command printed.
fn line(out: Output) -> String {
    let out = out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{out:?}");
    lines[0].to_owned()
}

/// `tokenizer macaroon mint --key KEY ARGS`: the one line it printed.
fn mint(key: &str, args: &[&str]) -> String {
    let mut all = vec!["macaroon", "mint", "--key", key];
    all.extend_from_slice(args);
    line(run(&all))
}

fn genkey() -> (String, Value) {
    let out = run(&["macaroon", "genkey"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    (lines[0].to_owned(), serde_json::from_str(lines[1]).unwrap())
}

fn inspect(token: &str, key: Option<&str>) -> Vec<Value> {
    let mut args = vec!["inspect", "--token", token];
    if let Some(key) = key {
        args.extend(["--key", key]);
    }
    let out = macaroon_cmd(&args, "").ok();
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// What `macaroon_auth` with `key` says about `header` for a request.
fn check(
    key: &str,
    header: &str,
    method: &str,
    path: &str,
    host: &str,
) -> Result<(), MacaroonError> {
    let mut map = HeaderMap::new();
    map.append(PROXY_AUTHORIZATION, HeaderValue::from_str(header).unwrap());
    let candidates = Candidates::from_headers([&map]);
    let auth = MacaroonAuth::new(b64::decode(key).unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    auth.check(&candidates, &RequestFacts { method, path, host }, now)
}

fn assert_refused(out: &Output, needle: &str) {
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.starts_with("tokenizer: "), "{out:?}");
    assert!(out.stderr.contains(needle), "want {needle:?}: {out:?}");
}

#[test]
fn genkey_mint_attenuate_inspect_round_trip() {
    let (key, snippet) = genkey();
    assert_eq!(b64::decode(&key).unwrap().len(), 32);
    assert_eq!(snippet, json!({ "macaroon_auth": { "key": key } }));

    let minted = line(macaroon_cmd(
        &[
            "mint",
            "--key",
            "-",
            "--method",
            "GET",
            "--method",
            "POST",
            "--host",
            "api.example.com:8443",
            "--ttl",
            "1h",
        ],
        &format!("{key}\n"),
    ));
    assert!(minted.starts_with("FlyV1 fm2_"), "{minted}");

    let narrowed = line(macaroon_cmd(
        &[
            "attenuate",
            "--token",
            "-",
            "--method",
            "GET",
            "--path-prefix",
            "/v1/",
        ],
        &minted,
    ));
    assert!(narrowed.starts_with("FlyV1 fm2_"), "{narrowed}");
    assert_ne!(narrowed, minted);

    let host = "api.example.com:8443";
    assert_eq!(check(&key, &minted, "POST", "/v2/x", host), Ok(()));
    assert_eq!(check(&key, &narrowed, "GET", "/v1/x", host), Ok(()));
    assert!(matches!(
        check(&key, &narrowed, "POST", "/v1/x", host),
        Err(MacaroonError::Denied { what: "method", .. })
    ));
    assert!(matches!(
        check(&key, &narrowed, "GET", "/v2/x", host),
        Err(MacaroonError::Denied { what: "path", .. })
    ));
    assert!(matches!(
        check(&key, &narrowed, "GET", "/v1/x", "api.example.com"),
        Err(MacaroonError::Denied { what: "host", .. })
    ));
    let (other_key, _) = genkey();
    assert_eq!(
        check(&other_key, &narrowed, "GET", "/v1/x", host),
        Err(MacaroonError::UnknownKey)
    );

    let shown = inspect(&narrowed, Some(&key));
    assert_eq!(shown.len(), 1);
    let report = &shown[0];
    let kid = macaroon::key_id(&b64::decode(&key).unwrap());
    assert_eq!(report["location"], "tokenizer");
    assert_eq!(report["kid"], hex::encode(kid));
    assert_eq!(report["proof"], false);
    assert_eq!(report["verified"], true);
    let caveats = report["caveats"].as_array().unwrap();
    let types: Vec<&str> = caveats
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "281474976710656",
            "281474976710660",
            "ValidityWindow",
            "281474976710656",
            "281474976710658"
        ]
    );
    assert_eq!(caveats[0]["body"], json!(["GET", "POST"]));
    assert_eq!(caveats[1]["body"], json!([host]));
    assert_eq!(caveats[3]["body"], json!(["GET"]));
    assert_eq!(caveats[4]["body"], json!(["/v1/"]));
    let window = &caveats[2]["body"];
    assert_eq!(window["not_before"], 0);
    let ttl = window["not_after"].as_i64().unwrap()
        - std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
    assert!((3590..=3600).contains(&ttl), "{ttl}");

    // Without the key nothing is verified; with the wrong one it does not verify.
    assert!(inspect(&narrowed, None)[0].get("verified").is_none());
    assert_eq!(inspect(&narrowed, Some(&other_key))[0]["verified"], false);
    assert_eq!(
        inspect(&minted, None)[0]["caveats"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn genkey_snippet_seals_and_opens_as_macaroon_auth() {
    let (key, snippet) = genkey();
    let mut secret = json!({ "inject_processor": { "token": "upstream-secret" } });
    secret["macaroon_auth"] = snippet["macaroon_auth"].clone();
    let sealed = line(run(&[
        "seal",
        "--seal-key",
        SEAL,
        "--json",
        &secret.to_string(),
    ]));
    let opened = binary::unseal(OPEN, &sealed, true);
    assert_eq!(opened["macaroon_auth"]["key"], key);
    let redacted = line(run(&["unseal", "--open-key", OPEN, "--token", &sealed]));
    assert!(!redacted.contains(&key), "{redacted}");
}

#[test]
fn bare_prints_tokens_without_the_scheme() {
    let (key, _) = genkey();
    let bare = mint(&key, &["--bare"]);
    assert!(bare.starts_with("fm2_"), "{bare}");
    assert!(!bare.contains(' '), "{bare}");
    let narrowed = line(run(&[
        "macaroon",
        "attenuate",
        "--token",
        &bare,
        "--host",
        "a.example",
        "--bare",
    ]));
    assert!(narrowed.starts_with("fm2_"), "{narrowed}");
    assert_eq!(
        check(&key, &format!("Bearer {narrowed}"), "GET", "/", "a.example"),
        Ok(())
    );
}

#[test]
fn mint_without_caveats_warns() {
    let (key, _) = genkey();
    let out = run(&["macaroon", "mint", "--key", &key]).ok();
    assert!(out.stderr.contains("warning: no caveats"), "{out:?}");
    assert_eq!(out.stdout.lines().count(), 1);
}

#[test]
fn validity_flags_take_unix_seconds_and_rfc3339() {
    let (key, _) = genkey();
    let minted = mint(&key, &["--not-before", "2023-11-14T22:13:20Z"]);
    let window = &inspect(&minted, None)[0]["caveats"][0]["body"];
    assert_eq!(window["not_before"], 1_700_000_000);
    // The latest time Go's time.Unix handles: 9999-12-31T23:59:59Z.
    assert_eq!(window["not_after"], 253_402_300_799_i64);

    let minted = mint(
        &key,
        &["--not-before", "1700000000", "--not-after", "4102444800"],
    );
    let window = &inspect(&minted, None)[0]["caveats"][0]["body"];
    assert_eq!(
        window,
        &json!({ "not_before": 1_700_000_000, "not_after": 4_102_444_800_i64 })
    );
}

#[test]
fn bad_caveat_flags_exit_2_with_one_line() {
    let (key, _) = genkey();
    let cases: [(&[&str], &str); 12] = [
        (
            &["--path-pattern", "("],
            "--path-pattern \"(\" is not a valid regular expression",
        ),
        (
            &["--path", "v1/things"],
            "--path \"v1/things\" must be an escaped path",
        ),
        (&["--path-prefix", "/a b"], "--path-prefix"),
        (&["--path", "/a?b=1"], "no query"),
        (&["--method", "GE T"], "is not an HTTP method"),
        (&["--method", ""], "is not an HTTP method"),
        (&["--host", ""], "--host"),
        (&["--host", "a.example/path"], "--host"),
        (
            &["--not-before", "soon"],
            "neither unix seconds nor RFC 3339",
        ),
        (&["--ttl", "five"], "--ttl \"five\" is not a duration"),
        (&["--not-after", "1"], "already be expired"),
        (
            &["--not-before", "4102444800", "--not-after", "4000000000"],
            "expire before it becomes valid",
        ),
    ];
    for (flags, needle) in cases {
        let mut args = vec!["macaroon", "mint", "--key", &key];
        args.extend_from_slice(flags);
        assert_refused(&run(&args), needle);
    }
}

#[test]
fn bad_keys_and_tokens_exit_2() {
    assert_refused(
        &run(&["macaroon", "mint", "--key", "!!"]),
        "--key is not standard base64",
    );
    assert_refused(&run(&["macaroon", "mint", "--key", ""]), "--key is empty");
    assert_refused(
        &macaroon_cmd(&["mint", "--key", "-"], "\n"),
        "--key is empty",
    );
    assert_refused(
        &run(&[
            "macaroon",
            "attenuate",
            "--token",
            "fm2_AAAA",
            "--method",
            "GET",
        ]),
        "--token: malformed macaroon",
    );
    assert_refused(
        &run(&[
            "macaroon",
            "attenuate",
            "--token",
            "Bearer secret",
            "--method",
            "GET",
        ]),
        "no tokenizer macaroon",
    );
    assert_refused(
        &run(&["macaroon", "inspect", "--token", "Bearer secret"]),
        "no macaroon",
    );

    let (key, _) = genkey();
    let minted = mint(&key, &[]);
    assert_refused(
        &run(&["macaroon", "attenuate", "--token", &minted]),
        "nothing to add",
    );

    // clap's own refusals (missing or conflicting flags) also exit 2.
    for args in [
        &["macaroon", "mint"][..],
        &[
            "macaroon",
            "mint",
            "--key",
            &key,
            "--ttl",
            "1h",
            "--not-after",
            "4102444800",
        ],
        &["macaroon", "inspect"],
        &["macaroon", "nope"],
    ] {
        let out = run(args);
        assert_eq!(out.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
}

#[test]
fn attenuate_keeps_the_other_tokens_of_a_bundle() {
    let (key, _) = genkey();
    let minted = line(run(&["macaroon", "mint", "--key", &key, "--bare"]));
    let bundle = format!("FlyV1 other-token,{minted}");
    let narrowed = line(run(&[
        "macaroon",
        "attenuate",
        "--token",
        &bundle,
        "--method",
        "GET",
    ]));
    let rest = narrowed
        .strip_prefix("FlyV1 other-token,fm2_")
        .unwrap_or_else(|| panic!("{narrowed}"));
    assert!(!rest.contains(','), "{narrowed}");
    assert_eq!(check(&key, &narrowed, "GET", "/", "h"), Ok(()));
    assert!(check(&key, &narrowed, "PUT", "/", "h").is_err());
}
