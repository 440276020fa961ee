//! `sigv4_processor` through the running proxy, checked by an independent signer.
//!
//! The client signs with dummy keys (only the `Credential=` scope of its Authorization
//! matters), the proxy re-signs with the sealed keys, and the echo upstream shows what
//! arrived. botocore's `SigV4Auth` / `S3SigV4Auth` (what the AWS CLI signs with) then
//! recomputes the signature from the received method, URL, signed headers and body with
//! the real keys, as AWS verifies it: equal Authorization values mean AWS would accept
//! the request. botocore comes from `tests/requirements.txt` (see `support::python`);
//! without Python these tests fail rather than skip.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::ca::TestCa;
use crate::support::python;
use crate::support::tokenizer::Tokenizer;
use crate::support::upstream::{Echo, Upstream};
use crate::support::{bearer, with};

const ACCESS_KEY: &str = "AKIDREALEXAMPLE";
const SECRET_KEY: &str = "real/Secret+Key0123456789EXAMPLE";
const AMZ_DATE: &str = "20260304T101112Z";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct Env {
    _ca: TestCa,
    upstream: Upstream,
    tk: Tokenizer,
    client: reqwest::Client,
}

/// A proxy that buffers at most 4 KiB, in front of a TLS echo upstream.
async fn env() -> Env {
    let ca = TestCa::new();
    let upstream = Upstream::start(&ca, &["127.0.0.1"]).await;
    let tk = Tokenizer::start(&ca, &["--max-buffered-body", "4KiB"]).await;
    let client = tk.client();
    Env {
        _ca: ca,
        upstream,
        tk,
        client,
    }
}

/// The sealed keys; `no_swap: None` leaves the key out (Go's default, which swaps).
fn secret(access: &str, secret: &str, no_swap: Option<bool>) -> Value {
    let mut config = json!({"access_key": access, "secret_key": secret});
    if let Some(no_swap) = no_swap {
        config["no_swap"] = json!(no_swap);
    }
    with(
        json!({ "sigv4_processor": config }),
        json!({ "bearer_auth": bearer("trustno1") }),
    )
}

/// A client's dummy-key Authorization naming `p2`/`p3` as the scope's third and fourth
/// parts.
fn dummy_auth(p2: &str, p3: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIDDUMMY/20260304/{p2}/{p3}/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=0123456789abcdef"
    )
}

impl Env {
    /// A request through the proxy carrying `sealed`, signed by the client for
    /// `region`/`service` (no_swap order) at AMZ_DATE.
    fn request(
        &self,
        method: Method,
        path: &str,
        sealed: &str,
        auth: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(
                method,
                format!("http://127.0.0.1:{}{path}", self.upstream.port()),
            )
            .header("proxy-tokenizer", sealed)
            .header("proxy-authorization", "Bearer trustno1")
            .header("authorization", auth)
            .header("x-amz-date", AMZ_DATE)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.upstream.port())
    }
}

async fn echo_of(resp: reqwest::Response) -> Echo {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    Echo::parse(&text)
}

/// The `SignedHeaders` of an Authorization value.
fn signed_headers(authorization: &str) -> Vec<String> {
    let list = authorization
        .split(", ")
        .find_map(|part| part.strip_prefix("SignedHeaders="))
        .unwrap_or_else(|| panic!("no SignedHeaders in {authorization}"));
    list.split(';').map(str::to_owned).collect()
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/integration/sigv4_botocore.py")
}

/// botocore's Authorization for the request the upstream received, with the real keys.
fn botocore_authorization(echo: &Echo, region: &str, service: &str) -> String {
    let received = echo
        .header("authorization")
        .expect("an Authorization arrived");
    let signed = signed_headers(&received);
    let headers: Vec<Value> = echo.0["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| signed.iter().any(|s| s == h[0].as_str().unwrap()))
        .cloned()
        .collect();
    let spec = json!({
        "method": echo.0["method"],
        "url": format!("https://{}{}", echo.header("host").unwrap(), echo.uri()),
        "headers": headers,
        "body": echo.body(),
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "region": region,
        "service": service,
        "amz_date": echo.header("x-amz-date").expect("X-Amz-Date arrived"),
    });
    let mut child = Command::new(python::python())
        .arg(script())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sigv4_botocore.py failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// What arrived is signed for `region`/`service` with the real access key, covers the
/// Host the upstream saw and every header but the unsigned ones, and botocore computes
/// the same Authorization from it.
fn assert_aws_would_accept(e: &Env, echo: &Echo, region: &str, service: &str) {
    let ours = echo.header("authorization").unwrap();
    let scope = format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260304/{region}/{service}/aws4_request, "
    );
    assert!(ours.starts_with(&scope), "{ours}");
    assert_eq!(echo.header_all("authorization").len(), 1);
    assert_eq!(echo.header("host").unwrap(), e.host());
    assert_eq!(echo.header("x-amz-date").unwrap(), AMZ_DATE);
    let signed = signed_headers(&ours);
    for name in echo.header_names() {
        let unsigned = ["authorization", "user-agent"].contains(&name.as_str());
        assert!(
            unsigned || signed.contains(&name),
            "{name} arrived unsigned: {ours}"
        );
    }
    assert_eq!(botocore_authorization(echo, region, service), ours);
}

// === S3 ===

#[tokio::test]
async fn s3_put_with_unsigned_payload_is_signed_as_aws_verifies_it() {
    let e = env().await;
    let sealed = e.tk.seal(&secret(ACCESS_KEY, SECRET_KEY, Some(true)));
    let resp = e
        .request(
            Method::PUT,
            "/bucket/photos/my%20cat.jpg",
            &sealed,
            &dummy_auth("us-east-1", "s3"),
        )
        .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        .header("content-type", "image/jpeg")
        .header("x-amz-meta-owner", "Ada  Lovelace")
        .body("not really a jpeg")
        .send()
        .await
        .unwrap();
    let echo = echo_of(resp).await;
    assert_eq!(echo.uri(), "/bucket/photos/my%20cat.jpg");
    assert_eq!(echo.body(), "not really a jpeg");
    assert_aws_would_accept(&e, &echo, "us-east-1", "s3");
}

#[tokio::test]
async fn s3_put_with_a_body_hash_is_signed_as_aws_verifies_it() {
    let e = env().await;
    let sealed = e.tk.seal(&secret(ACCESS_KEY, SECRET_KEY, Some(true)));
    let body = "hello, object";
    let resp = e
        .request(
            Method::PUT,
            "/bucket/greeting.txt",
            &sealed,
            &dummy_auth("eu-west-1", "s3"),
        )
        .header("x-amz-content-sha256", hex::encode(Sha256::digest(body)))
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .unwrap();
    let echo = echo_of(resp).await;
    assert_eq!(echo.body(), body);
    assert_aws_would_accept(&e, &echo, "eu-west-1", "s3");
}

#[tokio::test]
async fn s3_get_without_a_body_is_signed_with_its_rewritten_query() {
    let e = env().await;
    let sealed = e.tk.seal(&secret(ACCESS_KEY, SECRET_KEY, Some(true)));
    let resp = e
        .request(
            Method::GET,
            "/bucket?prefix=a+b&list-type=2&delimiter=%2F",
            &sealed,
            &dummy_auth("us-east-1", "s3"),
        )
        .header("x-amz-content-sha256", EMPTY_SHA256)
        .send()
        .await
        .unwrap();
    let echo = echo_of(resp).await;
    assert_eq!(echo.uri(), "/bucket?delimiter=%2F&list-type=2&prefix=a%20b");
    assert_aws_would_accept(&e, &echo, "us-east-1", "s3");
}

#[tokio::test]
async fn over_the_limit_an_s3_body_with_a_declared_hash_still_streams() {
    let e = env().await;
    let sealed = e.tk.seal(&secret(ACCESS_KEY, SECRET_KEY, Some(true)));
    let body = "x".repeat(5000);
    let resp = e
        .request(
            Method::PUT,
            "/bucket/big",
            &sealed,
            &dummy_auth("us-east-1", "s3"),
        )
        .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let echo = echo_of(resp).await;
    assert_eq!(echo.body(), body);
    assert_aws_would_accept(&e, &echo, "us-east-1", "s3");
}

// === other services ===

#[tokio::test]
async fn sts_post_with_a_form_body_and_no_hash_header_is_signed_over_the_body() {
    let e = env().await;
    let sealed = e.tk.seal(&secret(ACCESS_KEY, SECRET_KEY, Some(true)));
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let resp = e
        .request(Method::POST, "/", &sealed, &dummy_auth("us-east-1", "sts"))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let echo = echo_of(resp).await;
    assert_eq!(echo.body(), body);
    assert!(echo.header("x-amz-content-sha256").is_none());
    assert_aws_would_accept(&e, &echo, "us-east-1", "sts");
}

#[tokio::test]
async fn execute_api_get_with_a_query_to_re_encode_and_no_body() {
    let e = env().await;
    let sealed = e.tk.seal(&secret(ACCESS_KEY, SECRET_KEY, Some(true)));
    let resp = e
        .request(
            Method::GET,
            "/prod/items/a%20b:c?z=1&q=hello+world&tag=%7Eok&flag",
            &sealed,
            &dummy_auth("eu-central-1", "execute-api"),
        )
        .header("x-custom-trace", "  spaced   out  ")
        .send()
        .await
        .unwrap();
    let echo = echo_of(resp).await;
    assert_eq!(
        echo.uri(),
        "/prod/items/a%20b:c?flag=&q=hello%20world&tag=~ok&z=1"
    );
    assert_eq!(echo.body(), "");
    assert_aws_would_accept(&e, &echo, "eu-central-1", "execute-api");
}

#[tokio::test]
async fn without_no_swap_the_scope_parts_are_exchanged_as_in_go() {
    let e = env().await;
    let sealed = e.tk.seal(&secret(ACCESS_KEY, SECRET_KEY, None));
    // A client written against the Go tokenizer names the service first.
    let resp = e
        .request(Method::POST, "/", &sealed, &dummy_auth("sts", "us-west-2"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("Action=GetCallerIdentity&Version=2011-06-15")
        .send()
        .await
        .unwrap();
    let echo = echo_of(resp).await;
    assert_aws_would_accept(&e, &echo, "us-west-2", "sts");
}

// === refusals ===

#[tokio::test]
async fn a_body_over_the_limit_without_a_declared_hash_is_413() {
    let e = env().await;
    let sealed = e.tk.seal(&secret(ACCESS_KEY, SECRET_KEY, Some(true)));
    let resp = e
        .request(Method::POST, "/", &sealed, &dummy_auth("us-east-1", "sts"))
        .body("x".repeat(5000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let text = resp.text().await.unwrap();
    assert!(
        !text.contains(SECRET_KEY) && !text.contains(ACCESS_KEY),
        "{text}"
    );
    assert_eq!(e.upstream.connection_count(), 0);
}

#[tokio::test]
async fn a_bad_client_authorization_is_400() {
    let e = env().await;
    let sealed = e.tk.seal(&secret(ACCESS_KEY, SECRET_KEY, Some(true)));
    let cases: [(Option<&str>, &str); 5] = [
        (None, AMZ_DATE),
        (
            Some("AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00"),
            AMZ_DATE,
        ),
        (
            Some("AWS4-HMAC-SHA256 Credential=AKIDDUMMY/20260304/us-east-1/aws4_request"),
            AMZ_DATE,
        ),
        (
            Some("AWS4-HMAC-SHA256 Credential=AKIDDUMMY/2026-03-04/us-east-1/sts/aws4_request"),
            AMZ_DATE,
        ),
        (Some(&dummy_auth("us-east-1", "sts")), "yesterday"),
    ];
    for (auth, date) in cases {
        let mut req = e
            .client
            .get(format!("http://127.0.0.1:{}/", e.upstream.port()))
            .header("proxy-tokenizer", &sealed)
            .header("proxy-authorization", "Bearer trustno1")
            .header("x-amz-date", date);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 400, "{auth:?} {date}");
        let text = resp.text().await.unwrap();
        assert!(text.starts_with("bad request: "), "{text}");
        assert!(
            !text.contains(SECRET_KEY) && !text.contains(ACCESS_KEY),
            "{text}"
        );
    }
    assert_eq!(e.upstream.connection_count(), 0);
}

#[tokio::test]
async fn empty_keys_are_400() {
    let e = env().await;
    for (access, secret_key) in [("", SECRET_KEY), (ACCESS_KEY, "")] {
        let sealed = e.tk.seal(&secret(access, secret_key, Some(true)));
        let resp = e
            .request(Method::GET, "/", &sealed, &dummy_auth("us-east-1", "sts"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let text = resp.text().await.unwrap();
        assert!(text.contains("missing"), "{text}");
        assert!(
            !text.contains(SECRET_KEY) && !text.contains(ACCESS_KEY),
            "{text}"
        );
    }
}
