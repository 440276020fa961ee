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

/// The most a clipped entry holds in its text fields, about: what the ring keeps per
/// request, whatever the client sent (a 6 KB secret id, a 100 KB path).
pub const MAX_ENTRY_BYTES: usize = 6 * 1024;
/// Longest path, host, reason… kept in the ring.
const MAX_FIELD: usize = 512;
/// Secret names kept per entry (and the longest name).
const MAX_SECRET_IDS: usize = 8;
const MAX_SECRET_ID: usize = 80;

/// Cut `s` to at most `max` bytes on a character boundary, marking the cut with `…`.
fn clip(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
}

impl AuditEntry {
    /// Clip every field a client controls, so the entry stays under
    /// [`MAX_ENTRY_BYTES`].
    pub fn clip(&mut self) {
        for field in [
            &mut self.source,
            &mut self.flysrc,
            &mut self.method,
            &mut self.host,
            &mut self.path,
            &mut self.query_keys,
            &mut self.connect_host,
            &mut self.reason,
        ] {
            clip(field, MAX_FIELD);
        }
        let more = self.secret_ids.len().saturating_sub(MAX_SECRET_IDS);
        self.secret_ids.truncate(MAX_SECRET_IDS);
        for id in &mut self.secret_ids {
            clip(id, MAX_SECRET_ID);
        }
        if more > 0 {
            self.secret_ids.push(format!("+{more} more"));
        }
        self.pii.truncate(8);
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_bounds_every_client_field() {
        let long = "é".repeat(10_000);
        let mut e = AuditEntry {
            timestamp: String::new(),
            unix_ms: 0,
            role: "serve",
            source: long.clone(),
            flysrc: long.clone(),
            method: long.clone(),
            host: long.clone(),
            path: long.clone(),
            query_keys: long.clone(),
            connect_host: long.clone(),
            status: 200,
            decision: Decision::Allowed,
            reason: long.clone(),
            secret_ids: vec![long.clone(); 100],
            secrets: String::new(),
            processors: 100,
            request_bytes: 0,
            response_bytes: 0,
            upstream_ms: None,
            total_ms: 0.0,
            reflections: 0,
            pii: vec![],
        };
        e.clip();
        let bytes = serde_json::to_string(&e).unwrap().len();
        assert!(bytes <= MAX_ENTRY_BYTES, "{bytes}");
        assert!(e.path.ends_with('…'));
        assert_eq!(e.secret_ids.last().unwrap(), "+92 more");
    }
}
