//! Every request is read one way by the client, the proxy and the upstream: framing two
//! parsers could read differently (Content-Length with Transfer-Encoding, lists, signs,
//! obs-fold, bare CR, odd codings) is refused or normalized to one framing, malformed
//! chunked bodies fail and close, a body left unread after an early refusal is never
//! parsed as a request, control characters never become header bytes (from a sealed
//! secret, a request-time param or a nested secret), oversized heads and bytes that are
//! not HTTP are refused, and the proxy keeps serving.
//!
//! Every plaintext credential a test seals or sends is in
//! [`crate::support::adversary::plaintexts`]; no refusal or transcript may contain one.

use std::time::Duration;

use serde_json::{Value, json};
use tokenizer::secret::b64;
use tokio::io::AsyncWriteExt;

use crate::support::adversary::{
    AUTH, Adversary, HMAC_KEY, OAUTH_ACCESS, OAUTH_REFRESH, TOKEN, answer_then_close,
    assert_no_plaintext, assert_refused, auth_lines, env, exchange, only_response,
    read_until_close, with_params,
};
use crate::support::raw::RawConn;
use crate::support::upstream::Echo;
use crate::support::{Env, bearer, inject, with};

// === request smuggling ===

/// A pipelined request that must never reach the upstream unless the proxy and the
/// client agree it is a request of its own.
fn smuggled(e: &Env, tag: &str) -> String {
    e.raw_get(&format!("/fault/echo-framing?{tag}"), &e.good(), "")
}

/// The head of a POST to the framing echo, up to the framing headers in `framing`.
fn front(e: &Env, version: &str, framing: &str) -> String {
    format!(
        "POST {} {version}\r\nHost: {}\r\n{}{framing}",
        e.url("/fault/echo-framing"),
        e.host(),
        auth_lines(&e.good())
    )
}

/// What `/fault/echo-framing` saw of a forwarded request.
fn framing_of(body: &str) -> (Vec<String>, Vec<String>, String, bool) {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    let list = |k: &str| -> Vec<String> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    (
        list("content-length"),
        list("transfer-encoding"),
        v["body"].as_str().unwrap().to_owned(),
        v["complete"].as_bool().unwrap(),
    )
}

/// Content-Length together with Transfer-Encoding, in either order: hyper lets
/// Transfer-Encoding win, drops Content-Length, and closes the connection after the
/// response (RFC 9112 §6.3), so what follows the chunked body is never read as a
/// request. The upstream gets one framing and the chunked body.
#[tokio::test]
async fn content_length_with_transfer_encoding_is_normalized_and_closed() {
    let e = env(&[]).await;
    for (name, framing) in [
        (
            "CL then TE",
            "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
        ),
        (
            "TE then CL",
            "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
        ),
        (
            "CL 0 then TE",
            "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ),
    ] {
        let before = e.upstream.seen().len();
        let mut conn = RawConn::open(e.tk.addr).await;
        let tag = format!("smuggled-{}", before);
        conn.send(
            format!(
                "{}5\r\nhello\r\n0\r\n\r\n{}",
                front(&e, "HTTP/1.1", framing),
                smuggled(&e, &tag)
            )
            .as_bytes(),
        )
        .await;
        let resp = conn.read_response(false).await;
        assert_eq!(resp.status, 200, "{name}: {}", resp.text());
        assert_eq!(resp.header("connection"), Some("close"), "{name}");
        let (cl, te, body, complete) = framing_of(&resp.text());
        assert!(cl.is_empty(), "{name}: Content-Length forwarded: {cl:?}");
        assert_eq!(te, ["chunked"], "{name}");
        assert_eq!((body.as_str(), complete), ("hello", true), "{name}");
        assert!(conn.is_closed().await, "{name}: connection kept open");
        assert_eq!(e.upstream.seen().len(), before + 1, "{name}");
        assert!(
            e.seen_with(&tag).is_empty(),
            "{name}: smuggled request forwarded"
        );
    }
    e.still_serves().await;
}

/// Framing that two parsers could read differently is refused with 400 before anything
/// is forwarded, and the connection is closed, so the request that follows is never
/// read.
#[tokio::test]
async fn ambiguous_framing_is_refused() {
    let e = env(&[]).await;
    let chunked_hello = "5\r\nhello\r\n0\r\n\r\n";
    let cases: Vec<(&str, String)> = vec![
        (
            "CL list",
            front(&e, "HTTP/1.1", "Content-Length: 5, 5\r\n\r\nhello"),
        ),
        (
            "CL twice, different",
            front(
                &e,
                "HTTP/1.1",
                "Content-Length: 5\r\nContent-Length: 50\r\n\r\nhello",
            ),
        ),
        (
            "CL +5",
            front(&e, "HTTP/1.1", "Content-Length: +5\r\n\r\nhello"),
        ),
        (
            "CL hex",
            front(&e, "HTTP/1.1", "Content-Length: 0x5\r\n\r\nhello"),
        ),
        (
            "CL 5 5",
            front(&e, "HTTP/1.1", "Content-Length: 5 5\r\n\r\nhello"),
        ),
        (
            "obs-fold",
            front(
                &e,
                "HTTP/1.1",
                "Content-Length: 5\r\nX-Fold: a\r\n b\r\n\r\nhello",
            ),
        ),
        (
            "obs-fold in TE",
            front(
                &e,
                "HTTP/1.1",
                &format!(
                    "Transfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\n{chunked_hello}"
                ),
            ),
        ),
        (
            "bare CR",
            front(&e, "HTTP/1.1", "X-A: a\rContent-Length: 5\r\n\r\nhello"),
        ),
        (
            "NUL in a value",
            front(
                &e,
                "HTTP/1.1",
                "X-A: a\0b\r\nContent-Length: 5\r\n\r\nhello",
            ),
        ),
        (
            "TE xchunked",
            front(
                &e,
                "HTTP/1.1",
                &format!("Transfer-Encoding: xchunked\r\n\r\n{chunked_hello}"),
            ),
        ),
        (
            "TE chunked then identity",
            front(
                &e,
                "HTTP/1.1",
                &format!(
                    "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n{chunked_hello}"
                ),
            ),
        ),
        (
            "TE chunked, identity",
            front(
                &e,
                "HTTP/1.1",
                &format!("Transfer-Encoding: chunked, identity\r\n\r\n{chunked_hello}"),
            ),
        ),
        (
            "space before colon",
            front(
                &e,
                "HTTP/1.1",
                &format!("Transfer-Encoding : chunked\r\n\r\n{chunked_hello}"),
            ),
        ),
        (
            "TE in HTTP/1.0",
            front(
                &e,
                "HTTP/1.0",
                &format!("Transfer-Encoding: chunked\r\n\r\n{chunked_hello}"),
            ),
        ),
    ];
    for (name, head) in &cases {
        let tag = format!("smuggled-{}", name.replace(' ', "-"));
        let t = exchange(
            e.tk.addr,
            format!("{head}{}", smuggled(&e, &tag)).as_bytes(),
        )
        .await;
        assert_eq!(t.statuses(), [400], "{name}: {:?}", t.text());
        assert!(t.closed, "{name}: connection kept open");
        assert_no_plaintext(name, &t.text());
    }
    assert!(e.upstream.seen().is_empty(), "{:?}", e.upstream.seen());
    e.still_serves().await;
}

/// Forms a strict parser might refuse but hyper reads one way only: they are forwarded
/// with exactly one framing header and the right body, or refused; a request pipelined
/// after them is its own request (client, proxy and upstream agree on the framing).
#[tokio::test]
async fn tolerated_framing_is_forwarded_with_one_framing_or_refused() {
    let e = env(&[]).await;
    let chunked_hello = "5\r\nhello\r\n0\r\n\r\n";
    let bare_lf = front(&e, "HTTP/1.1", "Content-Length: 5\r\n\r\nhello").replace("\r\n", "\n");
    let cases: Vec<(&str, String)> = vec![
        (
            "CL twice, same",
            front(
                &e,
                "HTTP/1.1",
                "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            ),
        ),
        ("bare LF line ends", bare_lf),
        (
            "TE with a tab",
            front(
                &e,
                "HTTP/1.1",
                &format!("Transfer-Encoding:\tchunked\r\n\r\n{chunked_hello}"),
            ),
        ),
        (
            "TE upper case",
            front(
                &e,
                "HTTP/1.1",
                &format!("Transfer-Encoding: CHUNKED\r\n\r\n{chunked_hello}"),
            ),
        ),
        (
            "TE chunked, chunked",
            front(
                &e,
                "HTTP/1.1",
                &format!("Transfer-Encoding: chunked, chunked\r\n\r\n{chunked_hello}"),
            ),
        ),
        (
            "TE gzip line, chunked line",
            front(
                &e,
                "HTTP/1.1",
                &format!(
                    "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_hello}"
                ),
            ),
        ),
        (
            "small chunk extension",
            front(
                &e,
                "HTTP/1.1",
                "Transfer-Encoding: chunked\r\n\r\n5;name=\"v\";x\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        (
            "Content-Length in a trailer",
            front(
                &e,
                "HTTP/1.1",
                "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 99\r\n\r\n",
            ),
        ),
    ];
    for (name, head) in &cases {
        let tag = format!("pipelined-{}", name.replace([' ', ','], "-"));
        let before = e.upstream.seen().len();
        let mut conn = RawConn::open(e.tk.addr).await;
        conn.send(format!("{head}{}", smuggled(&e, &tag)).as_bytes())
            .await;
        let resp = conn.read_response(false).await;
        assert_no_plaintext(name, &resp.text());
        if name.contains("gzip") {
            // hyper undoes only the chunking; the proxy refuses any other coding.
            assert_eq!(resp.status, 400, "{name}: {}", resp.text());
            assert!(
                resp.text().contains("unsupported transfer coding"),
                "{name}"
            );
            // The framing itself is sound (chunked is last), so hyper skips the body and
            // the pipelined request is served on its own; the refused one never went up.
            let next = conn.read_response(false).await;
            assert_eq!(next.status, 200, "{name}: {}", next.text());
            assert_eq!(e.seen_with(&tag).len(), 1, "{name}");
            assert_eq!(e.upstream.seen().len(), before + 1, "{name}");
            continue;
        }
        if resp.status == 400 {
            assert!(conn.is_closed().await, "{name}");
            assert_eq!(e.upstream.seen().len(), before, "{name}");
            continue;
        }
        assert_eq!(resp.status, 200, "{name}: {}", resp.text());
        let (cl, te, body, complete) = framing_of(&resp.text());
        assert_eq!(
            cl.len() + te.len(),
            1,
            "{name}: framing {cl:?} {te:?} forwarded"
        );
        assert!(te.iter().all(|t| t == "chunked"), "{name}: {te:?}");
        assert_eq!((body.as_str(), complete), ("hello", true), "{name}");
        // The pipelined request: one request of its own, with its own credential.
        let next = conn.read_response(false).await;
        assert_eq!(next.status, 200, "{name}: {}", next.text());
        let (_, _, body, _) = framing_of(&next.text());
        assert_eq!(body, "", "{name}");
        assert_eq!(e.seen_with(&tag).len(), 1, "{name}");
        assert_eq!(e.upstream.seen().len(), before + 2, "{name}");
    }
    e.still_serves().await;
}

/// A chunked body that breaks the chunked syntax (an extension over hyper's 16 KiB
/// limit, bare-LF chunk lines, an overflowing or non-hex size, data longer than its
/// size) fails the request; the connection is closed and the request that follows is
/// never read. The client is at fault: 400.
#[tokio::test]
async fn malformed_chunked_bodies_fail_the_request_and_close() {
    let e = env(&[]).await;
    let huge_ext = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(20_000));
    let cases: Vec<(&str, String)> = vec![
        ("chunk extension over the limit", huge_ext),
        ("bare LF chunk lines", "5\nhello\n0\n\n".to_owned()),
        (
            "size overflow",
            "10000000000000005\r\nhello\r\n0\r\n\r\n".to_owned(),
        ),
        ("size not hex", "5x\r\nhello\r\n0\r\n\r\n".to_owned()),
        ("negative size", "-5\r\nhello\r\n0\r\n\r\n".to_owned()),
        (
            "data longer than size",
            "3\r\nhello\r\n0\r\n\r\n".to_owned(),
        ),
    ];
    for (name, body) in &cases {
        let tag = format!("smuggled-{}", name.replace(' ', "-"));
        let t = exchange(
            e.tk.addr,
            format!(
                "{}{body}{}",
                front(&e, "HTTP/1.1", "Transfer-Encoding: chunked\r\n\r\n"),
                smuggled(&e, &tag)
            )
            .as_bytes(),
        )
        .await;
        let statuses = t.statuses();
        assert!(
            statuses.len() <= 1 && statuses.iter().all(|s| *s == 400),
            "{name}: {:?}",
            t.text()
        );
        assert!(t.closed, "{name}: connection kept open: {:?}", t.text());
        assert_no_plaintext(name, &t.text());
        assert!(
            e.seen_with(&tag).is_empty(),
            "{name}: smuggled request forwarded"
        );
    }
    // Nothing the upstream was handed had a complete body.
    assert!(
        e.upstream.seen().iter().all(|r| !r.contains("smuggled")),
        "{:?}",
        e.upstream.seen()
    );
    e.still_serves().await;
}

/// A request refused before its body is read (bad secret: 400; too large to buffer:
/// 413) leaves a body that holds a whole request: hyper discards it (or closes), and it
/// is never read as a request of its own.
#[tokio::test]
async fn early_refusals_never_parse_the_unread_body_as_a_request() {
    let e = env(&["--max-buffered-body", "1KiB"]).await;
    let hmac = e.seal(&json!({
        "inject_hmac_processor": {"key": b64::encode(HMAC_KEY.as_bytes()), "hash": "sha256"},
        "bearer_auth": bearer(AUTH),
    }));
    let inner = smuggled(&e, "smuggled-in-body");
    let padded = format!("{inner}{}", "p".repeat(2000));
    let chunked = format!("{:x}\r\n{padded}\r\n0\r\n\r\n", padded.len());
    let head = |secret: &str, framing: String| {
        format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nProxy-Tokenizer: {secret}\r\n\
             Proxy-Authorization: Bearer {AUTH}\r\n{framing}\r\n",
            e.url("/fault/echo-framing"),
            e.host()
        )
    };
    let cases = [
        (
            "bad secret, Content-Length",
            head("!!!", format!("Content-Length: {}\r\n", inner.len())) + &inner,
            400,
        ),
        (
            "bad secret, chunked",
            head("!!!", "Transfer-Encoding: chunked\r\n".to_owned()) + &chunked,
            400,
        ),
        (
            "too large, Content-Length",
            head(&hmac, format!("Content-Length: {}\r\n", padded.len())) + &padded,
            413,
        ),
        (
            "too large, chunked",
            head(&hmac, "Transfer-Encoding: chunked\r\n".to_owned()) + &chunked,
            413,
        ),
    ];
    for (name, bytes, status) in &cases {
        let mut conn = RawConn::open(e.tk.addr).await;
        conn.send(bytes.as_bytes()).await;
        let resp = conn.read_response(false).await;
        assert_refused(name, resp.status, &resp.text(), *status, "");
        // The same connection still works, and only for the request sent next.
        let good = e.good();
        let _ = conn
            .stream
            .write_all(e.raw_get("/after", &good, "").as_bytes())
            .await;
        let rest = read_until_close(&mut conn.stream, Duration::from_secs(1)).await;
        if !rest.bytes.is_empty() {
            assert_eq!(rest.statuses(), [200], "{name}: {:?}", rest.text());
        } else {
            assert!(rest.closed, "{name}: neither answered nor closed");
        }
        assert!(
            e.seen_with("smuggled").is_empty(),
            "{name}: {:?}",
            e.upstream.seen()
        );
    }
    e.still_serves().await;
}

// === header injection ===

/// CR, LF, NUL and DEL never reach a header: not from a sealed token, fmt or dst, not
/// from request-time params (JSON escapes decode to control characters), and not from
/// nested or OAuth secrets. Each is refused with 400 before anything is forwarded.
#[tokio::test]
async fn control_characters_never_become_header_bytes() {
    let e = env(&[]).await;
    let good = e.good();
    let hmac = json!({"key": b64::encode(HMAC_KEY.as_bytes()), "hash": "sha256"});
    let sealed =
        |secret: Value| e.seal_raw(&with(secret, json!({"bearer_auth": bearer(AUTH)})).to_string());
    let params = |p: Value| format!("{good}; {p}");
    let hmac_secret = sealed(json!({ "inject_hmac_processor": hmac }));
    let mut cases: Vec<(String, String)> = Vec::new();
    for bad in [
        "\n",
        "\r",
        "\0",
        "\x7f",
        "\r\n\r\nGET / HTTP/1.1\r\nX-Evil: 1",
    ] {
        let show = format!("{bad:?}");
        cases.extend([
            (
                format!("token {show}"),
                sealed(json!({"inject_processor": {"token": format!("{TOKEN}{bad}X-Evil: 1")}})),
            ),
            (
                format!("sealed fmt {show}"),
                sealed(json!({"inject_processor": {"token": TOKEN, "fmt": format!("Bearer %s{bad}X-Evil: 1")}})),
            ),
            (
                format!("sealed dst {show}"),
                sealed(json!({"inject_processor": {"token": TOKEN, "dst": format!("X-A{bad}X-Evil")}})),
            ),
            (
                format!("param dst {show}"),
                params(json!({ "dst": format!("X-A{bad}X-Evil") })),
            ),
            (
                format!("param fmt {show}"),
                params(json!({ "fmt": format!("Bearer %s{bad}X-Evil: 1") })),
            ),
            (
                format!("hmac param fmt {show}"),
                format!("{hmac_secret}; {}", json!({ "fmt": format!("Bearer %x{bad}X-Evil: 1") })),
            ),
            (
                format!("oauth access token {show}"),
                sealed(json!({"oauth2_processor": {"token": {
                    "access_token": format!("{OAUTH_ACCESS}{bad}X-Evil: 1"),
                    "refresh_token": OAUTH_REFRESH}}})),
            ),
            (
                format!("nested token {show}"),
                sealed(json!({"multi_processor": [
                    {"inject_processor": {"token": TOKEN, "dst": "X-First"}},
                    {"inject_processor": {"token": format!("{TOKEN}{bad}X-Evil: 1")}},
                ]})),
            ),
        ]);
        let refresh = sealed(json!({"oauth2_processor": {"token": {
            "access_token": OAUTH_ACCESS,
            "refresh_token": format!("{OAUTH_REFRESH}{bad}X-Evil: 1")}}}));
        cases.push((
            format!("oauth refresh token {show}"),
            format!("{refresh}; {}", json!({"st": "refresh"})),
        ));
    }
    // Header names that are not tokens.
    for dst in ["X-A: b", "X A", "X-A\t", "", "X-Ä"] {
        cases.push((format!("param dst {dst:?}"), params(json!({ "dst": dst }))));
    }
    // Sent raw: a client library refuses non-ASCII header values.
    for (name, value) in &cases {
        let t = exchange(
            e.tk.addr,
            e.raw_get("/inject", value, "Connection: close\r\n")
                .as_bytes(),
        )
        .await;
        let (status, body) = only_response(&t);
        if value.bytes().any(|b| b == 0x7f) {
            // JSON does not escape DEL, so the header line itself holds it: hyper
            // refuses the request before the proxy sees it.
            assert_eq!((status, body.as_str()), (400, ""), "{name}");
            continue;
        }
        assert_refused(name, status, &body, 400, "bad request");
        assert!(!body.contains("X-Evil"), "{name}: {body}");
    }
    assert!(e.upstream.seen().is_empty(), "{:?}", e.upstream.seen());

    // Control characters where they are data, not header bytes, are fine: the HMAC
    // message is hashed, and the header carries hex.
    let with_msg = format!("{hmac_secret}; {}", json!({"msg": "a\r\nX-Evil: 1\0"}));
    let got = e.authed("/msg", &with_msg).await;
    assert_eq!(got.status, 200);
    let echo = Echo::parse(&got.body);
    let auth = echo.header("authorization").unwrap();
    let hex = auth.strip_prefix("Bearer ").unwrap();
    assert!(
        hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "{auth}"
    );
    assert!(echo.header("x-evil").is_none());
    e.still_serves().await;
}

/// A credential or a fmt param with a line break is refused; nothing reaches the upstream
/// until a good request, which carries no injected header.
#[tokio::test]
async fn credential_with_a_line_break_never_reaches_upstream() {
    let e = env(&[]).await;
    let sealed = e.seal(&inject(&format!("{TOKEN}\r\nX-Evil: 1"), AUTH));
    e.refused(&[&sealed], 400, "not a valid header value").await;
    let fmt = with_params(&e.good(), json!({"fmt": "Bearer %s\r\nX-Evil: 1"}));
    e.refused(&[&fmt], 400, "bad request").await;
    e.upstream_untouched();
    let good = e.good();
    let (status, body) = e.get_with(&[&good]).await;
    assert_eq!(status, 200, "{body}");
    let echo = Echo::parse(&body);
    assert!(echo.header("x-evil").is_none(), "{body}");
    assert_eq!(e.upstream.connection_count(), 1);
}

// === oversized heads ===

/// A request target over hyper's URI limit (64 KiB) is refused before the pipeline; an
/// upstream response with more headers than the client parses (100) is a 502.
#[tokio::test]
async fn oversized_targets_and_upstream_header_floods_are_refused() {
    let e = env(&[]).await;
    let good = e.good();
    let long = format!("/{}", "a".repeat(70_000));
    let t = exchange(e.tk.addr, e.raw_get(&long, &good, "").as_bytes()).await;
    let statuses = t.statuses();
    assert!(
        statuses.len() == 1 && (400..500).contains(&statuses[0]),
        "{statuses:?}"
    );
    assert!(t.closed);
    assert!(e.upstream.seen().is_empty());

    let got = e.authed("/fault/many-headers?n=200", &good).await;
    assert_refused("many headers", got.status, &got.body, 502, "bad gateway");
    e.still_serves().await;
}

/// A request head past hyper's read buffer (about 400 KiB), or with more headers than
/// it parses (100), is answered 4xx or dropped; either way the proxy keeps serving.
#[tokio::test]
async fn oversized_request_headers_are_refused() {
    let e = env(&[]).await;
    let good = e.good();
    let head = |extra: &str| {
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nProxy-Tokenizer: {good}\r\n\
             Proxy-Authorization: Bearer {AUTH}\r\nConnection: close\r\n{extra}\r\n",
            e.url("/"),
            e.host()
        )
    };
    let huge_value = format!("X-Big: {}\r\n", "a".repeat(1024 * 1024));
    let many_lines: String = (0..600)
        .map(|i| format!("X-B{i}: {}\r\n", "b".repeat(1024)))
        .collect();
    let many: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
    for extra in [&huge_value, &many_lines, &many] {
        if let Some((status, text)) = answer_then_close(e.tk.addr, head(extra).as_bytes()).await {
            assert!(
                (400..500).contains(&status),
                "{status}: {}",
                &text[..text.len().min(300)]
            );
            assert!(!text.contains(TOKEN));
        }
    }
    e.unharmed().await;
}

// === bytes that are not HTTP ===

/// Garbage, a TLS ClientHello, NUL bytes, broken request lines and headers, conflicting
/// or negative lengths and unknown codings: each is answered 400, and the proxy stays up.
#[tokio::test]
async fn malformed_requests_get_400_and_the_server_stays_up() {
    let e = env(&[]).await;
    let cases: &[&[u8]] = &[
        b"GARBAGE\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
        b"\x00\x01\x02\x03\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        b"GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad\x00: v\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    ];
    for bytes in cases {
        let answer = answer_then_close(e.tk.addr, bytes).await;
        let (status, text) =
            answer.unwrap_or_else(|| panic!("no answer to {:?}", String::from_utf8_lossy(bytes)));
        assert_eq!(
            status,
            400,
            "{:?}: {text:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    e.unharmed().await;
}
