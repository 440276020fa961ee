//! Percent-encoding, in the spellings the proxy needs: RFC 3986 "unreserved" encoding
//! (SigV4's `UriEncode`, the reflection guard's encoded forms), Go's strict
//! `url.QueryUnescape`, and lenient form decoding (PII scanning).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, percent_encode};

/// Everything but RFC 3986's unreserved characters (`A–Z a–z 0–9 - . _ ~`).
const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// The same, with `/` kept (paths).
const RESERVED_BUT_SLASH: &AsciiSet = &RESERVED.remove(b'/');

/// Unreserved bytes as they are, everything else `%XX` (upper-case hex).
pub fn encode(bytes: &[u8]) -> String {
    percent_encode(bytes, RESERVED).to_string()
}

/// [`encode`], keeping `/`.
pub fn encode_path(bytes: &[u8]) -> String {
    percent_encode(bytes, RESERVED_BUT_SLASH).to_string()
}

/// The byte a `%XX` escape at `at` in `bytes` stands for; `None` when there are not two
/// hex digits after the `%` (`u8::from_str_radix` would also take a leading `+`).
pub fn escape_at(bytes: &[u8], at: usize) -> Option<u8> {
    let hex = |j: usize| char::from(*bytes.get(j)?).to_digit(16);
    let (hi, lo) = (hex(at + 1)?, hex(at + 2)?);
    // Two hex digits: at most 0xff.
    u8::try_from(hi * 16 + lo).ok()
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte, and a `%` without two hex
/// digits after it makes the whole text invalid (`None`). Hand-written: the
/// `percent-encoding` and `form_urlencoded` decoders keep malformed escapes instead, and
/// Go's refusal decides, for example, whether a Basic password yields a second candidate.
pub fn query_unescape(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                out.push(escape_at(bytes, i)?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// A form name or value: `+` is a space, `%XX` a byte, and a `%` not followed by two
/// hex digits stays as it is.
pub fn form_decode(raw: &[u8]) -> Vec<u8> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_decode(&spaced).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(encode(b"a b/c~d%"), "a%20b%2Fc~d%25");
        assert_eq!(encode_path(b"/a b/c"), "/a%20b/c");
        assert_eq!(encode("é".as_bytes()), "%C3%A9");
    }

    #[test]
    fn go_query_unescape_is_strict() {
        assert_eq!(query_unescape("a+b%20c").unwrap(), b"a b c");
        for bad in ["%", "%4", "%g0", "a%2"] {
            assert_eq!(query_unescape(bad), None, "{bad}");
        }
    }

    #[test]
    fn form_decoding_is_lenient() {
        assert_eq!(form_decode(b"a+b%20c%"), b"a b c%");
        assert_eq!(form_decode(b"%zz%41"), b"%zzA");
    }
}
