//! Credentials where an API wants them (issue 25): HTTP Basic auth
//! (`basic_auth_processor`), a query parameter (`query_param_processor`), the
//! `allowed_git_refs` rule on pushes, and the 407 challenge that lets clients send the
//! credentials of their proxy URL. Each form goes through the same rules as the others,
//! is refused where it would be ambiguous, and is never echoed back in any spelling.

use base64::Engine;
use serde_json::{Value, json};

use crate::support::attack::{AUTH, REAL, assert_no_credential, call, caller_sealed, env};
use crate::support::sidecar::SideProxy;
use crate::support::upstream::Echo;
use crate::support::{Env, bearer, curl, with};

/// A proxy without the reflection guard, so that the echo shows what was sent.
async fn unguarded() -> Env {
    Env::builder()
        .names(&["api.test", "other.test"])
        .guard(false)
        .admin()
        .start()
        .await
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn basic(user: &str, extra: Value) -> Value {
    with(
        json!({"basic_auth_processor": {"user": user, "password": REAL}, "bearer_auth": bearer(AUTH)}),
        extra,
    )
}

fn query(param: &str, token: &str, extra: Value) -> Value {
    with(
        json!({"query_param_processor": {"param": param, "token": token}, "bearer_auth": bearer(AUTH)}),
        extra,
    )
}

fn everything(reply: &crate::support::Reply) -> String {
    let headers: String = reply
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    format!("{headers}\n{}", reply.body)
}

// === Basic auth ===

#[tokio::test]
async fn basic_auth_is_sent_as_user_colon_password_and_never_echoed() {
    let s = basic("x-access-token", json!({"allowed_hosts": ["api.test"]}));
    let plain = unguarded().await;
    let sent = call(
        &plain,
        "GET",
        "http://api.test/repo.git/info/refs",
        &[&s],
        &[],
        "",
    )
    .await
    .echo();
    assert_eq!(
        sent.header("authorization").unwrap(),
        format!("Basic {}", b64(&format!("x-access-token:{REAL}")))
    );
    // With the guard (the default), the echo comes back with the credential masked in
    // every spelling: the Basic form and the token itself.
    let e = env(&[]).await;
    let got = call(
        &e,
        "GET",
        "http://api.test/repo.git/info/refs",
        &[&s],
        &[],
        "",
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let text = everything(&got);
    assert!(text.contains("[REDACTED]"), "{text}");
    assert_no_credential("basic echo", &text, REAL);
    assert!(!text.contains(&b64(&format!("x-access-token:{REAL}"))[..40]));
}

#[tokio::test]
async fn gitlab_form_and_non_ascii_users() {
    let e = unguarded().await;
    for user in ["oauth2", "zoë", ""] {
        let s = basic(user, json!({}));
        let sent = call(&e, "GET", "http://api.test/", &[&s], &[], "")
            .await
            .echo();
        let value = sent.header("authorization").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            format!("{user}:{REAL}")
        );
    }
}

#[tokio::test]
async fn a_client_authorization_header_is_ambiguous_unless_the_seal_says_replace() {
    let e = unguarded().await;
    let s = basic("x-access-token", json!({}));
    let mine = [("authorization", "Basic ZHVtbXk6ZHVtbXk=")];
    let before = e.upstream.seen().len();
    let got = call(&e, "GET", "http://api.test/", &[&s], &mine, "").await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert!(
        got.body.contains("already has an authorization header"),
        "{}",
        got.body
    );
    assert!(got.body.contains("replace"), "{}", got.body);
    assert_eq!(
        e.upstream.seen().len(),
        before,
        "refused before the upstream"
    );

    let replacing = with(
        json!({"basic_auth_processor": {"user": "u", "password": REAL, "replace": true},
               "bearer_auth": bearer(AUTH)}),
        json!({}),
    );
    let sent = call(&e, "GET", "http://api.test/", &[&replacing], &mine, "")
        .await
        .echo();
    assert_eq!(sent.header_all("authorization").len(), 1);
    assert_eq!(
        sent.header("authorization").unwrap(),
        format!("Basic {}", b64(&format!("u:{REAL}")))
    );
}

#[tokio::test]
async fn basic_and_query_secrets_keep_every_rule() {
    let e = env(&[]).await;
    let cases: Vec<(Value, &str, &str, u16, &str)> = vec![
        (
            json!({"allowed_hosts": ["other.test"]}),
            "GET",
            "http://api.test/",
            400,
            "secret not valid for api.test",
        ),
        (
            json!({"allowed_methods": ["GET"]}),
            "DELETE",
            "http://api.test/",
            400,
            "method DELETE",
        ),
        (
            json!({"allowed_paths": ["/v1/**"]}),
            "GET",
            "http://api.test/admin",
            400,
            "path /admin",
        ),
        (
            json!({"expires_at": 1_000}),
            "GET",
            "http://api.test/",
            400,
            "expired",
        ),
    ];
    for (rules, method, url, status, needle) in cases {
        for secret in [basic("u", rules.clone()), query("key", REAL, rules.clone())] {
            let got = call(&e, method, url, &[&secret], &[], "").await;
            assert_eq!(got.status, status, "{rules}: {}", got.body);
            assert!(got.body.contains(needle), "{rules}: {}", got.body);
        }
    }
    // Limits and the caller's identity too.
    let once = query("key", REAL, json!({"max_requests": 1}));
    let sealed = e.seal(&once);
    assert_eq!(
        call(&e, "GET", "http://api.test/", &[&sealed], &[], "")
            .await
            .status,
        200
    );
    assert_eq!(
        call(&e, "GET", "http://api.test/", &[&sealed], &[], "")
            .await
            .status,
        429
    );
    let got = e
        .send(
            "GET",
            "http://api.test/",
            &[&e.seal(&basic("u", json!({})))],
            &[],
            "",
        )
        .await;
    assert_eq!(got.status, 407);
}

// === query parameters ===

#[tokio::test]
async fn the_key_is_set_as_a_percent_encoded_parameter_and_never_echoed() {
    let key = "AIza+Sy/k=y&x;1 %";
    let s = query("key", key, json!({}));
    let url = "http://api.test/maps/api/geocode/json?address=a+b&x=1";
    let sent = call(&unguarded().await, "GET", url, &[&s], &[], "")
        .await
        .echo();
    assert_eq!(
        sent.uri(),
        "/maps/api/geocode/json?address=a+b&x=1&key=AIza%2BSy%2Fk%3Dy%26x%3B1%20%25"
    );
    let e = env(&[]).await;
    let got = call(&e, "GET", url, &[&s], &[], "").await;
    assert_eq!(got.status, 200, "{}", got.body);
    let text = everything(&got);
    assert!(text.contains("[REDACTED]"), "{text}");
    assert!(!text.contains("AIza%2BSy%2Fk%3Dy%26x%3B1%20%25"), "{text}");
    assert!(!text.contains(key), "{text}");

    // A key with nothing to encode, on a URL without a query.
    let s = query("api_key", REAL, json!({}));
    let got = call(&e, "GET", "http://api.test/v1/items", &[&s], &[], "").await;
    assert_eq!(got.status, 200);
    assert_no_credential("query echo", &everything(&got), REAL);
    let sent = call(
        &unguarded().await,
        "GET",
        "http://api.test/v1/items",
        &[&s],
        &[],
        "",
    )
    .await;
    assert_eq!(sent.echo().uri(), format!("/v1/items?api_key={REAL}"));
}

#[tokio::test]
async fn a_parameter_the_client_sent_is_refused_or_replaced_whole() {
    let e = unguarded().await;
    let s = query("key", REAL, json!({}));
    let before = e.upstream.seen().len();
    for url in [
        "http://api.test/p?key=dummy",
        "http://api.test/p?a=1&KEY=dummy",
        "http://api.test/p?%6Bey=dummy",
        "http://api.test/p?a=1;key=dummy",
    ] {
        let got = call(&e, "GET", url, &[&s], &[], "").await;
        assert_eq!(got.status, 400, "{url}: {}", got.body);
        assert!(got.body.contains("\"key\""), "{url}: {}", got.body);
    }
    assert_eq!(e.upstream.seen().len(), before);

    let replacing = with(
        json!({"query_param_processor": {"param": "key", "token": REAL, "replace": true},
               "bearer_auth": bearer(AUTH)}),
        json!({}),
    );
    let sent = call(
        &e,
        "GET",
        "http://api.test/p?key=dummy&a=1&key=2",
        &[&replacing],
        &[],
        "",
    )
    .await;
    assert_eq!(sent.echo().uri(), format!("/p?a=1&key={REAL}"));
    // `;` beside the name is ambiguous even when replacing.
    let got = call(
        &e,
        "GET",
        "http://api.test/p?a=1;key=x",
        &[&replacing],
        &[],
        "",
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.body);
}

#[tokio::test]
async fn the_audit_line_never_holds_the_key() {
    let e = env(&[]).await;
    let s = query("key", REAL, json!({"id": "maps"}));
    let got = call(&e, "GET", "http://api.test/geo?address=x", &[&s], &[], "").await;
    assert_eq!(got.status, 200);
    let lines = e.admin().audit("", 1).await;
    let text = serde_json::to_string(&lines).unwrap();
    assert!(text.contains("maps"), "{text}");
    assert_no_credential("audit", &text, REAL);
}

// === 407 challenge ===

#[tokio::test]
async fn a_407_challenges_so_clients_send_their_proxy_url_credentials() {
    let e = env(&[]).await;
    let sealed = e.seal(&basic("u", json!({})));
    let got = e.send("GET", "http://api.test/", &[&sealed], &[], "").await;
    assert_eq!(got.status, 407);
    assert_eq!(
        got.header("proxy-authenticate"),
        Some("Basic realm=\"tokenizer\"")
    );
    // curl with --proxy-anyauth (as git configures libcurl) sends the proxy URL's
    // credentials only after a challenge; the password is the bearer token.
    let proxy = format!("http://agent:{AUTH}@{}", e.tk.addr);
    let header = format!("Proxy-Tokenizer: {sealed}");
    let (ok, out, err) = curl(&[
        "--proxy-anyauth",
        "-x",
        &proxy,
        "-H",
        &header,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "http://api.test/",
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, "200", "{err}");
}

// === git pushes under allowed_git_refs ===

const OLD: &str = "1111111111111111111111111111111111111111";
const NEW: &str = "2222222222222222222222222222222222222222";
const ZERO: &str = "0000000000000000000000000000000000000000";

fn pkt(payload: &str) -> String {
    format!("{:04x}{payload}", payload.len() + 4)
}

/// A receive-pack request body: the commands, the flush, then a stand-in pack.
fn push_body(commands: &[(&str, &str, &str)]) -> String {
    let mut body = String::new();
    for (i, (old, new, name)) in commands.iter().enumerate() {
        let caps = if i == 0 {
            "\0report-status side-band-64k agent=git/2.43"
        } else {
            ""
        };
        body.push_str(&pkt(&format!("{old} {new} {name}{caps}\n")));
    }
    body + "0000PACK-the-objects-follow"
}

async fn push(
    e: &Env,
    secrets: &[&Value],
    body: &str,
    extra: &[(&str, &str)],
) -> crate::support::Reply {
    let mut headers = vec![("content-type", "application/x-git-receive-pack-request")];
    headers.extend_from_slice(extra);
    call(
        e,
        "POST",
        "http://api.test/o/r.git/git-receive-pack",
        secrets,
        &headers,
        body,
    )
    .await
}

#[tokio::test]
async fn a_push_reaches_the_server_only_when_every_ref_is_allowed() {
    let e = unguarded().await;
    let s = basic(
        "x-access-token",
        json!({"allowed_git_refs": ["refs/heads/agent/*"]}),
    );
    let allowed = push_body(&[
        (OLD, NEW, "refs/heads/agent/x"),
        (ZERO, NEW, "refs/heads/agent/y"),
    ]);
    let sent = push(&e, &[&s], &allowed, &[]).await.echo();
    // The body arrived whole: the commands read to judge it, and the pack behind them.
    assert_eq!(sent.body(), allowed);

    let before = e.upstream.seen().len();
    let refused: Vec<(String, &str)> = vec![
        (
            push_body(&[(OLD, NEW, "refs/heads/main")]),
            "refs/heads/main (update)",
        ),
        (
            push_body(&[(OLD, ZERO, "refs/heads/main")]),
            "refs/heads/main (delete)",
        ),
        (
            push_body(&[(ZERO, NEW, "refs/tags/v1")]),
            "refs/tags/v1 (create)",
        ),
        (
            push_body(&[(OLD, NEW, "refs/heads/agent/a/b")]),
            "refs/heads/agent/a/b",
        ),
        // One refused ref refuses the whole push.
        (
            push_body(&[
                (OLD, NEW, "refs/heads/agent/x"),
                (OLD, NEW, "refs/heads/main"),
            ]),
            "refs/heads/main",
        ),
    ];
    for (body, needle) in &refused {
        let got = push(&e, &[&s], body, &[]).await;
        assert_eq!(got.status, 403, "{needle}: {}", got.body);
        assert!(got.body.contains(needle), "{needle}: {}", got.body);
        assert!(got.body.contains("refs/heads/agent/*"), "{}", got.body);
    }
    // Also under another name for the endpoint, and without the content type.
    let main = push_body(&[(OLD, NEW, "refs/heads/main")]);
    for path in [
        "/o/r/git-receive-pack",
        "/o/r.git/git%2Dreceive-pack",
        "/o/r.git/GIT-RECEIVE-PACK",
    ] {
        let got = call(
            &e,
            "POST",
            &format!("http://api.test{path}"),
            &[&s],
            &[],
            &main,
        )
        .await;
        assert_eq!(got.status, 403, "{path}: {}", got.body);
    }
    assert_eq!(
        e.upstream.seen().len(),
        before,
        "no refused push reached the server"
    );

    // Clones and fetches are not pushes.
    let got = call(
        &e,
        "GET",
        "http://api.test/o/r.git/info/refs?service=git-receive-pack",
        &[&s],
        &[],
        "",
    )
    .await;
    assert_eq!(got.status, 200);
    let got = call(
        &e,
        "POST",
        "http://api.test/o/r.git/git-upload-pack",
        &[&s],
        &[("content-type", "application/x-git-upload-pack-request")],
        "0032want x\n0000",
    )
    .await;
    assert_eq!(got.status, 200);
}

/// A push body, its extra headers, and what the refusal must say.
type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);

#[tokio::test]
async fn pushes_that_cannot_be_read_as_the_server_reads_them_are_refused() {
    let e = env(&[]).await;
    let s = basic(
        "x-access-token",
        json!({"allowed_git_refs": ["refs/heads/agent/*"]}),
    );
    let before = e.upstream.seen().len();
    let cert = format!("{}0000", pkt("push-cert\0report-status\n"));
    let cases: Vec<Case<'_>> = vec![
        (
            push_body(&[(OLD, NEW, "refs/heads/agent/x")]),
            vec![("content-encoding", "gzip")],
            "content coding",
        ),
        (cert, vec![], "push-cert"),
        (
            pkt(&format!("{OLD} {NEW} refs/heads/agent/x\n")),
            vec![],
            "ended before",
        ),
        (
            format!(
                "{}0000",
                pkt(&format!("{OLD} {NEW} refs/heads/agent/../../main\n"))
            ),
            vec![],
            "git refuses",
        ),
        ("PACK".to_owned(), vec![], "not a pkt-line"),
    ];
    for (body, headers, needle) in cases {
        let got = push(&e, &[&s], &body, &headers).await;
        assert_eq!(got.status, 400, "{needle}: {}", got.body);
        assert!(got.body.contains(needle), "{needle}: {}", got.body);
    }
    assert_eq!(e.upstream.seen().len(), before);
    // `[]` allows no push at all.
    let read_only = basic("u", json!({"allowed_git_refs": []}));
    let got = push(
        &e,
        &[&read_only],
        &push_body(&[(OLD, NEW, "refs/heads/agent/x")]),
        &[],
    )
    .await;
    assert_eq!(got.status, 403, "{}", got.body);
}

/// The push is judged as it is sent, after every secret's processors: a caller-sealed
/// secret that rewrites the body cannot turn an allowed ref into another after the check.
#[tokio::test]
async fn a_second_secret_cannot_rewrite_the_ref_after_the_check() {
    let e = env(&[]).await;
    let real = basic(
        "x-access-token",
        json!({"allowed_git_refs": ["refs/heads/agent/*"]}),
    );
    // Same length, so the pkt-line stays well-formed once rewritten.
    let rewrite = caller_sealed(
        json!({"inject_body_processor": {"token": "main000000", "placeholder": "agent/AAAA"}}),
        json!({}),
    );
    let body = push_body(&[(OLD, NEW, "refs/heads/agent/AAAA")]);
    let before = e.upstream.seen().len();
    for order in [[&real, &rewrite], [&rewrite, &real]] {
        let got = push(&e, &order, &body, &[]).await;
        assert_eq!(got.status, 403, "{}", got.body);
        assert!(got.body.contains("refs/heads/main000000"), "{}", got.body);
    }
    // And a caller-sealed secret's own looser rule does not loosen the real one's.
    let loose = caller_sealed(
        json!({"inject_processor": {"token": "x", "dst": "x-caller"}}),
        json!({"allowed_git_refs": ["refs/**"]}),
    );
    let main = push_body(&[(OLD, NEW, "refs/heads/main")]);
    let got = push(&e, &[&loose, &real], &main, &[]).await;
    assert_eq!(got.status, 403, "{}", got.body);
    assert_eq!(e.upstream.seen().len(), before);
}

/// The commands may arrive a few bytes at a time (chunked): they are read as they
/// come, and the push is judged all the same.
#[tokio::test]
async fn a_push_dripped_in_small_chunks_is_judged_whole() {
    let e = env(&[]).await;
    let s = basic(
        "x-access-token",
        json!({"allowed_git_refs": ["refs/heads/agent/*"]}),
    );
    for (name, status) in [("refs/heads/agent/x", 200), ("refs/heads/main", 403)] {
        let body = push_body(&[(OLD, NEW, name)]);
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = body
            .as_bytes()
            .chunks(3)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let stream = futures_util::stream::iter(chunks);
        let got = e
            .send(
                "POST",
                "http://api.test/o/r.git/git-receive-pack",
                &[&e.seal(&s)],
                &[("proxy-authorization", &format!("Bearer {AUTH}"))],
                reqwest::Body::wrap_stream(stream),
            )
            .await;
        assert_eq!(got.status, status, "{name}: {}", got.body);
        if status == 200 {
            assert_eq!(
                Echo::parse(&got.body.replace("[REDACTED]", "")).body(),
                body
            );
        }
    }
}

/// Found by the end-to-end test: a refused push bigger than git's 1 MiB buffer (sent
/// chunked) reached git as a broken pipe or an HTTP/2 stream error, not as the 403 —
/// the connection was closed under the pack git was still sending. The rest of a
/// refused push is now read and dropped (bounded) before the answer.
#[tokio::test]
async fn a_big_refused_push_still_gets_its_403() {
    let e = env(&[]).await;
    let s = basic(
        "x-access-token",
        json!({"allowed_git_refs": ["refs/heads/agent/*"]}),
    );
    let sealed = e.seal(&s);
    let proxy = e.tk.proxy_url();
    let side = SideProxy::start(
        &[
            "--targets",
            "api.test=GIT_SEALED",
            "--proxy",
            &proxy,
            "--tokenizer-auth",
            AUTH,
        ],
        &[("GIT_SEALED", &sealed)],
    )
    .await;
    let mut body = push_body(&[(OLD, NEW, "refs/heads/main")]).into_bytes();
    body.extend(std::iter::repeat_n(b'x', 8 << 20));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("push");
    std::fs::write(&file, &body).unwrap();
    let data = format!("@{}", file.display());
    let connect_to = format!("api.test:443:127.0.0.1:{}", side.addr.port());
    let ca = side.ca_path().display().to_string();
    // curl, as git's libcurl sends a big push through the sidecar: HTTP/2 or 1.1,
    // chunked, streaming from a file.
    for version in ["--http2", "--http1.1", "--http2", "--http1.1"] {
        let (ok, out, err) = curl(&[
            "--connect-to",
            &connect_to,
            "--cacert",
            &ca,
            version,
            "-H",
            "Transfer-Encoding: chunked",
            "-H",
            "Content-Type: application/x-git-receive-pack-request",
            "--data-binary",
            &data,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "https://api.test/o/r.git/git-receive-pack",
        ])
        .await;
        assert!(ok, "{version}: {err}");
        assert_eq!(out, "403", "{version}: {err}");
    }
}
