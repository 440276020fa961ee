//! PII scanning of request bodies: emails, payment card numbers, US SSNs, phone numbers
//! and API-key shapes, either redacted (`[REDACTED]`) or refused (403).
//!
//! [`inspect`] is the one entry point. It picks a path from the policy, the content type
//! and the size:
//! - `off`, or a content type that is not text (images, octet-stream, multipart):
//!   the body passes unchanged;
//! - `block`: the body is buffered up to a bound and scanned; anything found is
//!   [`PiiError::Blocked`], and a clean body goes on byte for byte;
//! - `redact`, JSON or form within the bound: decoded, redacted, re-encoded, with the
//!   exact new length;
//! - `redact`, other text, or JSON/form over the bound or not parseable as JSON:
//!   streamed through [`RedactBody`], whose memory is bounded whatever the body size.
//!
//! What each detector matches, and deliberately does not, is documented on the
//! patterns in `patterns.rs`. Nothing here logs or returns matched text: findings are
//! counts per kind.

mod detect;
mod findings;
mod form;
mod json;
mod kind;
mod patterns;
mod policy;
mod redact_body;

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use http_body_util::BodyExt;

use tokenizer_http::body::{Body, Budget, Buffered, Read, read_bounded};

pub use detect::{MAX_MATCH_LEN, Match, REDACTED, find};
pub use findings::Findings;
pub use kind::{KindSet, ParseKindError, PiiKind};
pub use policy::{ParseActionError, PiiAction, PiiPolicy, parse_action};
pub use redact_body::{MAX_CARRY, RedactBody, redact_body};

/// A body after inspection, ready to forward.
pub struct Inspected {
    /// The body to send upstream: unchanged, re-encoded, or redacting as it streams.
    pub body: Body,
    /// The exact length of `body` when known; `None` means send it chunked (remove
    /// `Content-Length`).
    pub content_length: Option<u64>,
    /// What was redacted. For a streamed body the counts are final once it has ended.
    pub findings: Arc<Findings>,
}

/// Why a body could not be forwarded. Messages never include matched text.
#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    /// The policy is `block` and the body contains these kinds.
    #[error("request body contains PII ({0})")]
    Blocked(KindSet),
    /// The policy is `block` and the body is larger than the scanning bound.
    #[error("request body too large to scan for PII")]
    TooLarge,
    /// The body could not be buffered (over the budget, stalled or broken).
    #[error("{0}")]
    Body(tokenizer_http::body::ReadError),
}

/// How a scanned body is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Form,
    Text,
}

/// Bodies larger than this are scanned on the blocking pool: a scan costs CPU in
/// proportion to the body, and must not stall the other requests on the runtime.
const SCAN_OFF_RUNTIME: usize = 64 * 1024;

/// Inspect `body` under `policy`. `max_buffered` bounds what is read into memory
/// (`block`, and JSON/form redaction); `budget` is the process's buffering budget.
pub async fn inspect(
    body: Body,
    content_type: Option<&HeaderValue>,
    declared_len: Option<u64>,
    policy: &PiiPolicy,
    max_buffered: usize,
    budget: &Budget,
) -> Result<Inspected, PiiError> {
    let format = Format::of(content_type);
    let (Some(format), true) = (format, policy.is_active()) else {
        return Ok(Inspected {
            body,
            content_length: declared_len,
            findings: Arc::default(),
        });
    };
    let limits = (max_buffered, budget);
    match policy.action {
        PiiAction::Block => block(body, format, declared_len, policy.kinds, limits).await,
        PiiAction::Redact | PiiAction::Off => {
            redact(body, format, declared_len, policy.kinds, limits).await
        }
    }
}

/// Buffer, scan, and refuse the body if anything is found.
async fn block(
    body: Body,
    format: Format,
    declared_len: Option<u64>,
    kinds: KindSet,
    (max_buffered, budget): (usize, &Budget),
) -> Result<Inspected, PiiError> {
    if declared_len.is_some_and(|n| n > max_buffered as u64) {
        return Err(PiiError::TooLarge);
    }
    let read = read_bounded(body, max_buffered, None, budget, true, |_| {}).await;
    let buffered = match read.map_err(PiiError::Body)? {
        Read::Complete(buffered) => buffered,
        Read::Partial { .. } => return Err(PiiError::TooLarge),
    };
    let (buffered, _, findings) = scan(buffered, format, kinds).await;
    if !findings.is_empty() {
        return Err(PiiError::Blocked(findings.kinds()));
    }
    Ok(Inspected {
        content_length: Some(buffered.bytes.len() as u64),
        body: buffered.into_body(),
        findings: Arc::new(findings),
    })
}

/// Scan (and redact) a buffered body, off the runtime when it is large: the body, the
/// redacted bytes if anything was found, and the findings.
async fn scan(
    buffered: Buffered,
    format: Format,
    kinds: KindSet,
) -> (Buffered, Option<Vec<u8>>, Findings) {
    let run = move |buffered: Buffered| {
        let findings = Findings::default();
        let out = redact_buffered(&buffered.bytes, format, kinds, &findings);
        (buffered, out, findings)
    };
    if buffered.bytes.len() <= SCAN_OFF_RUNTIME {
        return run(buffered);
    }
    let bytes = buffered.bytes.clone();
    match tokio::task::spawn_blocking(move || run(buffered)).await {
        Ok(done) => done,
        // The scan panicked: treat the body as holding everything it could.
        Err(_) => {
            let findings = Findings::default();
            findings.add_all(kinds);
            (Buffered::unbudgeted(bytes), None, findings)
        }
    }
}

/// Redact in memory when the body is JSON or a form within the bound, else stream.
async fn redact(
    body: Body,
    format: Format,
    declared_len: Option<u64>,
    kinds: KindSet,
    (max_buffered, budget): (usize, &Budget),
) -> Result<Inspected, PiiError> {
    let findings = Arc::new(Findings::default());
    if declared_len.is_some_and(|n| n < kinds.min_len() as u64) {
        // Too short to hold any match: nothing can change it.
        return Ok(Inspected {
            body,
            content_length: declared_len,
            findings,
        });
    }
    let fits = declared_len.is_none_or(|n| n <= max_buffered as u64);
    if format == Format::Text || !fits {
        return Ok(streamed(body, Bytes::new(), kinds, findings));
    }
    let read = read_bounded(body, max_buffered, None, budget, true, |_| {}).await;
    let buffered = match read.map_err(PiiError::Body)? {
        Read::Complete(buffered) => buffered,
        Read::Partial { head, rest } => return Ok(streamed(rest, head.bytes, kinds, findings)),
    };
    let (buffered, out, found) = scan(buffered, format, kinds).await;
    findings.merge(&found);
    let buffered = match out {
        Some(out) => buffered.replace(Bytes::from(out)),
        None => buffered,
    };
    Ok(Inspected {
        content_length: Some(buffered.bytes.len() as u64),
        body: buffered.into_body(),
        findings,
    })
}

/// The redacted bytes of a buffered body (`None` if nothing was found). JSON that does
/// not parse is scanned as text.
fn redact_buffered(
    bytes: &[u8],
    format: Format,
    kinds: KindSet,
    findings: &Findings,
) -> Option<Vec<u8>> {
    match format {
        Format::Json => json::redact(bytes, kinds, findings)
            .unwrap_or_else(|json::NotJson| detect::redact(bytes, kinds, findings)),
        Format::Form => form::redact(bytes, kinds, findings),
        Format::Text => detect::redact(bytes, kinds, findings),
    }
}

fn streamed(body: Body, head: Bytes, kinds: KindSet, findings: Arc<Findings>) -> Inspected {
    Inspected {
        body: redact_body(body, kinds, findings.clone())
            .with_head(head)
            .boxed(),
        content_length: None,
        findings,
    }
}

// === impl Format ===

impl Format {
    /// The format to scan a body as, or `None` for content that is not text. A body
    /// without a content type, or with one that is not ASCII, is scanned as text.
    fn of(content_type: Option<&HeaderValue>) -> Option<Self> {
        let Some(Ok(value)) = content_type.map(HeaderValue::to_str) else {
            return Some(Format::Text);
        };
        let mime = value.split(';').next().unwrap_or("").trim();
        let mime = mime.to_ascii_lowercase();
        match mime.as_str() {
            "application/json" => Some(Format::Json),
            m if m.ends_with("+json") => Some(Format::Json),
            "application/x-www-form-urlencoded" => Some(Format::Form),
            "" | "application/xml" | "application/x-ndjson" | "application/ndjson" => {
                Some(Format::Text)
            }
            m if m.starts_with("text/") || m.ends_with("+xml") => Some(Format::Text),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Inspected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspected")
            .field("content_length", &self.content_length)
            .field("findings", &self.findings)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
