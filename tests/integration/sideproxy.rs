//! The sidecar chain: client (TLS to a forged certificate) → sideproxy → tokenizer →
//! TLS upstream, with real curl, reqwest and WebSocket clients.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::support::sidecar::{REAL_KEY, SideProxy, curl_proxied};
use crate::support::upstream::Echo;
use crate::support::{DeadPort, Env, curl};

/// Upstream (test CA) for `api.test` and `pass.test`, a tokenizer pinned to it, and a
/// sidecar whose only target is `api.test`.
struct Chain {
    env: Env,
    side: SideProxy,
}

async fn chain(extra: &[&str]) -> Chain {
    let env = Env::builder()
        .names(&["api.test", "pass.test"])
        .start()
        .await;
    let side = SideProxy::in_front_of(&env, extra).await;
    Chain { env, side }
}

fn assert_injected(echo: &Echo) {
    assert_eq!(
        echo.header_all("authorization"),
        [format!("Bearer {REAL_KEY}")]
    );
    for name in echo.header_names() {
        assert!(!name.starts_with("proxy-"), "{name} leaked upstream");
    }
}

#[tokio::test]
async fn curl_with_resolve_gets_the_real_credential() {
    let c = chain(&[]).await;
    let out = c.side.curl("/v1/models?limit=1").await;
    let echo = Echo::parse(&out);
    assert_injected(&echo);
    assert_eq!(echo.uri(), "/v1/models?limit=1");
    assert_eq!(echo.header("host").as_deref(), Some("api.test"));
    assert_eq!(echo.header("fly-src-optin").as_deref(), Some("*"));
}

#[tokio::test]
async fn curl_with_connect_to_and_http2() {
    let c = chain(&[]).await;
    let connect_to = format!("api.test:443:127.0.0.1:{}", c.side.addr.port());
    let ca = c.side.ca_path().display().to_string();
    let (ok, out, err) = curl(&[
        "--connect-to",
        &connect_to,
        "--cacert",
        &ca,
        "--http2",
        "-w",
        "\nversion=%{http_version}",
        "-H",
        "x-api-key: dummy",
        "https://api.test/v1/messages",
    ])
    .await;
    assert!(ok, "{err}");
    let (body, version) = out.rsplit_once('\n').unwrap();
    assert_eq!(version, "version=2");
    let echo = Echo::parse(body);
    assert_injected(&echo);
    // The sandbox's dummy key is not forwarded.
    assert_eq!(echo.header("x-api-key"), None);
}

#[tokio::test]
async fn client_credentials_are_stripped_unless_configured_otherwise() {
    let c = chain(&[]).await;
    let client = c.side.client_for(&["api.test"]);
    let url = c.side.url("api.test", "/");
    let echo = Echo::parse(
        &client
            .get(&url)
            .header("x-api-key", "dummy")
            .header("api-key", "dummy")
            .header("x-other", "kept")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert_injected(&echo);
    assert_eq!(
        (echo.header("x-api-key"), echo.header("api-key")),
        (None, None)
    );
    assert_eq!(echo.header("x-other").as_deref(), Some("kept"));

    // With the list emptied, client headers pass through (the injected one still wins).
    let c = chain(&["--strip-client-headers", ""]).await;
    let client = c.side.client_for(&["api.test"]);
    let url = c.side.url("api.test", "/");
    let body = client
        .get(&url)
        .header("x-api-key", "dummy")
        .header("authorization", "Bearer dummy")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let echo = Echo::parse(&body);
    assert_injected(&echo);
    assert_eq!(echo.header("x-api-key").as_deref(), Some("dummy"));
}

#[tokio::test]
async fn reqwest_over_http2_posts_bodies() {
    let c = chain(&[]).await;
    let client = c.side.client_for(&["api.test"]);
    let url = c.side.url("api.test", "/v1/chat");
    let resp = client
        .post(&url)
        .header("authorization", "Bearer dummy")
        .header("cookie", "a=1")
        .body("{\"model\":\"x\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let echo = Echo::parse(&resp.text().await.unwrap());
    assert_injected(&echo);
    assert_eq!(echo.body(), "{\"model\":\"x\"}");
    assert_eq!(echo.0["method"], "POST");
}

#[tokio::test]
async fn connections_to_the_tokenizer_are_reused() {
    let c = chain(&[]).await;
    let client = c.side.client_for(&["api.test"]);
    let url = c.side.url("api.test", "/");
    for _ in 0..3 {
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    assert_eq!(c.env.upstream.connection_count(), 1);
}

#[tokio::test]
async fn server_sent_events_arrive_before_the_stream_ends() {
    let c = chain(&[]).await;
    let client = c.side.client_for(&["api.test"]);
    let mut resp = client
        .get(c.side.url("api.test", "/sse"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    // The upstream holds its second event until released.
    let first = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
        .await
        .expect("first event arrives while the stream is open")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"data: one\n\n");
    c.env.upstream.release(1);
    assert_eq!(&resp.bytes().await.unwrap()[..], b"data: two\n\n");
}

/// A TLS connection to the sidecar as `api.test`, offering only HTTP/1.1.
pub async fn tls_to_sidecar(side: &SideProxy) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(side.ca_pem.as_bytes()).unwrap();
    roots.add(der).unwrap();
    let mut config =
        rustls::ClientConfig::builder_with_provider(::tokenizer::upstream::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(side.addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("api.test").unwrap(), tcp)
        .await
        .unwrap()
}

use rustls::pki_types::pem::PemObject;

#[tokio::test]
async fn websocket_handshake_gets_the_credential_then_frames_flow() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let c = chain(&[]).await;
    let tls = tls_to_sidecar(&c.side).await;
    let mut request = "wss://api.test/ws".into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer dummy".parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::client_async(request, tls)
        .await
        .expect("websocket handshake through sidecar and tokenizer");
    assert_eq!(response.status(), 101);
    let hello = ws.next().await.unwrap().unwrap();
    assert_eq!(hello, Message::Text("authorization=Bearer real-key".into()));
    for text in ["ping", "second message"] {
        ws.send(Message::Text(text.into())).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed, Message::Text(text.into()));
    }
    ws.send(Message::Binary(vec![0u8, 1, 2, 255].into()))
        .await
        .unwrap();
    let echoed = ws.next().await.unwrap().unwrap();
    assert_eq!(echoed, Message::Binary(vec![0u8, 1, 2, 255].into()));
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn https_proxy_mode_intercepts_targets() {
    let c = chain(&[]).await;
    let ca = c.side.ca_path().display().to_string();
    let proxy = c.side.proxy_url();
    let url = "https://api.test/v1/via-proxy";
    let (ok, out, err) = curl_proxied(&proxy, &ca, "Bearer dummy", url).await;
    assert!(ok, "{err}");
    let echo = Echo::parse(&out);
    assert_injected(&echo);
    assert_eq!(echo.uri(), "/v1/via-proxy");

    // reqwest as an HTTPS_PROXY client, over HTTP/2 inside the tunnel.
    let cert = reqwest::Certificate::from_pem(c.side.ca_pem.as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(cert)
        .proxy(reqwest::Proxy::https(&proxy).unwrap())
        .build()
        .unwrap();
    let resp = client.get("https://api.test/v2").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_injected(&Echo::parse(&resp.text().await.unwrap()));

    // Plain http:// proxy requests for a target are forwarded too.
    let (ok, out, err) = curl(&["-x", &proxy, "http://api.test/plain"]).await;
    assert!(ok, "{err}");
    assert_injected(&Echo::parse(&out));
}

#[tokio::test]
async fn passthrough_is_spliced_without_interception() {
    let c = chain(&[]).await;
    let proxy = c.side.proxy_url();
    // The client must trust the upstream's own CA: the sidecar does not touch TLS.
    let upstream_ca = c.env.ca.pem_file();
    let url = "https://pass.test/direct";
    let (ok, out, err) = curl_proxied(&proxy, &upstream_ca, "Bearer mine", url).await;
    assert!(ok, "{err}");
    let echo = Echo::parse(&out);
    assert_eq!(echo.header_all("authorization"), ["Bearer mine"]);
    // With the sidecar's CA instead, the handshake fails: nothing was forged.
    let ca = c.side.ca_path().display().to_string();
    let (ok, _, _) = curl(&["-x", &proxy, "--cacert", &ca, "https://pass.test/direct"]).await;
    assert!(!ok);
}

#[tokio::test]
async fn unknown_hosts_are_refused() {
    let c = chain(&[]).await;
    let proxy = c.side.proxy_url();
    for url in [
        "https://other.test/",
        "http://other.test/",
        "https://api.test:8443/",
    ] {
        let (ok, _, err) = curl(&["-f", "-x", &proxy, "-k", url]).await;
        assert!(!ok, "{url}");
        assert!(err.contains("403"), "{url}: {err}");
    }
    let (_, out, _) = curl(&["-x", &proxy, "-w", "%{http_code}", "http://other.test/"]).await;
    assert!(out.ends_with("403"), "{out}");
    // On the TLS listener, an SNI that is not a target gets no certificate at all.
    let resolve = format!("other.test:{}:127.0.0.1", c.side.addr.port());
    let url = c.side.url("other.test", "/");
    let (ok, _, err) = curl(&["--resolve", &resolve, "-k", &url]).await;
    assert!(!ok);
    assert!(!err.is_empty());
    // Still serving.
    assert_eq!(c.side.get("/").await.status(), 200);
}

#[tokio::test]
async fn localhost_serves_the_ca() {
    let c = chain(&[]).await;
    let resolve = format!("localhost:{}:127.0.0.1", c.side.addr.port());
    let ca = c.side.ca_path().display().to_string();
    let url = c.side.url("localhost", "/ca-cert.pem");
    let (ok, out, err) = curl(&["--resolve", &resolve, "--cacert", &ca, &url]).await;
    assert!(ok, "{err}");
    assert_eq!(out, c.side.ca_pem);
    assert_eq!(
        std::fs::read_to_string(c.side.ca_path()).unwrap(),
        c.side.ca_pem
    );
    let bundle = std::fs::read_to_string(c.side.ca_dir.join("bundle.pem")).unwrap();
    assert!(bundle.ends_with(&c.side.ca_pem));
}

/// Forge a leaf for `name` with the sidecar's CA key, as a thief holding it would.
fn forge_with_stolen_key(ca_dir: &std::path::Path, name: &str) -> String {
    let ca_pem = std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap();
    let key_pem = std::fs::read_to_string(ca_dir.join("ca-key.pem")).unwrap();
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&ca_pem, rcgen::KeyPair::from_pem(&key_pem).unwrap())
            .unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.use_authority_key_identifier_extension = true;
    params
        .extended_key_usages
        .push(rcgen::ExtendedKeyUsagePurpose::ServerAuth);
    let key = rcgen::KeyPair::generate().unwrap();
    params.signed_by(&key, &issuer).unwrap().pem()
}

#[tokio::test]
async fn name_constraints_hold_even_with_the_ca_key() {
    let c = chain(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let verify = |name: &str| {
        let leaf = dir.path().join(format!("{name}.pem"));
        std::fs::write(&leaf, forge_with_stolen_key(&c.side.ca_dir, name)).unwrap();
        std::process::Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(c.side.ca_path())
            .arg(&leaf)
            .output()
            .expect("openssl runs")
    };
    let good = verify("api.test");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    for other in ["api.openai.com", "evil.test", "test"] {
        let bad = verify(other);
        assert!(!bad.status.success(), "{other} validated");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&bad.stdout),
            String::from_utf8_lossy(&bad.stderr)
        );
        assert!(text.contains("subtree violation"), "{other}: {text}");
    }
    // The constraint is critical.
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(c.side.ca_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("X509v3 Name Constraints: critical"), "{text}");
    assert!(
        text.contains("DNS:api.test") && text.contains("DNS:localhost"),
        "{text}"
    );
}

/// A sidecar for `api.test` (with a secret no tokenizer opens) in front of `proxy`.
async fn before(proxy: &str, extra: &[&str]) -> SideProxy {
    let sealed = ::tokenizer::secret::b64::encode(&[1u8; 80]);
    let mut flags = vec!["--targets", "api.test=S", "--proxy", proxy];
    flags.extend_from_slice(extra);
    SideProxy::start(&flags, &[("S", &sealed)]).await
}

#[tokio::test]
async fn a_tokenizer_that_is_down_is_a_502() {
    let closed = DeadPort::new();
    let proxy = closed.url("");
    let side = before(&proxy, &[]).await;
    let resp = side.get("/").await;
    assert_eq!(resp.status(), 502);
    assert!(resp.text().await.unwrap().contains("tokenizer unreachable"));
}

#[tokio::test]
async fn a_tokenizer_that_never_answers_is_a_504() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let side = before(&proxy, &["--tokenizer-timeout", "1s"]).await;
    let resp = side.get("/").await;
    assert_eq!(resp.status(), 504);
}

#[tokio::test]
async fn garbage_instead_of_a_client_hello_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = chain(&[]).await;
    let mut s = TcpStream::connect(c.side.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: api.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed promptly")
        .unwrap_or(0);
    assert!(!String::from_utf8_lossy(&buf[..n]).contains("200"));
    assert_eq!(c.side.get("/").await.status(), 200);
}

/// Connecting to the tokenizer is bounded by `UPSTREAM_CONNECT_TIMEOUT`, as every dial
/// of the sidecar is (it was a fixed 10 s): a TLS tokenizer that accepts and never
/// finishes the handshake is a 504 as soon as that has passed, long before
/// `TOKENIZER_TIMEOUT`.
#[tokio::test]
async fn connecting_to_the_tokenizer_takes_at_most_the_connect_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("https://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let side = before(
        &proxy,
        &[
            "--tokenizer-timeout",
            "120s",
            "--upstream-connect-timeout",
            "300ms",
        ],
    )
    .await;
    let resp = tokio::time::timeout(Duration::from_secs(5), side.get("/"))
        .await
        .expect("the sidecar answered within 5 s (the connect timeout is 300 ms)");
    assert_eq!(resp.status(), 504);
    assert!(resp.text().await.unwrap().contains("timed out"));
}
