//! One audit entry: what happened to one request.

use serde::Serialize;

/// The outcome of a request, for audit filters and dashboard colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Forwarded with its credentials.
    Allowed,
    /// Refused; the entry's `reason` says why.
    Denied,
    /// Refused by a secret's rate limit.
    RateLimited,
    /// Forwarded after PII in the body was replaced.
    PiiRedacted,
    /// Refused because the body holds PII.
    PiiBlocked,
    /// Tunnelled without interception (sidecar CONNECT to a passthrough host).
    Passthrough,
    /// Allowed, but the upstream or the exchange failed.
    Error,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::RateLimited => "rate-limited",
            Self::PiiRedacted => "pii-redacted",
            Self::PiiBlocked => "pii-blocked",
            Self::Passthrough => "passthrough",
            Self::Error => "error",
        }
    }
}

/// A finished request. Never holds a credential: secrets appear as their id or the
/// digest of the sealed text, paths without their query values.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    /// RFC 3339, when the request arrived.
    pub timestamp: String,
    /// Unix milliseconds, for filtering.
    #[serde(skip)]
    pub unix_ms: i64,
    /// `serve` or `sideproxy`.
    pub role: &'static str,
    pub source: String,
    /// The verified Fly-Src, as `org/app/instance`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub flysrc: String,
    pub method: String,
    pub host: String,
    pub path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub query_keys: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub connect_host: String,
    pub status: u16,
    pub decision: Decision,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// `id:<id>` or `sha256:<digest prefix>` per secret used.
    pub secret_ids: Vec<String>,
    /// The secrets, hazmat-stripped (for the log line only).
    #[serde(skip)]
    pub secrets: String,
    pub processors: usize,
    pub request_bytes: u64,
    pub response_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_ms: Option<f64>,
    pub total_ms: f64,
    /// Injected credentials found in the response and replaced.
    #[serde(skip_serializing_if = "is_zero")]
    pub reflections: usize,
    /// PII kinds found in the request body.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pii: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl AuditEntry {
    /// The audit line: one JSON object (or text line) per request.
    pub fn log(&self) {
        macro_rules! event {
            ($level:ident) => {
                tracing::$level!(
                    target: "tokenizer::audit",
                    role = self.role,
                    source = %self.source,
                    flysrc = %self.flysrc,
                    method = %self.method,
                    host = %self.host,
                    path = %self.path,
                    query_keys = %self.query_keys,
                    connect_host = %self.connect_host,
                    status = self.status,
                    decision = self.decision.as_str(),
                    reason = %self.reason,
                    secret_ids = %self.secret_ids.join(","),
                    secrets = %self.secrets,
                    processors = self.processors,
                    request_bytes = self.request_bytes,
                    response_bytes = self.response_bytes,
                    upstream_ms = self.upstream_ms.unwrap_or_default(),
                    total_ms = self.total_ms,
                    reflections = self.reflections,
                    pii = %self.pii.join(","),
                )
            };
        }
        match self.decision {
            Decision::Allowed | Decision::Passthrough | Decision::PiiRedacted => event!(info),
            _ => event!(warn),
        }
    }
}
