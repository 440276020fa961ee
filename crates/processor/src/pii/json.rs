//! PII redaction inside a buffered JSON document.
//!
//! The document is validated with `serde_json` first, then rewritten token by token:
//! only string literals (values and object keys) that contain PII, and integers that are
//! payment card numbers, are replaced. Every other byte is kept as it was, so number
//! precision, key order, duplicate keys and whitespace survive.
//!
//! Strings are decoded before scanning (`"a\u0040b.com"` is an email) and re-encoded
//! after: the match becomes `[REDACTED]`, so a string that is all PII becomes
//! `"[REDACTED]"`. A card number written as a JSON integer becomes the string
//! `"[REDACTED]"`, so the document stays valid. Redacted keys may collide; both are kept.

use serde::de::IgnoredAny;

use super::detect::{self, REDACTED};
use super::findings::Findings;
use super::kind::{KindSet, PiiKind};
use super::patterns::is_card_number;

/// The body is not a single valid JSON document.
#[derive(Debug)]
pub(super) struct NotJson;

/// The redacted document, `None` if nothing was found, or [`NotJson`].
pub(super) fn redact(
    doc: &[u8],
    kinds: KindSet,
    findings: &Findings,
) -> Result<Option<Vec<u8>>, NotJson> {
    // Also bounds nesting (serde_json's recursion limit), so the lexer below only ever
    // sees valid JSON.
    serde_json::from_slice::<IgnoredAny>(doc).map_err(|_| NotJson)?;

    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < doc.len() {
        let (end, replacement) = match doc[i] {
            b'"' => {
                let end = string_end(doc, i);
                (end, redact_string(&doc[i..end], kinds, findings))
            }
            b'-' | b'0'..=b'9' => {
                let end = number_end(doc, i);
                (end, redact_number(&doc[i..end], kinds, findings))
            }
            _ => (i + 1, None),
        };
        if let Some(replacement) = replacement {
            let out = out.get_or_insert_with(|| Vec::with_capacity(doc.len()));
            out.extend_from_slice(&doc[copied..i]);
            out.extend_from_slice(&replacement);
            copied = end;
        }
        i = end;
    }
    if let Some(out) = out.as_mut() {
        out.extend_from_slice(&doc[copied..]);
    }
    Ok(out)
}

/// End (exclusive) of the string literal opening at `start`, in valid JSON.
fn string_end(doc: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while let Some(off) = memchr::memchr2(b'"', b'\\', &doc[i..]) {
        i += off;
        if doc[i] == b'"' {
            return i + 1;
        }
        i += 2; // a backslash and the byte it escapes
    }
    doc.len()
}

/// End (exclusive) of the number starting at `start`.
fn number_end(doc: &[u8], start: usize) -> usize {
    doc[start..]
        .iter()
        .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
        .map_or(doc.len(), |n| start + n)
}

/// The re-encoded literal with its PII redacted, or `None` if it has none.
fn redact_string(literal: &[u8], kinds: KindSet, findings: &Findings) -> Option<Vec<u8>> {
    // Valid JSON (checked by the caller), so this decodes; a failure just skips it.
    let decoded: String = serde_json::from_slice(literal).ok()?;
    let redacted = detect::redact(decoded.as_bytes(), kinds, findings)?;
    // Matches are ASCII and start and end on ASCII bytes, so UTF-8 is preserved.
    let redacted = String::from_utf8(redacted).ok()?;
    serde_json::to_vec(&redacted).ok()
}

/// `"[REDACTED]"` for an integer that is a payment card number.
fn redact_number(literal: &[u8], kinds: KindSet, findings: &Findings) -> Option<Vec<u8>> {
    if !kinds.contains(PiiKind::CreditCard) || !is_card_number(literal) {
        return None;
    }
    findings.record(PiiKind::CreditCard);
    Some(format!("\"{REDACTED}\"").into_bytes())
}
