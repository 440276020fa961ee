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
    /// Every decision, in the order of [`Decision::index`].
    pub const ALL: [Decision; 7] = [
        Self::Allowed,
        Self::Denied,
        Self::RateLimited,
        Self::PiiRedacted,
        Self::PiiBlocked,
        Self::Passthrough,
        Self::Error,
    ];

    /// The position of this decision in [`Decision::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The kebab-case name used in audit lines, the `decision` metric label and the
    /// `/v1/audit` filter.
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
    /// How the sidecar got the connection, when it matters (`transparent`).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub mode: &'static str,
    /// The client's socket address, `ip:port`.
    pub source: String,
    /// The verified Fly-Src, as `org/app/instance`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub flysrc: String,
    /// Other verified identities of the caller: `oidc ISSUER SUBJECT` for each verified
    /// workload token, `mtls NAME` for a verified client certificate (never a token).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub identity: String,
    /// The request method; for a stream the proxy does not read as HTTP, its kind
    /// (`TLS`, `HTTP`, `TCP`).
    pub method: String,
    /// The request's authority (from the URI, else `Host`); the SNI or CONNECT target for
    /// a sidecar request; `host:port` for a stream.
    pub host: String,
    /// The request path without its query (empty for a stream).
    pub path: String,
    /// The names of the query parameters, comma-separated; their values are never kept.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub query_keys: String,
    /// The `host:port` of the CONNECT request, or of the tunnel the request came through.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub connect_host: String,
    /// The HTTP status sent to the client.
    pub status: u16,
    /// What the proxy did with the request.
    pub decision: Decision,
    /// Why the request was refused or failed (the error's message); empty otherwise.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// `id:<id>` or `sha256:<digest prefix>` per secret used.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secret_ids: Vec<String>,
    /// The secrets, hazmat-stripped (for the log line only).
    #[serde(skip)]
    pub secrets: String,
    /// How many of the request's secrets were built into processors and applied.
    pub processors: usize,
    /// Request body bytes read from the client.
    pub request_bytes: u64,
    /// Response body bytes sent to the client (up to where it stopped, if cut short).
    pub response_bytes: u64,
    /// Milliseconds from sending the request upstream to its response headers; `None`
    /// when nothing was sent upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_ms: Option<f64>,
    /// Milliseconds from the request's arrival to the end of its response body (or to
    /// the client going away).
    pub total_ms: f64,
    /// Injected credentials found in the response and replaced.
    #[serde(skip_serializing_if = "is_zero")]
    pub reflections: usize,
    /// PII kinds found in the request body.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pii: Vec<String>,
    /// MCP tools the request called (`allowed_mcp_tools`), the refused ones included;
    /// names clipped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mcp_tools: Vec<String>,
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
            &mut self.identity,
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

    /// Write the audit line (one JSON object, or one text line, per request) through the
    /// process's log writer, at `info` (`warn` when refused or failed), as `RUST_LOG`
    /// allows. The secrets go in as a nested JSON array.
    pub fn log(&self) {
        let warn = !matches!(
            self.decision,
            Decision::Allowed | Decision::Passthrough | Decision::PiiRedacted
        );
        let enabled = if warn {
            tracing::enabled!(target: "tokenizer::audit", tracing::Level::WARN)
        } else {
            tracing::enabled!(target: "tokenizer::audit", tracing::Level::INFO)
        };
        let Some(format) = crate::logging::format() else {
            return;
        };
        if !enabled {
            return;
        }
        let level = if warn { "WARN" } else { "INFO" };
        let line = match format {
            crate::logging::LogFormat::Json => self.json_line(level),
            crate::logging::LogFormat::Text => self.text_line(level),
        };
        crate::logging::write_line(&line);
    }

    /// The secrets of the log line: the JSON array, or a note when it is too long for one
    /// line (a client can make the stripped secret as large as a header).
    fn logged_secrets(&self) -> &str {
        match self.secrets.as_str() {
            "" => "[]",
            s if s.len() <= MAX_LOGGED_SECRETS => s,
            _ => "\"clipped\"",
        }
    }

    /// The JSON line: `level` and `target` first (as tracing's JSON lines), then the
    /// entry's fields, then the secrets array. The array is spliced in as it is: it is
    /// built only from our own serializer's output (stripped secrets and params), so it
    /// needs no second parse.
    fn json_line(&self, level: &'static str) -> Vec<u8> {
        let secrets = self.logged_secrets();
        let mut out = Vec::with_capacity(512 + secrets.len());
        out.extend_from_slice(b"{\"level\":\"");
        out.extend_from_slice(level.as_bytes());
        out.extend_from_slice(b"\",\"target\":\"tokenizer::audit\"");
        let fields = out.len();
        // Serializing plain fields into a Vec cannot fail; the entry is a non-empty
        // object, `{…}`: its braces become the separator and the secrets' closing.
        let _ = serde_json::to_writer(&mut out, self);
        if out.get(fields) == Some(&b'{') && out.last() == Some(&b'}') {
            out[fields] = b',';
            out.pop();
        } else {
            out.truncate(fields);
        }
        out.extend_from_slice(b",\"secrets\":");
        out.extend_from_slice(secrets.as_bytes());
        out.extend_from_slice(b"}\n");
        out
    }

    fn text_line(&self, level: &'static str) -> Vec<u8> {
        use std::fmt::Write;
        let mut out = format!("{} {level:>5} tokenizer::audit:", self.timestamp);
        let mut field = |k: &str, v: &dyn std::fmt::Display| {
            let _ = write!(out, " {k}={v}");
        };
        field("role", &self.role);
        if !self.mode.is_empty() {
            field("mode", &self.mode);
        }
        field("source", &self.source);
        if !self.flysrc.is_empty() {
            field("flysrc", &self.flysrc);
        }
        if !self.identity.is_empty() {
            field("identity", &self.identity);
        }
        field("method", &self.method);
        field("host", &self.host);
        field("path", &self.path);
        if !self.query_keys.is_empty() {
            field("query_keys", &self.query_keys);
        }
        if !self.connect_host.is_empty() {
            field("connect_host", &self.connect_host);
        }
        field("status", &self.status);
        field("decision", &self.decision.as_str());
        if !self.reason.is_empty() {
            field("reason", &format!("{:?}", self.reason));
        }
        field("secret_ids", &self.secret_ids.join(","));
        field("secrets", &self.logged_secrets());
        field("processors", &self.processors);
        field("request_bytes", &self.request_bytes);
        field("response_bytes", &self.response_bytes);
        if let Some(ms) = self.upstream_ms {
            field("upstream_ms", &ms);
        }
        field("total_ms", &self.total_ms);
        if self.reflections > 0 {
            field("reflections", &self.reflections);
        }
        if !self.pii.is_empty() {
            field("pii", &self.pii.join(","));
        }
        if !self.mcp_tools.is_empty() {
            field("mcp_tools", &format!("{:?}", self.mcp_tools.join(",")));
        }
        out.push('\n');
        out.into_bytes()
    }
}

/// The longest secrets array a log line carries.
const MAX_LOGGED_SECRETS: usize = 8 * 1024;

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
            mode: "",
            source: long.clone(),
            flysrc: long.clone(),
            identity: long.clone(),
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
            mcp_tools: vec![],
        };
        e.clip();
        let bytes = serde_json::to_string(&e).unwrap().len();
        assert!(bytes <= MAX_ENTRY_BYTES, "{bytes}");
        assert!(e.path.ends_with('…'));
        assert_eq!(e.secret_ids.last().unwrap(), "+92 more");
    }

    #[test]
    fn every_decision_sits_at_its_index() {
        for (i, d) in Decision::ALL.iter().enumerate() {
            assert_eq!(d.index(), i, "{}", d.as_str());
        }
    }

    #[test]
    fn the_json_line_is_one_object_with_level_target_fields_and_secrets() {
        let mut e = entry_for_test();
        e.secrets = r#"[{"secret":{"inject_processor":{}},"params":{"dst":"X"}}]"#.to_owned();
        let line = e.json_line("INFO");
        assert_eq!(line.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "tokenizer::audit");
        assert_eq!(v["path"], "/v1/x\"y");
        assert_eq!(v["status"], 200);
        assert_eq!(v["secrets"][0]["params"]["dst"], "X");
        e.secrets = String::new();
        let v: serde_json::Value = serde_json::from_slice(&e.json_line("WARN")).unwrap();
        assert_eq!(v["secrets"], serde_json::json!([]));
    }

    fn entry_for_test() -> AuditEntry {
        AuditEntry {
            timestamp: "2026-12-07T00:00:00Z".to_owned(),
            unix_ms: 0,
            role: "serve",
            mode: "",
            source: "127.0.0.1:1".to_owned(),
            flysrc: String::new(),
            identity: String::new(),
            method: "GET".to_owned(),
            host: "api.test".to_owned(),
            path: "/v1/x\"y".to_owned(),
            query_keys: String::new(),
            connect_host: String::new(),
            status: 200,
            decision: Decision::Allowed,
            reason: String::new(),
            secret_ids: vec![],
            secrets: String::new(),
            processors: 1,
            request_bytes: 0,
            response_bytes: 0,
            upstream_ms: Some(1.5),
            total_ms: 2.0,
            reflections: 0,
            pii: vec![],
            mcp_tools: vec![],
        }
    }
}
