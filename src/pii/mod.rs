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

use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use http_body_util::BodyExt;

use crate::body::{self, Body};

pub use detect::{MAX_MATCH_LEN, Match, REDACTED, find};
pub use findings::Findings;
pub use kind::{KindSet, ParseKindError, PiiKind};
pub use policy::{ParseActionError, PiiAction, PiiPolicy, parse_action};
pub use redact_body::RedactBody;

/// A body after inspection, ready to forward.
pub struct Inspected {
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
    /// Reading the body failed while buffering it.
    #[error("error reading request body")]
    Read,
}

/// How a scanned body is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Form,
    Text,
}

/// A body read up to a bound.
enum Buffered {
    /// The whole body (trailers, if any, are dropped).
    Complete(Bytes),
    /// The bound was crossed: what was read so far, and the rest.
    Partial { head: Bytes, rest: Body },
}

/// Apply `policy` to a request body. `declared_len` is the request's `Content-Length`;
/// `max_buffered` bounds what is read into memory (`block`, and JSON/form redaction).
pub async fn inspect(
    body: Body,
    content_type: Option<&HeaderValue>,
    declared_len: Option<u64>,
    policy: &PiiPolicy,
    max_buffered: usize,
) -> Result<Inspected, PiiError> {
    let format = Format::of(content_type);
    let (Some(format), true) = (format, policy.is_active()) else {
        return Ok(Inspected {
            body,
            content_length: declared_len,
            findings: Arc::default(),
        });
    };
    match policy.action {
        PiiAction::Block => block(body, format, declared_len, policy.kinds, max_buffered).await,
        PiiAction::Redact | PiiAction::Off => {
            redact(body, format, declared_len, policy.kinds, max_buffered).await
        }
    }
}

/// Buffer, scan, and refuse the body if anything is found.
async fn block(
    body: Body,
    format: Format,
    declared_len: Option<u64>,
    kinds: KindSet,
    max_buffered: usize,
) -> Result<Inspected, PiiError> {
    if declared_len.is_some_and(|n| n > max_buffered as u64) {
        return Err(PiiError::TooLarge);
    }
    let Buffered::Complete(bytes) = read_bounded(body, max_buffered).await? else {
        return Err(PiiError::TooLarge);
    };
    let findings = Findings::default();
    redact_buffered(&bytes, format, kinds, &findings);
    if !findings.is_empty() {
        return Err(PiiError::Blocked(findings.kinds()));
    }
    Ok(Inspected {
        content_length: Some(bytes.len() as u64),
        body: body::full(bytes),
        findings: Arc::new(findings),
    })
}

/// Redact in memory when the body is JSON or a form within the bound, else stream.
async fn redact(
    body: Body,
    format: Format,
    declared_len: Option<u64>,
    kinds: KindSet,
    max_buffered: usize,
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
    let bytes = match read_bounded(body, max_buffered).await? {
        Buffered::Complete(bytes) => bytes,
        Buffered::Partial { head, rest } => return Ok(streamed(rest, head, kinds, findings)),
    };
    let out = redact_buffered(&bytes, format, kinds, &findings).map_or(bytes, Bytes::from);
    Ok(Inspected {
        content_length: Some(out.len() as u64),
        body: body::full(out),
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
        body: RedactBody::new(body, kinds, findings.clone())
            .with_head(head)
            .boxed(),
        content_length: None,
        findings,
    }
}

/// Read `body` until it ends or passes `limit` bytes.
async fn read_bounded(mut body: Body, limit: usize) -> Result<Buffered, PiiError> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| PiiError::Read)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        if buf.len() > limit {
            return Ok(Buffered::Partial {
                head: buf.freeze(),
                rest: body,
            });
        }
    }
    Ok(Buffered::Complete(buf.freeze()))
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
