//! One environment for the proxy tests: a throwaway CA, a TLS echo upstream that answers
//! to the names a test gives, and the proxy in-process, trusting the CA and pinning each
//! of those names to the upstream.
//!
//! ```ignore
//! let e = Env::builder()
//!     .names(&["api.test", "other.test"]) // certified, and pinned to the upstream
//!     .flags(&["--max-buffered-body", "1KiB"])
//!     .admin() // --admin-address 127.0.0.1:0; e.admin() reaches it
//!     .start()
//!     .await;
//! let sealed = e.seal(&inject(TOKEN, AUTH));
//! let got = e.get("/path", &[&sealed], &[("proxy-authorization", "Bearer pw")]).await;
//! assert_eq!(got.echo().header("authorization").unwrap(), format!("Bearer {TOKEN}"));
//! ```
//!
//! `.guard(true)` drops the loopback exemption from the destination guard; `.pins(..)`
//! adds or replaces `--upstream-resolve` entries; `e.tunnel(..)` opens a CONNECT tunnel.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::admin::Admin;
use super::ca::TestCa;
use super::raw::{RawConn, RawResponse};
use super::tokenizer::{self, Tokenizer};
use super::upstream::{Echo, Upstream};

/// A CA, an upstream and a proxy; all stop when dropped.
pub struct Env {
    pub ca: TestCa,
    pub upstream: Upstream,
    pub tk: Tokenizer,
    /// Sends every request through the proxy.
    pub client: reqwest::Client,
    host: String,
}

/// How to start an [`Env`].
pub struct EnvBuilder {
    ca: Option<TestCa>,
    names: Vec<String>,
    pins: Vec<String>,
    flags: Vec<String>,
    guard: bool,
}

impl Env {
    pub fn builder() -> EnvBuilder {
        EnvBuilder {
            ca: None,
            names: vec!["127.0.0.1".to_owned()],
            pins: Vec::new(),
            flags: Vec::new(),
            guard: false,
        }
    }

    /// The default environment: an upstream known as `127.0.0.1:PORT`.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// The first name, as a client addresses it: `api.test`, or `127.0.0.1:PORT` for an
    /// IP literal (not pinned, so the port is the upstream's own).
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// `http://HOST/PATH` for [`Env::host`].
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host)
    }

    /// `target` if it is a URL, else [`Env::url`] of it.
    fn target(&self, target: &str) -> String {
        if target.starts_with("http://") || target.starts_with("https://") {
            target.to_owned()
        } else {
            self.url(target)
        }
    }

    /// Seal a secret given as JSON for this proxy.
    pub fn seal(&self, secret: &Value) -> String {
        self.tk.seal(secret)
    }

    /// Seal JSON text without checking it (for bad-secret tests).
    pub fn seal_raw(&self, json: &str) -> String {
        self.tk.seal_raw(json)
    }

    /// The admin listener; needs `--admin-address`.
    pub fn admin(&self) -> Admin {
        Admin::new(self.tk.admin_addr.expect("started with --admin-address"))
    }

    /// `method target` through the proxy (`target` a URL, or a path on [`Env::url`]),
    /// with one `Proxy-Tokenizer` line per `sealed` value, then `headers` and `body`.
    pub async fn send(
        &self,
        method: &str,
        target: &str,
        sealed: &[&str],
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut req = self
            .client
            .request(method.parse().unwrap(), self.target(target))
            .body(body);
        for s in sealed {
            req = req.header("proxy-tokenizer", *s);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Reply::read(req).await
    }

    /// `CONNECT authority` through the proxy with one `Proxy-Tokenizer` line per `sealed`
    /// value and `headers`: the tunnel, or the answer that refused it.
    pub async fn tunnel(
        &self,
        authority: &str,
        sealed: &[&str],
        headers: &[(&str, &str)],
    ) -> Result<RawConn, RawResponse> {
        let mut all: Vec<(&str, &str)> = sealed.iter().map(|s| ("proxy-tokenizer", *s)).collect();
        all.extend_from_slice(headers);
        RawConn::tunnel(self.tk.addr, authority, &all).await
    }

    /// [`Env::send`] a GET without a body.
    pub async fn get(&self, target: &str, sealed: &[&str], headers: &[(&str, &str)]) -> Reply {
        self.send("GET", target, sealed, headers, "").await
    }
}

impl EnvBuilder {
    /// Names on the upstream's certificate (DNS names or IP literals; `127.0.0.1` unless
    /// given). Each DNS name is pinned to the upstream (`--upstream-resolve`), for port
    /// 443 (what `http://name/` and `http://name:80/` dial), or for the port it is given
    /// with (`localhost:8443`). The first name is [`Env::host`].
    pub fn names(mut self, names: &[&str]) -> Self {
        self.names = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// More `--upstream-resolve` entries (`name=ADDR`); one for a name replaces the name's
    /// own pin to the upstream.
    pub fn pins(mut self, pins: &[&str]) -> Self {
        self.pins.extend(pins.iter().map(|p| (*p).to_owned()));
        self
    }

    /// Use this CA (for other servers of the test the proxy must trust too) instead of a
    /// fresh one.
    pub fn ca(mut self, ca: TestCa) -> Self {
        self.ca = Some(ca);
        self
    }

    /// More `serve` flags. The reflection guard is off unless they turn it on: most tests
    /// read the injected credential back from the echo upstream.
    pub fn flags(mut self, flags: &[&str]) -> Self {
        self.flags.extend(flags.iter().map(|f| (*f).to_owned()));
        self
    }

    /// An admin listener on a kernel-picked port ([`Env::admin`]).
    pub fn admin(self) -> Self {
        self.flags(&["--admin-address", "127.0.0.1:0"])
    }

    /// With `true`, loopback is not exempt from the destination guard (by default it is:
    /// the upstream lives there), so only what `--upstream-allow-cidrs` in
    /// [`EnvBuilder::flags`] allows is dialled.
    pub fn guard(mut self, on: bool) -> Self {
        self.guard = on;
        self
    }

    pub async fn start(mut self) -> Env {
        let ca = self.ca.take().unwrap_or_else(TestCa::new);
        let certified: Vec<&str> = self.names.iter().map(|n| cert_name(n)).collect();
        let upstream = Upstream::start(&ca, &certified).await;
        let pinned_elsewhere = |name: &str| {
            self.pins
                .iter()
                .any(|p| p.split_once('=').is_some_and(|(n, _)| n == name))
        };
        let mut pins: Vec<String> = self
            .names
            .iter()
            .filter(|n| cert_name(n).parse::<IpAddr>().is_err() && !pinned_elsewhere(n))
            .map(|n| format!("{n}={}", upstream.addr))
            .collect();
        pins.extend(self.pins);
        let mut flags = Vec::new();
        if !pins.is_empty() {
            flags.extend(["--upstream-resolve".to_owned(), pins.join(",")]);
        }
        flags.extend(self.flags);
        let args = tokenizer::trusting(&ca, !self.guard, flags);
        let tk = Tokenizer::start_raw(args).await;
        let first = &self.names[0];
        let host = if first.parse::<IpAddr>().is_ok() {
            format!("{first}:{}", upstream.port())
        } else {
            first.clone()
        };
        Env {
            client: tk.client(),
            ca,
            upstream,
            tk,
            host,
        }
    }
}

/// `name` without a `:port`.
fn cert_name(name: &str) -> &str {
    if name.parse::<IpAddr>().is_ok() {
        return name;
    }
    name.split_once(':').map_or(name, |(host, _)| host)
}

/// A response as the client got it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// Send `req` (answered within 20 s) and read the whole response.
    pub async fn read(req: reqwest::RequestBuilder) -> Self {
        let resp = tokio::time::timeout(Duration::from_secs(20), req.send())
            .await
            .expect("answered in time")
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = String::from_utf8_lossy(&resp.bytes().await.unwrap()).into_owned();
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The upstream's echo of the request; the status must be 200.
    pub fn echo(&self) -> Echo {
        assert_eq!(self.status, 200, "{}", self.body);
        Echo::parse(&self.body)
    }
}

impl From<RawResponse> for Reply {
    fn from(raw: RawResponse) -> Self {
        let body = raw.text();
        let mut headers = HeaderMap::new();
        for (k, v) in &raw.headers {
            headers.append(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Self {
            status: raw.status,
            headers,
            body,
        }
    }
}
