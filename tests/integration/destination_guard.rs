//! The destination guard: a request never reaches a private or loopback address, in any
//! spelling (decimal, octal, hex and short IPv4; mapped, compatible, NAT64, 6to4 and zoned
//! IPv6; names that resolve there), on any port, and never the tokenizer's own listener
//! or its admin listener, even where loopback is otherwise allowed. The guard runs before
//! any connect; the client learns the rule, never the resolved address.
//!
//! The guard test that needs control of name resolution (one name, a public and a
//! private address) runs as root in a network namespace: `tests/e2e/dual_resolution.rs`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

use crate::support::adversary::{
    AUTH, Adversary, TOKEN, assert_no_plaintext, assert_refused, assert_refused_sent, auth_lines,
    env, exchange, only_response, plaintext_server,
};
use crate::support::raw::RawConn;
use crate::support::tokenizer::Tokenizer;
use crate::support::upstream::Echo;
use crate::support::{Env, inject};

/// A proxy whose guard exempts nothing, and a TLS upstream on 127.0.0.1 that counts
/// connections: a spelling of loopback that slipped past the guard would reach it.
async fn guarded(extra: &[&str]) -> Env {
    Env::builder().guard(true).flags(extra).start().await
}

/// GET `url` through `tk` with a good secret, sent as written (a client library would
/// normalize `127.1` or `[0:0::1]` first); status and body.
async fn get_via(tk: &Tokenizer, url: &str) -> (u16, String) {
    let sealed = tk.seal(&inject(TOKEN, AUTH));
    let authority = url
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .unwrap_or(url);
    let t = exchange(
        tk.addr,
        format!(
            "GET {url} HTTP/1.1\r\nHost: {authority}\r\n{}Connection: close\r\n\r\n",
            auth_lines(&sealed)
        )
        .as_bytes(),
    )
    .await;
    only_response(&t)
}

/// The request for `url` was refused without a dial: by the guard (400 `destination not
/// allowed`), as a host that is neither a DNS name nor an IP literal (400 `bad host`),
/// or because the name does not resolve (502).
fn assert_not_dialled(url: &str, status: u16, body: &str) {
    let ok = match status {
        400 => body.contains("destination not allowed") || body.contains("bad host"),
        502 => body.contains("resolving upstream host"),
        _ => false,
    };
    assert!(ok, "{url}: {status} {body:?}");
    assert_refused(url, status, body, status, "");
    assert!(
        !body.contains("127.0.0.1"),
        "{url}: address echoed: {body:?}"
    );
}

/// Relay every connection `listener` (on 127.0.0.2) accepts to `to`: lets a proxy whose
/// guard denies 127.0.0.1 still reach the test upstream through an address it was told
/// to allow.
fn relay_to(listener: TcpListener, to: SocketAddr) {
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut upstream) = TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
}

#[tokio::test]
async fn decimal_octal_hex_and_short_ipv4_never_reach_loopback() {
    let g = guarded(&[]).await;
    let (upstream, tk) = (&g.upstream, &g.tk);
    let port = upstream.port();
    for host in [
        "2130706433",
        "017700000001",
        "0x7f000001",
        "0177.0.0.1",
        "0x7f.0.0.1",
        "0x7F.0x0.0x0.0x1",
        "0177.1",
        "0x7f.1",
        "127.1",
        "127.0.1",
        "127.000.000.001",
        "0",
        "0.0.0.0",
        "127.0.0.1.",
        "LOCALHOST",
        "LocalHost",
    ] {
        let url = format!("http://{host}:{port}/");
        let (status, body) = get_via(tk, &url).await;
        assert_not_dialled(&url, status, &body);
    }
    // The spellings that are valid host names still meet the guard, not a resolver
    // failure: the guard ran on what they resolve to.
    for host in ["0.0.0.0", "LOCALHOST"] {
        let (status, body) = get_via(tk, &format!("http://{host}:{port}/")).await;
        assert_refused(host, status, &body, 400, "destination not allowed");
    }
    assert_eq!(
        upstream.connection_count(),
        0,
        "a spelling reached loopback"
    );
}

#[tokio::test]
async fn ipv6_loopback_mapped_compatible_and_zoned_forms_are_refused() {
    let g = guarded(&[]).await;
    let (upstream, tk) = (&g.upstream, &g.tk);
    let port = upstream.port();
    let guard_refuses = [
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
        "[0000:0000:0000:0000:0000:0000:0000:0001]",
        "[::0:1]",
        "[::]",
        "[::ffff:7f00:1]",
        "[::ffff:127.0.0.2]",
        "[::FFFF:127.0.0.1]",
        "[::ffff:0.0.0.0]",
        "[::ffff:a9fe:a9fe]",
        "[::ffff:10.0.0.1]",
        "[::127.0.0.1]",
        "[::7f00:1]",
        "[64:ff9b::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[64:ff9b:1::7f00:1]",
        "[2002:7f00:1::1]",
        "[fe80::1]",
        "[fd00::1]",
    ];
    for host in guard_refuses {
        let (status, body) = get_via(tk, &format!("http://{host}:{port}/")).await;
        assert_refused(host, status, &body, 400, "destination not allowed");
    }
    // Zone ids: percent-encoded (RFC 6874) or raw, on link-local and loopback.
    for host in [
        "[fe80::1%25eth0]",
        "[fe80::1%25lo]",
        "[fe80::1%eth0]",
        "[::1%25lo]",
        "[::ffff:127.0.0.1%25lo]",
    ] {
        let url = format!("http://{host}:{port}/");
        let (status, body) = get_via(tk, &url).await;
        if status == 400 && body.is_empty() {
            // hyper refused the request target itself.
            continue;
        }
        assert_not_dialled(&url, status, &body);
    }
    assert_eq!(upstream.connection_count(), 0, "a form reached loopback");
}

/// `http://host:PORT` with any port but 80 and 443 is dialled on that port, with TLS,
/// and the guard still applies; `:80` means 443.
#[tokio::test]
async fn other_ports_are_dialled_with_tls_and_still_guarded() {
    let e = env(&[]).await;
    let good = e.good();
    // A TLS upstream on an arbitrary port: reached, over TLS, with the credential.
    let mut conn = RawConn::open(e.tk.addr).await;
    conn.send(e.raw_get("/port", &good, "").as_bytes()).await;
    let resp = conn.read_response(false).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echo = Echo::parse(&resp.text());
    assert_eq!(echo.header("host").unwrap(), e.host());
    // `:80` is port 443: the pin for api80.test applies only to 443.
    conn.send(
        format!(
            "GET http://api80.test:80/eighty HTTP/1.1\r\nHost: api80.test:80\r\n{}\r\n",
            auth_lines(&good)
        )
        .as_bytes(),
    )
    .await;
    let resp = conn.read_response(false).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        Echo::parse(&resp.text()).header("host").unwrap(),
        "api80.test"
    );

    // A plain-text server on another port is spoken to in TLS, so it sees a ClientHello,
    // never the request or its credential.
    let (plain, got) = plaintext_server().await;
    let url = format!("http://{plain}/steal");
    let (status, body) = get_via(&e.tk, &url).await;
    assert_refused(&url, status, &body, 502, "bad gateway");
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "one connection attempt");
    assert_eq!(
        &got[0][..2],
        b"\x16\x03",
        "not a TLS handshake: {:?}",
        got[0]
    );
    let text = String::from_utf8_lossy(&got[0]);
    assert!(!text.contains("GET") && !text.contains("steal"), "{text:?}");
    assert_no_plaintext("plain-text upstream", &text);

    // Without the loopback exemption, private destinations are refused on every port,
    // at once: the guard runs before any connect (10.255.255.1 would hang until the
    // connect timeout).
    let g = guarded(&["--upstream-connect-timeout", "5s"]).await;
    let (upstream, tk) = (&g.upstream, &g.tk);
    for host in [
        "10.255.255.1",
        "192.168.0.1",
        "169.254.169.254",
        "127.0.0.1",
        "[::1]",
    ] {
        for port in [22, 25, 81, 3306, 6379, 8080, 9443, 65535, upstream.port()] {
            let url = format!("http://{host}:{port}/");
            let started = Instant::now();
            let (status, body) = get_via(tk, &url).await;
            assert_refused(&url, status, &body, 400, "destination not allowed");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{url}: took {:?}",
                started.elapsed()
            );
        }
    }
    assert_eq!(upstream.connection_count(), 0);
}

/// Only what `--upstream-allow-cidrs` allows is dialled: private, loopback, link-local,
/// CGNAT and unspecified addresses, mapped forms and names that resolve there are 400.
#[tokio::test]
async fn denied_destinations_are_400() {
    let relay = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let ok_pin = format!("ok.test={}", relay.local_addr().unwrap());
    // No loopback exemption: only the relay's 127.0.0.2 is allowed.
    let e = Env::builder()
        .names(&["127.0.0.1", "ok.test", "api.test"])
        .pins(&[&ok_pin])
        .guard(true)
        .flags(&["--upstream-allow-cidrs", "127.0.0.2/32"])
        .start()
        .await;
    relay_to(relay, e.upstream.addr);
    let port = e.upstream.port();
    let good = e.good();
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://127.1.2.3:{port}/"),
        format!("http://[::1]:{port}/"),
        "http://10.0.0.1:9/".to_owned(),
        "http://192.168.1.1:9/".to_owned(),
        "http://169.254.169.254:9/".to_owned(),
        "http://100.64.0.1:9/".to_owned(),
        "http://0.0.0.0:9/".to_owned(),
        "http://[fdaa::3]:9/".to_owned(),
        "http://[fe80::1]:9/".to_owned(),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://[::ffff:169.254.169.254]:{port}/"),
        format!("http://localhost:{port}/"),
        "http://api.test/".to_owned(),
    ] {
        let (status, body) = e.get_url(&url, &[&good]).await;
        assert_refused_sent(
            &url,
            status,
            &body,
            400,
            "destination not allowed",
            &[&good],
        );
        // The client learns the rule, not the resolved address.
        assert!(!body.contains("127.0.0.1"), "{url}: {body:?}");
    }
    e.upstream_untouched();
    let (status, body) = e.get_url("http://ok.test/", &[&good]).await;
    assert_eq!(status, 200, "{body}");
    let echo = Echo::parse(&body);
    assert_eq!(
        echo.header("authorization").unwrap(),
        format!("Bearer {TOKEN}")
    );
}

/// The proxy's own listener and its admin listener are refused in every spelling, even
/// though loopback is exempt from the built-in list, and in transparent mode too.
#[tokio::test]
async fn the_tokenizer_and_its_admin_listener_are_never_dialled() {
    let e = env(&[
        "--admin-address",
        "127.0.0.1:0",
        "--tokenizer-hostnames",
        "tokenizer.test",
    ])
    .await;
    let admin = e.tk.admin_addr.unwrap();
    // The admin listener is there to be reached.
    let health = reqwest::get(format!("http://{admin}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let good = e.good();
    for port in [e.tk.addr.port(), admin.port()] {
        for host in [
            "127.0.0.1",
            "localhost",
            "LOCALHOST",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "[::127.0.0.1]",
            "[64:ff9b::7f00:1]",
        ] {
            let url = format!("http://{host}:{port}/metrics");
            let (status, body) = get_via(&e.tk, &url).await;
            assert_refused(&url, status, &body, 400, "destination not allowed");
        }
        for host in ["2130706433", "127.1", "0x7f.0.0.1"] {
            let url = format!("http://{host}:{port}/metrics");
            let (status, body) = get_via(&e.tk, &url).await;
            assert_not_dialled(&url, status, &body);
        }
        // Transparent (origin-form) requests whose Host names a listener.
        let mut conn = RawConn::open(e.tk.addr).await;
        for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
            conn.send(
                format!(
                    "GET /metrics HTTP/1.1\r\nHost: {host}\r\n{}\r\n",
                    auth_lines(&good)
                )
                .as_bytes(),
            )
            .await;
            let resp = conn.read_response(false).await;
            assert_refused(
                &host,
                resp.status,
                &resp.text(),
                400,
                "destination not allowed",
            );
        }
    }
    assert!(e.upstream.seen().is_empty());
    e.still_serves().await;
}

/// The proxy's own address, in the spellings a client library sends, is refused even
/// with loopback exempt from the guard.
#[tokio::test]
async fn requests_to_the_tokenizer_itself_are_400() {
    let e = env(&[]).await;
    let good = e.good();
    let own = e.tk.addr.port();
    for url in [
        format!("http://127.0.0.1:{own}/"),
        format!("http://[::ffff:127.0.0.1]:{own}/"),
        format!("http://localhost:{own}/"),
    ] {
        let (status, body) = e.get_url(&url, &[&good]).await;
        assert_refused_sent(
            &url,
            status,
            &body,
            400,
            "destination not allowed",
            &[&good],
        );
    }
    e.unharmed().await;
}
