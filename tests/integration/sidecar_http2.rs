//! HTTP/2 between the sidecar and the tokenizer (issue 28): with `PROXY_HTTP2` the
//! sidecar opens with HTTP/2's preface and multiplexes its requests on one connection,
//! while upgrades (WebSocket) stay on HTTP/1.1; the tokenizer's plain listener serves
//! h2c through the same pipeline, refuses CONNECT over it, bounds its streams, and closes
//! an idle one as it closes an idle HTTP/1.1 connection.

use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::support::Env;
use crate::support::sidecar::{REAL_KEY, SideProxy};
use crate::support::upstream::Echo;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

async fn chain() -> (Env, SideProxy) {
    let env = Env::builder()
        .names(&["api.test", "pass.test"])
        .start()
        .await;
    let side = SideProxy::in_front_of(&env, &["--proxy-http2"]).await;
    (env, side)
}

#[tokio::test]
async fn the_sidecar_opens_with_the_http2_preface_when_asked() {
    let fake = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", fake.local_addr().unwrap());
    let env = Env::builder().names(&["api.test"]).start().await;
    let sealed = env.seal(
        &serde_json::json!({"inject_processor": {"token": "k-123456789"},
        "no_auth": {}, "allowed_hosts": ["api.test"]}),
    );
    for (flags, want_h2) in [(&["--proxy-http2"][..], true), (&[][..], false)] {
        let mut all = vec!["--targets", "api.test=S", "--proxy", &proxy];
        all.extend_from_slice(flags);
        let side = SideProxy::start(&all, &[("S", &sealed)]).await;
        let client = side.client_for(&["api.test"]);
        let url = side.url("api.test", "/");
        let request = tokio::spawn(async move { client.get(url).send().await });
        let (mut conn, _) = tokio::time::timeout(Duration::from_secs(5), fake.accept())
            .await
            .unwrap()
            .unwrap();
        let mut first = vec![0u8; PREFACE.len()];
        conn.read_exact(&mut first).await.unwrap();
        assert_eq!(
            first == PREFACE,
            want_h2,
            "{:?}",
            String::from_utf8_lossy(&first)
        );
        drop(conn);
        request.abort();
    }
}

#[tokio::test]
async fn requests_bodies_and_streams_go_through_over_http2() {
    let (env, side) = chain().await;
    let client = side.client_for(&["api.test"]);
    // Concurrent requests, each answered with the credential injected.
    let mut tasks = Vec::new();
    for i in 0..32 {
        let client = client.clone();
        let url = side.url("api.test", &format!("/v1/chat/{i}"));
        tasks.push(tokio::spawn(async move {
            let resp = client
                .post(url)
                .header("authorization", "Bearer dummy")
                .body(format!("{{\"n\":{i}}}"))
                .send()
                .await
                .unwrap();
            (resp.status(), resp.text().await.unwrap(), i)
        }));
    }
    for t in tasks {
        let (status, body, i) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        let echo = Echo::parse(&body);
        assert_eq!(
            echo.header_all("authorization"),
            [format!("Bearer {REAL_KEY}")]
        );
        assert_eq!(echo.body(), format!("{{\"n\":{i}}}"));
    }
    // A stream arrives event by event.
    let mut resp = client
        .get(side.url("api.test", "/sse"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
        .await
        .expect("first event while the stream is open")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"data: one\n\n");
    env.upstream.release(1);
    assert_eq!(&resp.bytes().await.unwrap()[..], b"data: two\n\n");
}

#[tokio::test]
async fn websocket_upgrades_stay_on_http1() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let (_env, side) = chain().await;
    let tls = crate::sideproxy::tls_to_sidecar(&side).await;
    let request = "wss://api.test/ws".into_client_request().unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async(request, tls)
        .await
        .expect("websocket handshake");
    assert_eq!(response.status(), 101);
    let hello = ws.next().await.unwrap().unwrap();
    assert_eq!(
        hello,
        Message::Text(format!("authorization=Bearer {REAL_KEY}").into())
    );
    ws.send(Message::Text("ping".into())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Text("ping".into())
    );
}

/// An h2c client straight to the tokenizer.
async fn h2c(
    addr: std::net::SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    (send, tokio::spawn(conn))
}

#[tokio::test]
async fn the_tokenizer_refuses_connect_over_http2() {
    let env = Env::builder().names(&["api.test"]).start().await;
    let (mut send, _conn) = h2c(env.tk.addr).await;
    let req = http::Request::builder()
        .method("CONNECT")
        .uri("api.test:80")
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_like_an_idle_http1_one() {
    let env = Env::builder()
        .names(&["api.test"])
        .flags(&["--client-header-timeout", "1s"])
        .start()
        .await;
    let (_send, conn) = h2c(env.tk.addr).await;
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "the idle h2c connection was never closed");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}
