//! No secret value reaches the logs or the error bodies.
//!
//! The real binary serves a mix of requests (success, HMAC, wrong caller token, host
//! validator refusal, Basic auth, unreachable upstream, OAuth tokens) in both log formats;
//! then everything it wrote to stderr is searched for every plaintext credential, its
//! base64 and hex forms, and the caller passwords' digests.

use ::tokenizer::secret::{OpenKey, b64};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::binary::Server;
use crate::support::ca::TestCa;
use crate::support::upstream::{Echo, Upstream};
use crate::support::{DeadPort, Reply, bearer, inject, seal_for, with};

const INJECT_TOKEN: &str = "tok-SECRET-inject-1";
const BEARER_PW: &str = "pw-SECRET-bearer-1";
const HMAC_KEY: &str = "key-SECRET-hmac-1";
const WRONG_PW: &str = "pw-SECRET-wrong-1";
const HOSTFAIL_TOKEN: &str = "tok-SECRET-hostfail-1";
const BASIC_PW: &str = "pw-SECRET-basic-1";
const BASIC_TOKEN: &str = "tok-SECRET-basic-1";
const UNREACHABLE_TOKEN: &str = "tok-SECRET-unreachable-1";
const ACCESS_TOKEN: &str = "at-SECRET-oauth-1";
const REFRESH_TOKEN: &str = "rt-SECRET-oauth-1";
/// A query value: only query keys may be logged.
const QUERY_VALUE: &str = "qv-SECRET-query-1";

const PLAINTEXTS: &[&str] = &[
    INJECT_TOKEN,
    BEARER_PW,
    HMAC_KEY,
    WRONG_PW,
    HOSTFAIL_TOKEN,
    BASIC_PW,
    BASIC_TOKEN,
    UNREACHABLE_TOKEN,
    ACCESS_TOKEN,
    REFRESH_TOKEN,
    QUERY_VALUE,
];

/// Every form of every secret that must not be written anywhere: the plaintexts, their
/// base64, the HMAC key in hex, the Basic credentials as sent, the caller passwords'
/// digests (the sealed `bearer_auth` value) and the open key.
fn forbidden(open_key_hex: &str) -> Vec<String> {
    let mut out = vec![open_key_hex.to_owned()];
    for p in PLAINTEXTS {
        out.push((*p).to_owned());
        out.push(b64::encode(p.as_bytes()));
    }
    out.push(hex::encode(HMAC_KEY));
    out.push(hex::encode(HMAC_KEY).to_uppercase());
    out.push(b64::encode(format!("user:{BASIC_PW}").as_bytes()));
    for pw in [BEARER_PW, WRONG_PW, BASIC_PW] {
        out.push(bearer(pw)["digest"].as_str().unwrap().to_owned());
    }
    out
}

fn assert_clean(what: &str, text: &str, forbidden: &[String]) {
    for f in forbidden {
        assert!(!text.contains(f.as_str()), "{what} contains {f:?}:\n{text}");
    }
}

/// One request made and what the client got.
struct Made {
    path: &'static str,
    status: u16,
    body: String,
}

struct Env {
    _ca: TestCa,
    upstream: Upstream,
    open: OpenKey,
    open_hex: String,
    server: Server,
}

impl Env {
    async fn start(log_format: &str, envs: &[(&str, &str)]) -> Self {
        let ca = TestCa::new();
        let upstream = Upstream::start(&ca, &["127.0.0.1"]).await;
        let open = OpenKey::generate();
        let open_hex = open.to_hex().to_string();
        let server = Server::start_trusting(&ca, &open_hex, &["--log-format", log_format], envs);
        Self {
            _ca: ca,
            upstream,
            open,
            open_hex,
            server,
        }
    }

    fn seal(&self, secret: &Value) -> String {
        seal_for(&self.open, secret)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.upstream.port())
    }

    /// The requests, each on its own path; the positive ones are checked to have
    /// injected their credential.
    async fn exercise(&self) -> Vec<Made> {
        let client = self.server.client();
        let host = self.host();
        let bearer_pw = format!("Bearer {BEARER_PW}");
        let mut made = Vec::new();

        // `url` (recorded as `path`) with one secret and a Proxy-Authorization; POST
        // when there is a body.
        let send =
            |path: &'static str, url: String, sealed: String, auth: String, body: &'static str| {
                let method = if body.is_empty() { "GET" } else { "POST" };
                let req = client
                    .request(method.parse().unwrap(), url)
                    .header("proxy-tokenizer", sealed)
                    .header("proxy-authorization", auth)
                    .body(body);
                async move {
                    let got = Reply::read(req).await;
                    Made {
                        path,
                        status: got.status,
                        body: got.body,
                    }
                }
            };
        let injected = |m: &Made, token: &str| {
            assert_eq!(m.status, 200, "{}", m.body);
            assert_eq!(
                Echo::parse(&m.body).header_all("authorization"),
                [format!("Bearer {token}")]
            );
        };

        // 1. inject, bearer auth, a query value
        let sealed = self.seal(&with(
            inject(INJECT_TOKEN, BEARER_PW),
            json!({"allowed_hosts": [host]}),
        ));
        let url = format!("http://{host}/inject?api_key={QUERY_VALUE}");
        let m = send("/inject", url, sealed.clone(), bearer_pw.clone(), "").await;
        injected(&m, INJECT_TOKEN);
        made.push(m);

        // 2. HMAC of the body
        let secret = json!({
            "inject_hmac_processor": {"key": b64::encode(HMAC_KEY.as_bytes()), "hash": "sha256"},
            "bearer_auth": bearer(BEARER_PW),
        });
        let url = format!("http://{host}/hmac");
        let m = send(
            "/hmac",
            url,
            self.seal(&secret),
            bearer_pw.clone(),
            "message to sign",
        )
        .await;
        let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_KEY.as_bytes()).unwrap();
        mac.update(b"message to sign");
        injected(&m, &hex::encode(mac.finalize().into_bytes()));
        assert_eq!(Echo::parse(&m.body).body(), "message to sign");
        made.push(m);

        // 3. the wrong caller password
        let url = format!("http://{host}/wrong-auth");
        let m = send("/wrong-auth", url, sealed, format!("Bearer {WRONG_PW}"), "").await;
        assert_eq!(m.status, 407, "{}", m.body);
        made.push(m);

        // 4. a host the secret is not valid for
        let secret = with(
            inject(HOSTFAIL_TOKEN, BEARER_PW),
            json!({"allowed_hosts": ["api.example.com"]}),
        );
        let url = format!("http://{host}/host-refused");
        let m = send(
            "/host-refused",
            url,
            self.seal(&secret),
            bearer_pw.clone(),
            "",
        )
        .await;
        assert_eq!(m.status, 400, "{}", m.body);
        made.push(m);

        // 5. Basic auth: the password is the caller token
        let basic = b64::encode(format!("user:{BASIC_PW}").as_bytes());
        let sealed = self.seal(&inject(BASIC_TOKEN, BASIC_PW));
        let url = format!("http://{host}/basic");
        let m = send("/basic", url, sealed, format!("Basic {basic}"), "").await;
        injected(&m, BASIC_TOKEN);
        made.push(m);

        // 6. an upstream that is not there
        let dead = DeadPort::new();
        let sealed = self.seal(&inject(UNREACHABLE_TOKEN, BEARER_PW));
        let url = dead.url("/unreachable");
        let m = send("/unreachable", url, sealed, bearer_pw.clone(), "").await;
        assert_eq!(m.status, 502, "{}", m.body);
        made.push(m);

        // 7. OAuth2, access then refresh token
        let sealed = self.seal(&json!({
            "oauth2_processor": {"token": {
                "access_token": ACCESS_TOKEN,
                "refresh_token": REFRESH_TOKEN,
            }},
            "bearer_auth": bearer(BEARER_PW),
        }));
        for (path, header, want) in [
            ("/oauth2", sealed.clone(), ACCESS_TOKEN),
            (
                "/oauth2-refresh",
                format!(r#"{sealed}; {{"st":"refresh"}}"#),
                REFRESH_TOKEN,
            ),
        ] {
            let url = format!("http://{host}{path}");
            let m = send(path, url, header, bearer_pw.clone(), "").await;
            injected(&m, want);
            made.push(m);
        }
        made
    }

    /// SIGTERM and everything the server wrote to stderr.
    async fn stop(self) -> (String, String) {
        let Self {
            server, open_hex, ..
        } = self;
        let stopped = tokio::task::spawn_blocking(move || server.stop())
            .await
            .unwrap();
        assert!(
            stopped.status.success(),
            "exit {}: {}",
            stopped.status,
            stopped.stderr
        );
        (stopped.stderr, open_hex)
    }
}

/// The error bodies the client saw hold no secret either.
fn check_bodies(made: &[Made], forbidden: &[String]) {
    for m in made.iter().filter(|m| m.status >= 400) {
        assert_clean(
            &format!("the {} body for {}", m.status, m.path),
            &m.body,
            forbidden,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_hold_no_secrets() {
    let env = Env::start("json", &[]).await;
    let made = env.exercise().await;
    let (stderr, open_hex) = env.stop().await;
    let forbidden = forbidden(&open_hex);
    assert_clean("the JSON log", &stderr, &forbidden);
    check_bodies(&made, &forbidden);

    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let requests: Vec<&Value> = lines.iter().filter(|l| l.get("method").is_some()).collect();
    assert_eq!(
        requests.len(),
        made.len(),
        "one log line per request:\n{stderr}"
    );
    for m in &made {
        let matching: Vec<&&Value> = requests.iter().filter(|l| l["path"] == m.path).collect();
        assert_eq!(matching.len(), 1, "one line for {}:\n{stderr}", m.path);
        let line = matching[0];
        assert_eq!(line["status"], m.status, "{line}");
        assert_eq!(
            line["method"],
            if m.path == "/hmac" { "POST" } else { "GET" }
        );
        assert!(
            line["host"]
                .as_str()
                .is_some_and(|h| h.starts_with("127.0.0.1:")),
            "{line}"
        );
        if m.path == "/inject" {
            assert_eq!(line["query_keys"], "api_key", "{line}");
        }
        // Every secret that was opened is logged, stripped, as a nested array.
        let secrets = &line["secrets"];
        assert_eq!(secrets.as_array().map(Vec::len), Some(1), "{line}");
        // Empty fields are left out.
        assert!(line.get("connect_host").is_none(), "{line}");
        assert!(line.get("flysrc").is_none(), "{line}");
        let secret = &secrets[0]["secret"];
        assert_eq!(secret["bearer_auth"]["digest"], "REDACTED", "{line}");
        let processor = match m.path {
            "/hmac" => {
                assert_eq!(secret["inject_hmac_processor"]["key"], "REDACTED");
                "inject_hmac_processor"
            }
            "/oauth2" | "/oauth2-refresh" => {
                let token = &secret["oauth2_processor"]["token"];
                assert_eq!(token["access_token"], "REDACTED", "{line}");
                assert_eq!(token["refresh_token"], "REDACTED", "{line}");
                "oauth2_processor"
            }
            _ => {
                assert_eq!(secret["inject_processor"]["token"], "REDACTED", "{line}");
                "inject_processor"
            }
        };
        assert!(secret.get(processor).is_some(), "{line}");
    }
    for status in [407, 502, 400] {
        assert!(
            requests.iter().any(|l| l["status"] == status),
            "no {status} logged:\n{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_hold_no_secrets() {
    let env = Env::start("text", &[]).await;
    let made = env.exercise().await;
    let (stderr, open_hex) = env.stop().await;
    let forbidden = forbidden(&open_hex);
    assert_clean("the text log", &stderr, &forbidden);
    check_bodies(&made, &forbidden);

    let requests: Vec<&str> = stderr.lines().filter(|l| l.contains("method=")).collect();
    assert_eq!(
        requests.len(),
        made.len(),
        "one log line per request:\n{stderr}"
    );
    for m in &made {
        let path = format!("path={} ", m.path);
        let line = requests
            .iter()
            .find(|l| l.contains(&path))
            .unwrap_or_else(|| panic!("no line for {}:\n{stderr}", m.path));
        assert!(line.contains(&format!("status={}", m.status)), "{line}");
        assert!(line.contains("host=127.0.0.1:"), "{line}");
        assert!(line.contains("REDACTED"), "{line}");
    }
    assert!(stderr.contains("listening"), "{stderr}");
}

/// Trace logging, every crate included (what an operator turns on to chase a problem),
/// must not leak either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_hold_no_secrets() {
    let env = Env::start("json", &[("RUST_LOG", "trace")]).await;
    let made = env.exercise().await;
    let (stderr, open_hex) = env.stop().await;
    let forbidden = forbidden(&open_hex);
    assert_clean("the trace log", &stderr, &forbidden);
    check_bodies(&made, &forbidden);
}

/// `flyio_macaroon_auth` fails closed (407) and the log says why.
#[tokio::test(flavor = "multi_thread")]
async fn flyio_macaroon_auth_fails_closed_and_logs_why() {
    let open = OpenKey::generate();
    let open_hex = open.to_hex().to_string();
    let server = Server::start(&open_hex, &["--log-format", "json"], &[]);
    let secret = json!({
        "inject_processor": {"token": INJECT_TOKEN},
        "flyio_macaroon_auth": {"access": {"action": "r", "orgid": 1234}},
    });
    let sealed = seal_for(&open, &secret);
    let resp = server
        .client()
        .get("http://api.test/")
        .header("proxy-tokenizer", sealed)
        .header("proxy-authorization", "FlyV1 fm2_notchecked")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 407);
    let body = resp.text().await.unwrap();
    assert!(body.contains("flyio_macaroon_auth needs Fly.io"), "{body}");
    let stopped = server.stop();
    let line = stopped
        .stderr
        .lines()
        .find(|l| l.contains("\"status\":407"))
        .expect("a request line for the 407");
    assert!(line.contains("flyio_macaroon_auth needs Fly.io"), "{line}");
    assert!(!stopped.stderr.contains(INJECT_TOKEN));
}
