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

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::upstream::Echo;
use crate::support::{Env, Reply, bearer, python, with};

const ACCESS_KEY: &str = "AKIDREALEXAMPLE";
const SECRET_KEY: &str = "real/Secret+Key0123456789EXAMPLE";
const AMZ_DATE: &str = "20260304T101112Z";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// A proxy that buffers at most 4 KiB, in front of a TLS echo upstream.
async fn env() -> Env {
    Env::builder()
        .flags(&["--max-buffered-body", "4KiB"])
        .start()
        .await
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

/// `method path` through the proxy carrying `sealed`, signed by the client with `auth`
/// at AMZ_DATE, with more `headers` and `body`.
async fn send(
    e: &Env,
    method: &str,
    path: &str,
    (sealed, auth): (&str, &str),
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut all = vec![
        ("proxy-authorization", "Bearer trustno1"),
        ("authorization", auth),
        ("x-amz-date", AMZ_DATE),
    ];
    all.extend_from_slice(headers);
    e.send(method, path, &[sealed], &all, body.to_owned()).await
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

/// `request` (`METHOD PATH`) with `headers` and `body`, signed by the client for
/// `(region, service)` and sealed with the real keys (no_swap): what the upstream saw,
/// checked to be what AWS would accept.
async fn accepted(
    e: &Env,
    request: &str,
    (region, service): (&str, &str),
    headers: &[(&str, &str)],
    body: &str,
) -> Echo {
    let (method, path) = request.split_once(' ').unwrap();
    let sealed = e.seal(&secret(ACCESS_KEY, SECRET_KEY, Some(true)));
    let auth = dummy_auth(region, service);
    let echo = send(e, method, path, (&sealed, &auth), headers, body)
        .await
        .echo();
    assert_aws_would_accept(e, &echo, region, service);
    echo
}

// === S3 ===

#[tokio::test]
async fn s3_put_with_unsigned_payload_is_signed_as_aws_verifies_it() {
    let e = env().await;
    let headers = [
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ("content-type", "image/jpeg"),
        ("x-amz-meta-owner", "Ada  Lovelace"),
    ];
    let request = "PUT /bucket/photos/my%20cat.jpg";
    let echo = accepted(
        &e,
        request,
        ("us-east-1", "s3"),
        &headers,
        "not really a jpeg",
    )
    .await;
    assert_eq!(echo.uri(), "/bucket/photos/my%20cat.jpg");
    assert_eq!(echo.body(), "not really a jpeg");
}

#[tokio::test]
async fn s3_put_with_a_body_hash_is_signed_as_aws_verifies_it() {
    let e = env().await;
    let body = "hello, object";
    let hash = hex::encode(Sha256::digest(body));
    let headers = [
        ("x-amz-content-sha256", hash.as_str()),
        ("content-type", "text/plain"),
    ];
    let request = "PUT /bucket/greeting.txt";
    let echo = accepted(&e, request, ("eu-west-1", "s3"), &headers, body).await;
    assert_eq!(echo.body(), body);
}

#[tokio::test]
async fn s3_get_without_a_body_is_signed_with_its_rewritten_query() {
    let e = env().await;
    let headers = [("x-amz-content-sha256", EMPTY_SHA256)];
    let request = "GET /bucket?prefix=a+b&list-type=2&delimiter=%2F";
    let echo = accepted(&e, request, ("us-east-1", "s3"), &headers, "").await;
    assert_eq!(echo.uri(), "/bucket?delimiter=%2F&list-type=2&prefix=a%20b");
}

#[tokio::test]
async fn over_the_limit_an_s3_body_with_a_declared_hash_still_streams() {
    let e = env().await;
    let body = "x".repeat(5000);
    let headers = [("x-amz-content-sha256", "UNSIGNED-PAYLOAD")];
    let echo = accepted(&e, "PUT /bucket/big", ("us-east-1", "s3"), &headers, &body).await;
    assert_eq!(echo.body(), body);
}

// === other services ===

#[tokio::test]
async fn sts_post_with_a_form_body_and_no_hash_header_is_signed_over_the_body() {
    let e = env().await;
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let headers = [(
        "content-type",
        "application/x-www-form-urlencoded; charset=utf-8",
    )];
    let echo = accepted(&e, "POST /", ("us-east-1", "sts"), &headers, body).await;
    assert_eq!(echo.body(), body);
    assert!(echo.header("x-amz-content-sha256").is_none());
}

#[tokio::test]
async fn execute_api_get_with_a_query_to_re_encode_and_no_body() {
    let e = env().await;
    let headers = [("x-custom-trace", "  spaced   out  ")];
    let request = "GET /prod/items/a%20b:c?z=1&q=hello+world&tag=%7Eok&flag";
    let echo = accepted(&e, request, ("eu-central-1", "execute-api"), &headers, "").await;
    assert_eq!(
        echo.uri(),
        "/prod/items/a%20b:c?flag=&q=hello%20world&tag=~ok&z=1"
    );
    assert_eq!(echo.body(), "");
}

#[tokio::test]
async fn without_no_swap_the_scope_parts_are_exchanged_as_in_go() {
    let e = env().await;
    let sealed = e.seal(&secret(ACCESS_KEY, SECRET_KEY, None));
    // A client written against the Go tokenizer names the service first.
    let resp = send(
        &e,
        "POST",
        "/",
        (&sealed, &dummy_auth("sts", "us-west-2")),
        &[("content-type", "application/x-www-form-urlencoded")],
        "Action=GetCallerIdentity&Version=2011-06-15",
    )
    .await;
    let echo = resp.echo();
    assert_aws_would_accept(&e, &echo, "us-west-2", "sts");
}

// === refusals ===

#[tokio::test]
async fn a_body_over_the_limit_without_a_declared_hash_is_413() {
    let e = env().await;
    let sealed = e.seal(&secret(ACCESS_KEY, SECRET_KEY, Some(true)));
    let resp = send(
        &e,
        "POST",
        "/",
        (&sealed, &dummy_auth("us-east-1", "sts")),
        &[],
        &"x".repeat(5000),
    )
    .await;
    assert_eq!(resp.status, 413);
    let text = resp.body;
    assert!(
        !text.contains(SECRET_KEY) && !text.contains(ACCESS_KEY),
        "{text}"
    );
    assert_eq!(e.upstream.connection_count(), 0);
}

#[tokio::test]
async fn a_bad_client_authorization_is_400() {
    let e = env().await;
    let sealed = e.seal(&secret(ACCESS_KEY, SECRET_KEY, Some(true)));
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
        let mut headers = vec![
            ("proxy-authorization", "Bearer trustno1"),
            ("x-amz-date", date),
        ];
        headers.extend(auth.map(|a| ("authorization", a)));
        let resp = e.get("/", &[&sealed], &headers).await;
        assert_eq!(resp.status, 400, "{auth:?} {date}");
        let text = resp.body;
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
        let sealed = e.seal(&secret(access, secret_key, Some(true)));
        let resp = send(
            &e,
            "GET",
            "/",
            (&sealed, &dummy_auth("us-east-1", "sts")),
            &[],
            "",
        )
        .await;
        assert_eq!(resp.status, 400);
        let text = resp.body;
        assert!(text.contains("missing"), "{text}");
        assert!(
            !text.contains(SECRET_KEY) && !text.contains(ACCESS_KEY),
            "{text}"
        );
    }
}
