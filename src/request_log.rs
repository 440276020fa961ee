//! One structured log line per request.
//!
//! Fields: source, method, host, path (never the query string, only its keys), status,
//! duration, the secrets used (hazmat-stripped JSON) and their params, the processor
//! count, the CONNECT authority for tunnelled requests, and the error when there was one.

use std::net::SocketAddr;
use std::time::Instant;

use http::Response;
use http::request::Parts;

use crate::body::Body;
use crate::error::IntoErrorResponse;

pub struct RequestLog {
    role: &'static str,
    started: Instant,
    source: SocketAddr,
    method: String,
    host: String,
    path: String,
    query_keys: String,
    connect_host: Option<String>,
    secrets: Vec<String>,
    processors: usize,
    error: Option<String>,
}

impl RequestLog {
    /// Start timing a request; `role` is `serve` or `sideproxy`.
    pub fn start(role: &'static str, source: SocketAddr, parts: &Parts) -> Self {
        Self::new(role, source, &parts.method, &parts.uri, &parts.headers)
    }

    /// Like [`RequestLog::start`], for a request not yet split into parts.
    pub fn for_request<B>(role: &'static str, source: SocketAddr, req: &http::Request<B>) -> Self {
        Self::new(role, source, req.method(), req.uri(), req.headers())
    }

    fn new(
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
        Self {
            role,
            started: Instant::now(),
            source,
            method: method.to_string(),
            host,
            path: uri.path().to_owned(),
            query_keys,
            connect_host: None,
            secrets: Vec::new(),
            processors: 0,
            error: None,
        }
    }

    pub fn set_connect_host(&mut self, host: &str) {
        self.connect_host = Some(host.to_owned());
    }

    /// Record a secret by its stripped JSON and params (params are not credentials).
    pub fn add_secret(&mut self, stripped_json: String, params: &crate::secret::Params) {
        let params = serde_json::to_string(params).unwrap_or_default();
        self.secrets.push(format!(
            "{{\"secret\":{stripped_json},\"params\":{params}}}"
        ));
    }

    pub fn set_processors(&mut self, n: usize) {
        self.processors = n;
    }

    pub fn set_error(&mut self, err: &impl std::fmt::Display) {
        self.error = Some(err.to_string());
    }

    /// The SNI or CONNECT target a sidecar request was routed by.
    pub fn set_host(&mut self, host: &str) {
        self.host = host.to_owned();
    }

    /// The response for `result` (errors become their HTTP form), logged once.
    pub fn respond<E: IntoErrorResponse>(
        mut self,
        result: Result<Response<Body>, E>,
    ) -> Response<Body> {
        let response = result.unwrap_or_else(|e| {
            self.set_error(&e);
            e.into_error_response()
        });
        self.emit(response.status().as_u16());
        response
    }

    pub fn emit(self, status: u16) {
        let dur_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let secrets = format!("[{}]", self.secrets.join(","));
        let connect_host = self.connect_host.unwrap_or_default();
        // Failures at warn with the error; the same fields either way.
        macro_rules! event {
            ($level:ident $(, $($extra:tt)+)?) => {
                tracing::$level!(
                    target: "tokenizer::request",
                    role = self.role,
                    source = %self.source,
                    method = %self.method,
                    host = %self.host,
                    path = %self.path,
                    query_keys = %self.query_keys,
                    connect_host = %connect_host,
                    secrets = %secrets,
                    processors = self.processors,
                    status,
                    dur_ms,
                    $($($extra)+)?
                )
            };
        }
        match self.error {
            Some(error) => event!(warn, error = %error),
            None => event!(info),
        }
    }
}
