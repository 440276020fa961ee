//! Building the audit entry of one request while it is handled, and recording it when
//! the response body has been sent (so byte counts and durations are complete, also
//! for streamed responses), or when the client goes away.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use http::request::Parts;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::IntoErrorResponse;
use crate::audit::{AuditEntry, Decision, Telemetry};
use tokenizer_http::body::{Body, BoxError};
use tokenizer_secret::auth::FlySrc;

/// Told when a request's response has ended (its body sent or dropped).
pub trait RequestEnd: Send + Sync {
    /// The response has been sent in full, or dropped; called once per request.
    fn end(&self);
}

/// The audit entry of one request in progress: filled in while it is handled, and
/// recorded (logged, kept in the ring, counted) once its response body has ended.
pub struct RequestLog {
    telemetry: Arc<Telemetry>,
    entry: AuditEntry,
    started: Instant,
    secrets: Vec<String>,
    decision: Option<Decision>,
    request_bytes: Arc<AtomicU64>,
    reflections: Arc<AtomicUsize>,
    pii: Option<Arc<tokenizer_processor::pii::Findings>>,
    /// The parkable client connection, told when the response has ended.
    /// Told when the response has ended (a parkable connection's activity).
    on_end: Option<Arc<dyn RequestEnd>>,
}

impl RequestLog {
    /// Start timing a request; `role` is `serve` or `sideproxy`.
    pub fn start(
        telemetry: &Arc<Telemetry>,
        role: &'static str,
        source: SocketAddr,
        parts: &Parts,
    ) -> Self {
        Self::new(
            telemetry,
            role,
            source,
            &parts.method,
            &parts.uri,
            &parts.headers,
        )
    }

    /// Like [`RequestLog::start`], for a request not yet split into parts.
    pub fn for_request<B>(
        telemetry: &Arc<Telemetry>,
        role: &'static str,
        source: SocketAddr,
        req: &http::Request<B>,
    ) -> Self {
        Self::new(
            telemetry,
            role,
            source,
            req.method(),
            req.uri(),
            req.headers(),
        )
    }

    fn new(
        telemetry: &Arc<Telemetry>,
        role: &'static str,
        source: SocketAddr,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
    ) -> Self {
        let host = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let query_keys = uri
            .query()
            .map(|q| {
                q.split('&')
                    .filter_map(|kv| kv.split('=').next())
                    .filter(|k| !k.is_empty())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let now = OffsetDateTime::now_utc();
        Self {
            telemetry: telemetry.clone(),
            entry: AuditEntry {
                timestamp: now.format(&Rfc3339).unwrap_or_default(),
                unix_ms: (now.unix_timestamp_nanos() / 1_000_000) as i64,
                role,
                mode: "",
                source: socket_addr_text(source),
                flysrc: String::new(),
                identity: String::new(),
                method: method.to_string(),
                host,
                path: uri.path().to_owned(),
                query_keys,
                connect_host: String::new(),
                status: 0,
                decision: Decision::Allowed,
                reason: String::new(),
                secret_ids: Vec::new(),
                secrets: String::new(),
                processors: 0,
                request_bytes: 0,
                response_bytes: 0,
                upstream_ms: None,
                total_ms: 0.0,
                reflections: 0,
                pii: Vec::new(),
                mcp_tools: Vec::new(),
            },
            started: Instant::now(),
            secrets: Vec::new(),
            decision: None,
            request_bytes: Arc::default(),
            reflections: Arc::default(),
            pii: None,
            on_end: None,
        }
    }

    /// Tell `on_end` (a parkable client connection's activity) when the response has
    /// ended.
    pub fn set_on_end(&mut self, on_end: Option<Arc<dyn RequestEnd>>) {
        self.on_end = on_end;
    }

    /// Count the request body's bytes as it streams.
    pub fn count_request(&self, body: Body) -> Body {
        CountingBody {
            inner: body,
            bytes: self.request_bytes.clone(),
            log: None,
        }
        .boxed()
    }

    /// A connection that is no HTTP request the proxy reads (a spliced or refused TLS or
    /// TCP stream): `kind` (`TLS`, `HTTP`, `TCP`) stands as the method, `host:port` as
    /// the host.
    pub fn for_stream(
        telemetry: &Arc<Telemetry>,
        role: &'static str,
        source: SocketAddr,
        kind: &str,
        host: &str,
        port: u16,
    ) -> Self {
        let method = http::Method::from_bytes(kind.as_bytes()).unwrap_or(http::Method::GET);
        let mut log = Self::new(
            telemetry,
            role,
            source,
            &method,
            &http::Uri::from_static("/"),
            &http::HeaderMap::new(),
        );
        log.entry.host = if host.is_empty() {
            format!(":{port}")
        } else {
            format!("{host}:{port}")
        };
        log.entry.path = String::new();
        log
    }

    /// A DNS question (`mode` `dns`): `qtype` (`A`, `TXT`, …) stands as the path, the
    /// name (clipped to 253 characters) as the host.
    pub fn for_dns(
        telemetry: &Arc<Telemetry>,
        role: &'static str,
        source: SocketAddr,
        qtype: &str,
        name: &str,
    ) -> Self {
        let mut log = Self::new(
            telemetry,
            role,
            source,
            &http::Method::GET,
            &http::Uri::from_static("/"),
            &http::HeaderMap::new(),
        );
        log.entry.mode = "dns";
        log.entry.method = "DNS".to_owned();
        log.entry.host = name.chars().take(253).collect();
        log.entry.path = qtype.chars().take(16).collect();
        log
    }

    /// How the connection came in (`transparent`).
    pub fn set_mode(&mut self, mode: &'static str) {
        self.entry.mode = mode;
    }

    /// The `host:port` of the CONNECT request, or of the tunnel the request came through.
    pub fn set_connect_host(&mut self, host: &str) {
        self.entry.connect_host = host.to_owned();
    }

    /// The SNI or CONNECT target a sidecar request was routed by.
    pub fn set_host(&mut self, host: &str) {
        self.entry.host = host.to_owned();
    }

    /// The caller's verified OIDC tokens and client certificate, for the audit line.
    pub fn set_identity(
        &mut self,
        tokens: &tokenizer_secret::auth::VerifiedTokens,
        cert: Option<&tokenizer_secret::auth::ClientCert>,
    ) {
        let mut parts: Vec<String> = tokens
            .tokens()
            .iter()
            .map(|t| format!("oidc {}", t.identity()))
            .collect();
        if let Some(cert) = cert {
            parts.push(format!("mtls {}", cert.name()));
        }
        self.entry.identity = parts.join(", ");
    }

    /// The caller's verified Fly-Src, logged as `org/app/instance`.
    pub fn set_flysrc(&mut self, src: &FlySrc) {
        self.entry.flysrc = format!("{}/{}/{}", src.org, src.app, src.instance);
    }

    /// Record a secret: its stripped JSON and params for the log line, and its name
    /// (`id:…` or `sha256:<prefix>`) for the audit entry.
    pub fn add_secret(
        &mut self,
        stripped_json: &str,
        params: &tokenizer_core::Params,
        name: String,
    ) {
        let mut entry = String::with_capacity(24 + stripped_json.len());
        entry.push_str("{\"secret\":");
        entry.push_str(stripped_json);
        entry.push_str(",\"params\":");
        if params.is_empty() {
            entry.push_str("{}");
        } else {
            entry.push_str(&serde_json::to_string(params).unwrap_or_else(|_| "{}".to_owned()));
        }
        entry.push('}');
        self.secrets.push(entry);
        self.entry.secret_ids.push(name);
    }

    /// How many secrets were built into processors for the request.
    pub fn set_processors(&mut self, n: usize) {
        self.entry.processors = n;
    }

    /// How long the upstream took to answer with response headers.
    pub fn set_upstream(&mut self, elapsed: Duration) {
        self.entry.upstream_ms = Some(millis(elapsed));
    }

    /// The decision when the request succeeds (default `allowed`).
    pub fn set_decision(&mut self, decision: Decision) {
        self.decision = Some(decision);
    }

    /// Counts credentials the reflection guard replaced.
    pub fn reflection_counter(&self) -> Arc<AtomicUsize> {
        self.reflections.clone()
    }

    /// The MCP tools the request calls (each clipped to 100 characters).
    pub fn set_mcp_tools(&mut self, tools: impl IntoIterator<Item = String>) {
        self.entry.mcp_tools = tools
            .into_iter()
            .map(|t| t.chars().take(100).collect())
            .take(32)
            .collect();
    }

    /// What the PII scanner redacted (final once the request body has been sent).
    pub fn set_pii_findings(&mut self, findings: Arc<tokenizer_processor::pii::Findings>) {
        self.pii = Some(findings);
    }

    /// The response for `result` (errors become their HTTP form). The entry is recorded
    /// once the response body has been sent.
    pub fn respond<E: IntoErrorResponse>(
        mut self,
        result: Result<Response<Body>, E>,
    ) -> Response<Body> {
        let response = match result {
            Ok(r) => {
                self.entry.decision = self.decision.unwrap_or(Decision::Allowed);
                r
            }
            Err(e) => {
                self.entry.decision = e.decision();
                self.entry.reason = e.to_string();
                e.into_error_response()
            }
        };
        self.entry.status = response.status().as_u16();
        let (head, body) = response.into_parts();
        let body = CountingBody {
            inner: body,
            bytes: Arc::default(),
            log: Some(self),
        };
        Response::from_parts(head, body.boxed())
    }

    fn finish(mut self, response_bytes: u64) {
        let e = &mut self.entry;
        e.response_bytes = response_bytes;
        e.request_bytes = self.request_bytes.load(Ordering::Relaxed);
        e.reflections = self.reflections.load(Ordering::Relaxed);
        e.pii = self
            .pii
            .as_ref()
            .map(|f| f.kinds().iter().map(|k| k.name().to_owned()).collect())
            .unwrap_or_default();
        if !e.pii.is_empty() && e.decision == Decision::Allowed {
            e.decision = Decision::PiiRedacted;
        }
        e.total_ms = millis(self.started.elapsed());
        let mut secrets =
            String::with_capacity(2 + self.secrets.iter().map(|s| s.len() + 1).sum::<usize>());
        secrets.push('[');
        for (i, s) in self.secrets.iter().enumerate() {
            if i > 0 {
                secrets.push(',');
            }
            secrets.push_str(s);
        }
        secrets.push(']');
        e.secrets = secrets;
        if let Some(on_end) = self.on_end.take() {
            on_end.end();
        }
        self.telemetry.record(self.entry);
    }
}

pin_project! {
    /// Counts a body's data bytes; for a response, records the audit entry at the end
    /// (or when dropped: the client went away).
    struct CountingBody {
        #[pin]
        inner: Body,
        bytes: Arc<AtomicU64>,
        log: Option<RequestLog>,
    }

    impl PinnedDrop for CountingBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(log) = this.log.take() {
                log.finish(this.bytes.load(Ordering::Relaxed));
            }
        }
    }
}

impl http_body::Body for CountingBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    this.bytes.fetch_add(d.len() as u64, Ordering::Relaxed);
                }
            }
            Some(Err(_)) | None => {
                if let Some(log) = this.log.take() {
                    log.finish(this.bytes.load(Ordering::Relaxed));
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
/// Milliseconds to the microsecond, without float noise in the log (`0.031`, not
/// `0.031226000000000004`).
fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// `ip:port` as `SocketAddr`'s `Display` writes it. An IPv4 address is written digit by
/// digit: `Display` goes through the formatting machinery (padding support, a stack
/// buffer per part) and was 1.6k instructions of every request's audit line (callgrind,
/// `bench/ab --instructions`); this is a tenth of that.
fn socket_addr_text(addr: SocketAddr) -> String {
    let SocketAddr::V4(v4) = addr else {
        return addr.to_string();
    };
    let mut out = String::with_capacity(21);
    let mut digits = itoa::Buffer::new();
    for (i, octet) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(digits.format(octet));
    }
    out.push(':');
    out.push_str(digits.format(v4.port()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses_are_written_as_display_writes_them() {
        for addr in [
            "127.0.0.1:8080",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.20.30.40:443",
            "[::1]:80",
            "[2001:db8::5]:65535",
        ] {
            let a: SocketAddr = addr.parse().unwrap();
            assert_eq!(socket_addr_text(a), a.to_string());
        }
    }
}
