//! The canonical request of AWS Signature Version 4, built the way aws-sdk-go-v2's
//! `SignHTTP` builds it (which is what the Go tokenizer signs), with one correction: the
//! query is sorted by its *encoded* names and values, as AWS sorts it.
//!
//! Everything here works on bytes: header values may carry obs-text, and Go's strings are
//! bytes too, so the hash covers exactly what goes on the wire.

use http::HeaderMap;
use http::header::{self, HeaderName};

/// Headers Go's signer never signs (`v4Internal.IgnoredHeaders`). `host` and
/// `content-length` are not taken from the map either: they get their own rules.
const UNSIGNED: [&str; 4] = ["authorization", "user-agent", "x-amzn-trace-id", "expect"];

/// The header half of a canonical request.
#[derive(Debug, PartialEq, Eq)]
pub struct CanonicalHeaders {
    /// The `SignedHeaders` list: lowercase names joined with `;`.
    pub signed: String,
    /// One `name:value\n` line per signed header, in the same order.
    pub block: Vec<u8>,
}

/// What the signature covers, each part already in canonical form.
pub struct CanonicalRequest<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    pub query: &'a str,
    pub headers: &'a CanonicalHeaders,
    pub payload_hash: &'a str,
}

// === impl CanonicalRequest ===

impl CanonicalRequest<'_> {
    /// `METHOD\nURI\nQUERY\nHEADERS\nSIGNED\nPAYLOAD`, where HEADERS ends in its own `\n`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.headers.block.len());
        for part in [self.method, self.uri, self.query] {
            out.extend_from_slice(part.as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(&self.headers.block);
        out.push(b'\n');
        out.extend_from_slice(self.headers.signed.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(self.payload_hash.as_bytes());
        out
    }
}

/// Host (given, as the request will carry it), `content-length` when the request declares
/// more than zero bytes, and every other header but [`UNSIGNED`]. Names sorted; values
/// trimmed, inner runs of spaces collapsed, repeated headers joined with `,` in order.
pub fn canonical_headers(headers: &HeaderMap, host: &str) -> CanonicalHeaders {
    let mut lines: Vec<(&str, Vec<u8>)> = vec![("host", trim_all(host.as_bytes()))];
    if let Some(length) = content_length(headers).filter(|n| *n > 0) {
        lines.push(("content-length", length.to_string().into_bytes()));
    }
    for name in headers.keys() {
        let key = name.as_str();
        if is_special(name) || UNSIGNED.contains(&key) {
            continue;
        }
        let mut value = Vec::new();
        for (i, v) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                value.push(b',');
            }
            value.extend_from_slice(&trim_all(v.as_bytes()));
        }
        lines.push((key, value));
    }
    lines.sort_by(|a, b| a.0.cmp(b.0));

    let signed = lines.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(";");
    let mut block = Vec::new();
    for (name, value) in &lines {
        block.extend_from_slice(name.as_bytes());
        block.push(b':');
        block.extend_from_slice(value);
        block.push(b'\n');
    }
    CanonicalHeaders { signed, block }
}

pub use tokenizer_http::headers::content_length;

fn is_special(name: &HeaderName) -> bool {
    name == header::HOST || name == header::CONTENT_LENGTH
}

/// Go's `StripExcessSpaces` then `TrimSpace`: runs of spaces become one space, and
/// leading and trailing whitespace goes.
fn trim_all(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for &b in value {
        if b == b' ' && out.last() == Some(&b' ') {
            continue;
        }
        out.push(b);
    }
    let start = out
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(out.len());
    let end = out
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    out[start..end].to_vec()
}

/// Escape every byte but the RFC 3986 unreserved ones and `/` (Go's
/// `httpbinding.EscapePath(path, false)`). Applied to the already-escaped request path,
/// this is the "double encoding" every service but S3 expects.
pub fn escape_path(path: &[u8]) -> String {
    tokenizer_core::percent::encode_path(path)
}

/// Parse a raw query the way Go's `url.ParseQuery` does (pairs split on `&`; a pair with a
/// `;` or a bad `%` escape is dropped; `+` is a space), then re-encode names and values
/// (unreserved bytes kept, everything else `%XX`, so a space is `%20`) and sort the pairs
/// by encoded name, then encoded value. The result is both the canonical query and the
/// query the request is sent with.
pub fn canonical_query(raw: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.contains(';'))
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((encode(&unescape(key)?), encode(&unescape(value)?)))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn unescape(text: &str) -> Option<Vec<u8>> {
    tokenizer_core::percent::query_unescape(text)
}

/// SigV4's `UriEncode`: unreserved bytes as they are, everything else `%XX`.
fn encode(bytes: &[u8]) -> String {
    tokenizer_core::percent::encode(bytes)
}
