//! The spellings a reflected credential may take in a response.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use zeroize::Zeroizing;

use super::MIN_GUARDED_LEN;

/// `value` raw; in standard and URL-safe base64 at each of the three alignments it can
/// start at inside a longer encoded text; hex (both cases); form- and percent-encoded;
/// JSON-escaped (also with `\/`, and with Go's `\u003c` escapes of `<>&`); and
/// HTML-escaped. Forms shorter than [`MIN_GUARDED_LEN`] are dropped.
pub fn forms(value: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut out: Vec<Zeroizing<Vec<u8>>> = vec![Zeroizing::new(value.to_vec())];
    for engine in [&STANDARD, &URL_SAFE] {
        for offset in 0..3 {
            out.extend(aligned_base64(engine, value, offset).map(Zeroizing::new));
        }
    }
    out.push(Zeroizing::new(hex::encode(value).into_bytes()));
    out.push(Zeroizing::new(hex::encode_upper(value).into_bytes()));
    let url: String = form_urlencoded::byte_serialize(value).collect();
    out.push(Zeroizing::new(url.into_bytes()));
    out.push(Zeroizing::new(
        tokenizer_core::percent::encode(value).into_bytes(),
    ));
    if let Ok(text) = std::str::from_utf8(value)
        && let Ok(json) = serde_json::to_string(text)
    {
        let json = Zeroizing::new(json);
        let inner = json.trim_matches('"');
        out.push(Zeroizing::new(inner.replace('/', "\\/").into_bytes()));
        out.push(Zeroizing::new(inner.as_bytes().to_vec()));
        out.push(Zeroizing::new(escape(inner.as_bytes(), |b| match b {
            b'<' | b'>' | b'&' => Some(format!("\\u{b:04x}")),
            _ => None,
        })));
    }
    out.push(Zeroizing::new(escape(value, |b| {
        match b {
            b'&' => Some("&amp;"),
            b'<' => Some("&lt;"),
            b'>' => Some("&gt;"),
            b'"' => Some("&quot;"),
            b'\'' => Some("&#39;"),
            _ => None,
        }
        .map(str::to_owned)
    })));
    out.retain(|f| f.len() >= MIN_GUARDED_LEN);
    out.sort_by(|a, b| a.as_slice().cmp(b.as_slice()));
    out.dedup();
    out
}

/// `value` with each byte `replace` names written as its replacement.
fn escape(value: &[u8], replace: impl Fn(u8) -> Option<String>) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for &b in value {
        match replace(b) {
            Some(r) => out.extend_from_slice(r.as_bytes()),
            None => out.push(b),
        }
    }
    out
}

/// The part of the base64 encoding of `value` that is the same whatever surrounds it,
/// when it starts `offset` bytes into a 3-byte group.
fn aligned_base64(engine: &impl Engine, value: &[u8], offset: usize) -> Option<Vec<u8>> {
    let mut padded = Zeroizing::new(vec![0u8; offset]);
    padded.extend_from_slice(value);
    let encoded = Zeroizing::new(engine.encode(&padded[..]));
    let encoded = encoded.trim_end_matches('=').as_bytes();
    // Characters that mix in the zero prefix, and a last character that mixes in
    // whatever follows.
    let skip = (offset * 8).div_ceil(6);
    let total_bits = (offset + value.len()) * 8;
    let end = if total_bits.is_multiple_of(6) {
        encoded.len()
    } else {
        encoded.len().saturating_sub(1)
    };
    (end > skip).then(|| encoded[skip..end].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(value: &str, form: &str) -> bool {
        forms(value.as_bytes())
            .iter()
            .any(|f| f.as_slice() == form.as_bytes())
    }

    #[test]
    fn every_listed_spelling_is_a_form() {
        let v = "tok/with+chars&=<ok>";
        assert!(has(v, v));
        assert!(has(v, "tok%2Fwith%2Bchars%26%3D%3Cok%3E"));
        assert!(has(v, "tok%2Fwith%2Bchars%26%3D%3Cok%3E"));
        assert!(has(v, "tok\\/with+chars&=<ok>"));
        assert!(has(v, "tok/with+chars\\u0026=\\u003cok\\u003e"));
        assert!(has(v, "tok/with+chars&amp;=&lt;ok&gt;"));
        assert!(has(v, &hex::encode(v)));
        assert!(has(v, &hex::encode_upper(v)));
        let short = tokenizer_core::SecretBytes::new(b"short".to_vec());
        assert!(super::super::Guard::new(&[short]).unwrap().is_none());
    }

    #[test]
    fn base64_is_found_at_any_alignment() {
        let secret = b"sk-live-0123456789abcdef";
        let all = forms(secret);
        for prefix in ["", "a", "ab", "user:", "Bearer "] {
            let mut text = prefix.as_bytes().to_vec();
            text.extend_from_slice(secret);
            for engine in [&STANDARD, &URL_SAFE] {
                let encoded = engine.encode(&text);
                assert!(
                    all.iter().any(|f| encoded
                        .as_bytes()
                        .windows(f.len())
                        .any(|w| w == f.as_slice())),
                    "{prefix:?}: {encoded}"
                );
            }
        }
    }
}
