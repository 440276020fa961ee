//! PII redaction inside a buffered `application/x-www-form-urlencoded` body.
//!
//! Scanning the raw bytes would miss most PII: encoders write `@` as `%40` and spaces
//! as `+`. Each name and value is percent-decoded and scanned; one that contains PII is
//! redacted and re-encoded, and every other byte of the body is kept as it was.

use super::detect;
use super::findings::Findings;
use super::kind::KindSet;

/// The redacted body, or `None` if nothing was found.
pub(super) fn redact(body: &[u8], kinds: KindSet, findings: &Findings) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut start = 0;
    // Names and values: the pieces between `&` and `=` (a value may contain `=`).
    for piece in body.split(|b| *b == b'&') {
        let name_len = piece.iter().position(|b| *b == b'=').unwrap_or(piece.len());
        let value_start = (name_len + 1).min(piece.len());
        for range in [0..name_len, value_start..piece.len()] {
            let raw = &piece[range.clone()];
            let Some(redacted) = detect::redact(&decode(raw), kinds, findings) else {
                continue;
            };
            let at = start + range.start;
            let out = out.get_or_insert_with(|| Vec::with_capacity(body.len()));
            out.extend_from_slice(&body[copied..at]);
            out.extend(form_urlencoded::byte_serialize(&redacted).flat_map(str::bytes));
            copied = at + raw.len();
        }
        start += piece.len() + 1;
    }
    if let Some(out) = out.as_mut() {
        out.extend_from_slice(&body[copied..]);
    }
    out
}

fn decode(raw: &[u8]) -> Vec<u8> {
    tokenizer_core::percent::form_decode(raw)
}
