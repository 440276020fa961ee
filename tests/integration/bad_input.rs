//! Bad input: every malformed or refused request gets the right status and one short
//! line of text without secret material, nothing refused reaches the upstream, and the
//! proxy keeps serving valid requests afterwards.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokenizer::secret::{OpenKey, b64};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::raw::RawConn;
use crate::support::upstream::{Echo, Upstream};
use crate::support::{DeadPort, Env, bearer, inject, with};

/// The credential every test secret injects.
const TOKEN: &str = "supersecret";
/// The proxy auth the test secrets are bound to.
const AUTH: &str = "trustno1";
/// The HMAC key of the HMAC secrets.
const HMAC_KEY: &[u8] = b"hmac-key-trustno2";

/// A proxy (loopback exempt from the guard, plus `extra` serve flags) and an upstream.
async fn env_with(extra: &[&str]) -> Env {
    Env::builder().flags(extra).start().await
}

async fn env() -> Env {
    Env::start().await
}

/// The requests and checks every test here makes.
trait Checks {
    /// A valid secret: inject `TOKEN` for bearer `AUTH`.
    fn good(&self) -> String;

    /// GET `url` through the proxy with these `Proxy-Tokenizer` lines and the right
    /// proxy auth.
    async fn get_url(&self, url: &str, secrets: &[&str]) -> (u16, String);

    /// GET `/` of the upstream.
    async fn get_with(&self, secrets: &[&str]) -> (u16, String) {
        self.get_url("/", secrets).await
    }

    /// Assert that `secrets` are refused with `status` and a body containing `needle`.
    async fn refused(&self, secrets: &[&str], status: u16, needle: &str) {
        let (got, body) = self.get_with(secrets).await;
        assert_refused(got, &body, status, needle, secrets);
    }

    /// Each of `values`, alone, is refused with `status` and a body containing `needle`.
    async fn each_refused(&self, values: &[&str], status: u16, needle: &str) {
        for value in values {
            self.refused(&[value], status, needle).await;
        }
    }

    /// A valid request still goes through and gets the credential.
    async fn still_serves(&self);

    /// Nothing refused so far reached the upstream.
    fn upstream_untouched(&self);

    /// Nothing refused reached the upstream, and a valid request still goes through.
    async fn unharmed(&self) {
        self.upstream_untouched();
        self.still_serves().await;
    }
}

impl Checks for Env {
    fn good(&self) -> String {
        self.seal(&inject(TOKEN, AUTH))
    }

    async fn get_url(&self, url: &str, secrets: &[&str]) -> (u16, String) {
        let auth = format!("Bearer {AUTH}");
        let got = self
            .get(url, secrets, &[("proxy-authorization", &auth)])
            .await;
        (got.status, got.body)
    }

    async fn still_serves(&self) {
        let good = self.good();
        let (status, body) = self.get_with(&[&good]).await;
        assert_eq!(status, 200, "{body}");
        let echo = Echo::parse(&body);
        assert_eq!(
            echo.header_all("authorization"),
            [format!("Bearer {TOKEN}")]
        );
        assert_eq!(echo.header("host").unwrap(), self.host());
    }

    fn upstream_untouched(&self) {
        assert_eq!(
            self.upstream.connection_count(),
            0,
            "a refused request reached the upstream"
        );
    }
}

/// `status`, one short line containing `needle`, and no secret material: neither the
/// test credentials nor any of the `sent` values.
fn assert_refused(got: u16, body: &str, status: u16, needle: &str, sent: &[&str]) {
    assert_refused_for("", got, body, status, needle, sent);
}

/// [`assert_refused`], naming `what` was refused in a failure.
fn assert_refused_for(what: &str, got: u16, body: &str, status: u16, needle: &str, sent: &[&str]) {
    assert_eq!(got, status, "{what}: {body:?}");
    assert_one_clean_line(body, sent);
    assert!(body.contains(needle), "{what}: want {needle:?} in {body:?}");
}

fn assert_one_clean_line(body: &str, sent: &[&str]) {
    let line = body.strip_suffix('\n').unwrap_or(body);
    assert!(
        !line.is_empty() && !line.contains(['\n', '\r']),
        "not one line: {body:?}"
    );
    assert!(line.len() <= 200, "not short: {body:?}");
    let key_b64 = b64::encode(HMAC_KEY);
    for secret in [TOKEN, AUTH, "X-Evil", "31337", key_b64.as_str()] {
        assert!(!body.contains(secret), "{secret:?} leaked: {body:?}");
    }
    for s in sent.iter().filter(|s| s.len() >= 16) {
        assert!(!body.contains(*s), "sent value echoed: {body:?}");
    }
}

fn with_params(sealed: &str, params: Value) -> String {
    format!("{sealed}; {params}")
}

fn hmac_secret(hash: &str) -> Value {
    json!({
        "inject_hmac_processor": {"key": b64::encode(HMAC_KEY), "hash": hash},
        "bearer_auth": bearer(AUTH),
    })
}

fn hmac_hex(msg: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_KEY).unwrap();
    mac.update(msg);
    hex::encode(mac.finalize().into_bytes())
}

/// Write `bytes` on a fresh connection (write errors ignored: the server may close
/// first) and read until the server closes. `None` when it closed without answering.
async fn raw_until_close(addr: SocketAddr, bytes: &[u8]) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("server neither answered nor closed: {out:?}"),
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text))
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

// === Proxy-Tokenizer header ===

#[tokio::test]
async fn malformed_tokenizer_headers_are_400() {
    let e = env().await;
    let good = e.good();
    for value in [
        String::new(),
        "   ".to_owned(),
        "; {}".to_owned(),
        format!(" ; {}", json!({"dst": "Foo"})),
    ] {
        e.refused(&[&value], 400, "bad tokenizer header").await;
    }
    // An empty params part (`<secret>;`) is not listed: Go skips it rather than refuse.
    for params in [r#"{"dst":1}"#, "[1]", "abc", r#"{"dst":["Foo"]}"#, "1"] {
        let value = format!("{good}; {params}");
        e.refused(&[&value], 400, "bad tokenizer header params")
            .await;
    }
    // Not a secret, empty params: refused (params or encoding, either is 400).
    e.refused(&["abc;"], 400, "bad request").await;
    // A value that is not text (obs-text bytes), sent raw.
    let mut conn = RawConn::open(e.tk.addr).await;
    let mut req = format!("GET {} HTTP/1.1\r\nHost: {}\r\n", e.url("/"), e.host()).into_bytes();
    req.extend_from_slice(b"Proxy-Tokenizer: \xff\xfe\xfd\r\n\r\n");
    conn.send(&req).await;
    let resp = conn.read_response(false).await;
    assert_refused(resp.status, &resp.text(), 400, "bad tokenizer header", &[]);
    e.unharmed().await;
}

#[tokio::test]
async fn undecodable_secrets_are_400() {
    let e = env().await;
    let good = e.good();
    // URL-safe base64 of a valid secret (reseal until it has a `+` or `/` to differ).
    let url_safe = (0..50)
        .map(|_| e.good())
        .find(|s| s.contains(['+', '/']))
        .expect("a seal with + or /")
        .replace('+', "-")
        .replace('/', "_");
    let comma_joined = format!("{good},{good}");
    let comma_spaced = format!("{good}, {}", e.good());
    let values = ["!!!", &url_safe, &comma_joined, &comma_spaced];
    e.each_refused(&values, 400, "bad Proxy-Tokenizer encoding")
        .await;
    e.unharmed().await;
}

#[tokio::test]
async fn undecryptable_secrets_are_400() {
    let e = env().await;
    let json = inject(TOKEN, AUTH).to_string();
    let other_key = OpenKey::generate().seal_key().seal_base64(json.as_bytes());
    let mut bytes = b64::decode(&e.good()).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let tampered = b64::encode(&bytes);
    let truncated = b64::encode(&bytes[..40]);
    let values = [&other_key, &tampered, &truncated].map(String::as_str);
    e.each_refused(&values, 400, "failed Proxy-Tokenizer decryption")
        .await;
    e.unharmed().await;
}

/// One bad secret among good ones spoils the whole request.
#[tokio::test]
async fn one_bad_line_among_good_ones_is_400() {
    let e = env().await;
    let good = e.good();
    e.refused(&[&good, "!!!"], 400, "bad Proxy-Tokenizer encoding")
        .await;
    e.refused(&["!!!", &good], 400, "bad Proxy-Tokenizer encoding")
        .await;
    e.unharmed().await;
}

// === the secret JSON ===

#[tokio::test]
async fn bad_secret_json_is_400() {
    let e = env().await;
    let digest = bearer(AUTH)["digest"].as_str().unwrap().to_owned();
    let cases = [
        "not json supersecret".to_owned(),
        "".to_owned(),
        r#"["supersecret"]"#.to_owned(),
        r#""supersecret""#.to_owned(),
        format!(
            r#"{{"inject_processor":{{"token":"supersecret"}},"no_auth":{{}},"bearer_auth":{{"digest":"{digest}"}}}}"#
        ),
        r#"{"inject_processor":{"token":"supersecret"}}"#.to_owned(),
        r#"{"foo_processor":{"token":"supersecret"},"no_auth":{}}"#.to_owned(),
        r#"{"no_auth":{}}"#.to_owned(),
        r#"{"inject_processor":{"token":"supersecret"},"oauth2_processor":{"token":{"access_token":"supersecret"}},"no_auth":{}}"#.to_owned(),
        r#"{"multi_processor":[{"inject_processor":{"token":"supersecret"},"oauth2_processor":{"token":{"access_token":"supersecret"}}}],"no_auth":{}}"#.to_owned(),
        r#"{"inject_processor":{"token":31337},"no_auth":{}}"#.to_owned(),
        r#"{"inject_processor":{"token":["supersecret"]},"no_auth":{}}"#.to_owned(),
        r#"{"inject_processor":{"token":{"supersecret":"supersecret"}},"no_auth":{}}"#.to_owned(),
        r#"{"inject_processor":"supersecret","no_auth":{}}"#.to_owned(),
        r#"{"inject_hmac_processor":{"key":"supersecret!!","hash":"sha256"},"no_auth":{}}"#
            .to_owned(),
        r#"{"inject_processor":{"token":"supersecret"},"bearer_auth":{"digest":"supersecret!!"}}"#
            .to_owned(),
        r#"{"inject_processor":{"token":"supersecret"},"no_auth":{},"allowed_host_pattern":"(supersecret"}"#.to_owned(),
        r#"{"inject_processor":{"token":"supersecret"},"no_auth":{},"allowed_hosts":"supersecret"}"#.to_owned(),
        r#"{"inject_processor":{"token":"supersecret"},"no_auth":{},"allowed_hosts":[31337]}"#.to_owned(),
        r#"{"inject_processor":{"token":"supersecret"},"no_auth":{}"#.to_owned(),
    ];
    for json in &cases {
        let sealed = e.seal_raw(json);
        let (status, body) = e.get_with(&[&sealed]).await;
        assert_refused_for(json, status, &body, 400, "bad secret json", &[&sealed]);
    }
    e.unharmed().await;
}

// === processors that cannot be built ===

#[tokio::test]
async fn processor_build_errors_are_400() {
    let e = env().await;
    let good = e.good();
    let empty_token = e.seal(&inject("", AUTH));
    let md5 = e.seal(&hmac_secret("md5"));
    let no_hash = e.seal(&hmac_secret(""));
    let allowed_fmt = e.seal(&with(
        json!({"inject_processor": {"token": TOKEN, "allowed_fmt": ["Bearer %s"]}}),
        json!({"bearer_auth": bearer(AUTH)}),
    ));
    let fixed_fmt = e.seal(&with(
        json!({"inject_processor": {"token": TOKEN, "fmt": "Bearer %s"}}),
        json!({"bearer_auth": bearer(AUTH)}),
    ));
    let allowed_dst = e.seal(&with(
        json!({"inject_processor": {"token": TOKEN, "allowed_dst": ["X-Api-Key"]}}),
        json!({"bearer_auth": bearer(AUTH)}),
    ));
    let fixed_dst = e.seal(&with(
        json!({"inject_processor": {"token": TOKEN, "dst": "X-Api-Key"}}),
        json!({"bearer_auth": bearer(AUTH)}),
    ));
    let hmac = e.seal(&hmac_secret("sha256"));
    let cases: Vec<(String, &str)> = vec![
        (empty_token, "missing token"),
        (md5, "unsupported hash function"),
        (no_hash, "unsupported hash function"),
        (with_params(&good, json!({"fmt": "%d"})), "bad fmt"),
        (with_params(&good, json!({"fmt": "%s%s"})), "bad fmt"),
        (with_params(&good, json!({"fmt": "no verb"})), "bad fmt"),
        (with_params(&good, json!({"fmt": "%x"})), "bad fmt"),
        (with_params(&hmac, json!({"fmt": "%s"})), "bad fmt"),
        (
            with_params(&allowed_fmt, json!({"fmt": "Token %s"})),
            "bad fmt",
        ),
        (
            with_params(&fixed_fmt, json!({"fmt": "Token %s"})),
            "bad fmt",
        ),
        (
            with_params(&allowed_dst, json!({"dst": "Authorization"})),
            "bad dst",
        ),
        (
            with_params(&fixed_dst, json!({"dst": "Authorization"})),
            "bad dst",
        ),
        (with_params(&good, json!({"dst": "Host"})), "bad dst"),
        (
            with_params(&good, json!({"dst": "content-length"})),
            "bad dst",
        ),
        (
            with_params(&good, json!({"dst": "Transfer-Encoding"})),
            "bad dst",
        ),
        (with_params(&good, json!({"dst": "Connection"})), "bad dst"),
        (
            with_params(&good, json!({"dst": "Proxy-Authorization"})),
            "bad dst",
        ),
        (
            with_params(&good, json!({"dst": "Proxy-Tokenizer"})),
            "bad dst",
        ),
        (with_params(&good, json!({"dst": "bad header"})), "bad dst"),
        (with_params(&good, json!({"dst": "A\r\nX-Evil"})), "bad dst"),
        (
            with_params(&hmac, json!({"dst": "Content-Length"})),
            "bad dst",
        ),
    ];
    for (value, needle) in &cases {
        let (status, body) = e.get_with(&[value]).await;
        assert_refused(status, &body, 400, needle, &[value]);
    }
    e.unharmed().await;
}

#[tokio::test]
async fn credential_with_a_line_break_never_reaches_upstream() {
    let e = env().await;
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

// === OPEN_PROXY ===

#[tokio::test]
async fn no_secret_is_400_without_open_proxy() {
    let e = env().await;
    let (status, body) = e.get_with(&[]).await;
    assert_refused(status, &body, 400, "missing Proxy-Tokenizer", &[]);
    e.unharmed().await;
}

#[tokio::test]
async fn open_proxy_forwards_without_a_credential() {
    let e = env_with(&["--open-proxy"]).await;
    let (status, body) = e.get_with(&[]).await;
    assert_eq!(status, 200, "{body}");
    let echo = Echo::parse(&body);
    assert!(echo.header("authorization").is_none(), "{body}");
    assert!(echo.header("proxy-authorization").is_none(), "{body}");
    // A bad secret is still refused: OPEN_PROXY only covers requests with none.
    e.refused(&["!!!"], 400, "bad Proxy-Tokenizer encoding")
        .await;
    e.still_serves().await;
}

// === validators ===

#[tokio::test]
async fn secret_for_another_host_is_400() {
    let e = env().await;
    let nowhere = e.seal(&with(inject(TOKEN, AUTH), json!({"allowed_hosts": []})));
    let elsewhere = e.seal(&with(
        inject(TOKEN, AUTH),
        json!({"allowed_hosts": ["api.example.com"]}),
    ));
    let without_port = e.seal(&with(
        inject(TOKEN, AUTH),
        json!({"allowed_hosts": ["127.0.0.1"]}),
    ));
    let pattern = e.seal(&with(
        inject(TOKEN, AUTH),
        json!({"allowed_host_pattern": "^api\\.example\\.com$"}),
    ));
    let values = [&nowhere, &elsewhere, &without_port, &pattern].map(String::as_str);
    e.each_refused(&values, 400, "secret not valid for").await;
    e.unharmed().await;
}

// === bodies too large to buffer ===

#[tokio::test]
async fn hmac_body_over_the_limit_is_413() {
    let e = env_with(&["--max-buffered-body", "1KiB"]).await;
    let sealed = e.seal(&hmac_secret("sha256"));
    let auth = format!("Bearer {AUTH}");
    let (e, sealed, auth) = (&e, sealed.as_str(), auth.as_str());
    let post = move |body: reqwest::Body| async move {
        e.send(
            "POST",
            "/",
            &[sealed],
            &[("proxy-authorization", auth)],
            body,
        )
        .await
    };

    // Content-Length says too much.
    let got = post(vec![b'a'; 4096].into()).await;
    assert_refused(got.status, &got.body, 413, "too large", &[sealed]);

    // Expect: 100-continue with too large a Content-Length: refused without asking for
    // the body.
    let mut conn = RawConn::open(e.tk.addr).await;
    conn.send(
        format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nProxy-Tokenizer: {sealed}\r\n\
             Proxy-Authorization: Bearer {AUTH}\r\nContent-Length: 4096\r\n\
             Expect: 100-continue\r\n\r\n",
            e.url("/"),
            e.host()
        )
        .as_bytes(),
    )
    .await;
    let resp = conn.read_response(false).await;
    assert_refused(resp.status, &resp.text(), 413, "too large", &[sealed]);

    // Chunked: the limit is found while reading.
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        (0..8).map(|_| Ok(Bytes::from(vec![b'b'; 512]))).collect();
    let stream = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let got = post(stream).await;
    assert_refused(got.status, &got.body, 413, "too large", &[sealed]);
    e.upstream_untouched();

    // Under the limit, chunked or not: signed and forwarded unchanged.
    let small = vec![b'c'; 1000];
    let echo = post(small.clone().into()).await.echo();
    assert_eq!(
        echo.header("authorization").unwrap(),
        format!("Bearer {}", hmac_hex(&small))
    );
    assert_eq!(echo.body().as_bytes(), small.as_slice());
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        (0..4).map(|_| Ok(Bytes::from(vec![b'd'; 200]))).collect();
    let echo = post(reqwest::Body::wrap_stream(futures_util::stream::iter(
        chunks,
    )))
    .await
    .echo();
    assert_eq!(
        echo.header("authorization").unwrap(),
        format!("Bearer {}", hmac_hex(&[b'd'; 800]))
    );
    e.still_serves().await;
}

/// Only buffering processors are bounded: an inject secret streams any size through.
#[tokio::test]
async fn streaming_processors_ignore_the_buffer_limit() {
    let e = env_with(&["--max-buffered-body", "1KiB"]).await;
    let good = e.good();
    let auth = format!("Bearer {AUTH}");
    let got = e
        .send(
            "POST",
            "/",
            &[&good],
            &[("proxy-authorization", &auth)],
            vec![b'a'; 4096],
        )
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(Echo::parse(&got.body).body().len(), 4096);
}

// === oversized request heads ===

/// A request head past hyper's read buffer (about 400 KiB), or with more headers than
/// it parses (100), is answered 4xx or dropped; either way the proxy keeps serving.
#[tokio::test]
async fn oversized_request_headers_are_refused() {
    let e = env().await;
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
        if let Some((status, text)) = raw_until_close(e.tk.addr, head(extra).as_bytes()).await {
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

// === destinations the guard refuses ===

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
        assert_refused_for(
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

#[tokio::test]
async fn requests_to_the_tokenizer_itself_are_400() {
    let e = env().await;
    let good = e.good();
    let own = e.tk.addr.port();
    for url in [
        format!("http://127.0.0.1:{own}/"),
        format!("http://[::ffff:127.0.0.1]:{own}/"),
        format!("http://localhost:{own}/"),
    ] {
        let (status, body) = e.get_url(&url, &[&good]).await;
        assert_refused_for(
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

// === what the client addressed ===

#[tokio::test]
async fn https_and_port_443_are_400() {
    let e = env().await;
    let good = e.good();
    let (status, body) = e.get_url("http://127.0.0.1:443/", &[&good]).await;
    assert_refused(status, &body, 400, "proxied request must be HTTP", &[&good]);

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
        assert_eq!(resp.status, 400, "{target}: {}", resp.text());
        assert_one_clean_line(&resp.text(), &[&good]);
        if target.starts_with("https") {
            assert!(resp.text().contains("proxied request must be HTTP"));
        }
    }
    e.unharmed().await;
}

// === upstream failures ===

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let e = env().await;
    let good = e.good();
    let dead = DeadPort::new();
    let url = dead.url("/");
    let (status, body) = e.get_url(&url, &[&good]).await;
    assert_refused(status, &body, 502, "bad gateway", &[&good]);
    e.still_serves().await;
}

#[tokio::test]
async fn upstream_certificate_for_another_name_is_502() {
    let e = env().await;
    let wrong = Upstream::start_with(e.ca.server_config(&["other.test"], &[b"http/1.1"])).await;
    let good = e.good();
    let url = format!("http://127.0.0.1:{}/", wrong.port());
    let (status, body) = e.get_url(&url, &[&good]).await;
    assert_refused(status, &body, 502, "bad gateway", &[&good]);
    assert_eq!(wrong.connection_count(), 1);
    e.still_serves().await;
}

// === transparent (origin-form) mode ===

#[tokio::test]
async fn origin_form_without_tokenizer_hostnames_is_400() {
    let e = env().await;
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
    assert_refused(
        resp.status,
        &resp.text(),
        400,
        "I'm not that kind of server",
        &[&good],
    );
    e.unharmed().await;
}

#[tokio::test]
async fn origin_form_without_a_usable_host_is_400() {
    let e = env_with(&["--tokenizer-hostnames", "tokenizer.test"]).await;
    let good = e.good();
    let auth = format!("Proxy-Tokenizer: {good}\r\nProxy-Authorization: Bearer {AUTH}\r\n");

    // HTTP/1.0 lets a request omit Host.
    let (status, text) = raw_until_close(
        e.tk.addr,
        format!("GET / HTTP/1.0\r\n{auth}\r\n").as_bytes(),
    )
    .await
    .expect("an answer");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert_refused(status, body, 400, "must specify host", &[&good]);

    // A Host that is not text is no host at all.
    let mut req = b"GET / HTTP/1.0\r\nHost: \xff\xfe\r\n".to_vec();
    req.extend_from_slice(auth.as_bytes());
    req.extend_from_slice(b"\r\n");
    let (status, text) = raw_until_close(e.tk.addr, &req).await.expect("an answer");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert_refused(status, body, 400, "must specify host", &[&good]);

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
        assert_refused(resp.status, &resp.text(), 400, needle, &[&good]);
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

// === CONNECT tunnels ===

/// A bad secret on the CONNECT never opens a tunnel; a bad secret on a request inside a
/// tunnel fails that request only.
#[tokio::test]
async fn bad_secrets_on_and_in_a_connect_tunnel_are_400() {
    let e = Env::builder()
        .names(&["api.test", "127.0.0.1"])
        .start()
        .await;
    let good = e.good();
    let wrong_key = OpenKey::generate()
        .seal_key()
        .seal_base64(inject(TOKEN, AUTH).to_string().as_bytes());
    let bad_json = e.seal_raw(r#"{"inject_processor":{"token":31337},"no_auth":{}}"#);
    let auth = format!("Bearer {AUTH}");
    for (secret, needle) in [
        ("!!!", "bad Proxy-Tokenizer encoding"),
        (wrong_key.as_str(), "failed Proxy-Tokenizer decryption"),
        (bad_json.as_str(), "bad secret json"),
    ] {
        let resp = e
            .tunnel("api.test:80", &[secret], &[("proxy-authorization", &auth)])
            .await
            .unwrap_err();
        assert_refused(resp.status, &resp.text(), 400, needle, &[secret]);
    }

    // A tunnel without CONNECT-level secrets; each inner request brings its own.
    let mut conn = e.tunnel("api.test:80", &[], &[]).await.unwrap();
    let inner = |secret: &str| {
        format!(
            "GET / HTTP/1.1\r\nHost: api.test\r\nProxy-Tokenizer: {secret}\r\n\
             Proxy-Authorization: Bearer {AUTH}\r\n\r\n"
        )
    };
    for (secret, needle) in [
        ("!!!", "bad Proxy-Tokenizer encoding"),
        (wrong_key.as_str(), "failed Proxy-Tokenizer decryption"),
        (bad_json.as_str(), "bad secret json"),
    ] {
        conn.send(inner(secret).as_bytes()).await;
        let resp = conn.read_response(false).await;
        assert_refused(resp.status, &resp.text(), 400, needle, &[secret]);
    }
    e.upstream_untouched();
    conn.send(inner(&good).as_bytes()).await;
    let resp = conn.read_response(false).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echo = Echo::parse(&resp.text());
    assert_eq!(
        echo.header("authorization").unwrap(),
        format!("Bearer {TOKEN}")
    );
}

// === bytes that are not HTTP ===

#[tokio::test]
async fn malformed_requests_get_400_and_the_server_stays_up() {
    let e = env().await;
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
        let answer = raw_until_close(e.tk.addr, bytes).await;
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
