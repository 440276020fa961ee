//! The reflection guard: an upstream that echoes requests (or leaks them in errors) must
//! not hand the injected credential back to the sandbox. Every credential a secret
//! injected is searched for in the response headers and the streamed response body, raw
//! and in its base64, URL-encoded and JSON-escaped forms, and replaced by a mask of the
//! same length (so Content-Length stays right).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use http::HeaderValue;
use http::response::Parts;
use http_body_util::BodyExt;

use super::ProcessorConfig;
use super::replace::{ReplaceBody, Replacer};
use crate::body::Body;
use crate::secret::SecretBytes;

/// Credentials shorter than this are not guarded: masking short strings would mangle
/// unrelated responses.
pub const MIN_GUARDED_LEN: usize = 8;

impl ProcessorConfig {
    /// The credentials this processor sends upstream, for the reflection guard.
    pub fn guard_values(&self, out: &mut Vec<SecretBytes>) {
        let mut push = |s: &str| {
            if s.len() >= MIN_GUARDED_LEN {
                out.push(SecretBytes::new(s.as_bytes().to_vec()));
            }
        };
        match self {
            Self::Inject(c) => push(c.token.expose()),
            Self::InjectBody(c) => push(c.token.expose()),
            Self::OAuth2(c) => {
                if let Some(t) = &c.token {
                    push(t.access_token.expose());
                    push(t.refresh_token.expose());
                }
            }
            Self::OAuth2Body(c) => {
                if let Some(t) = &c.token {
                    push(t.access_token.expose());
                    push(t.refresh_token.expose());
                }
            }
            Self::ClientCredentials(c) => push(c.client_secret.expose()),
            Self::Multi(all) => all.iter().for_each(|c| c.guard_values(out)),
            // HMAC and SigV4 keys never leave the proxy; JWT keys only sign.
            Self::InjectHmac(_) | Self::SigV4(_) | Self::Jwt(_) | Self::GitHubApp(_) => {}
        }
    }
}

/// Masks for the credentials of one secret or one request. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ReflectionGuard {
    replacer: Arc<Replacer>,
}

impl ReflectionGuard {
    /// The guard for what `processor` injects; `None` when it injects nothing guardable.
    pub fn for_processor(processor: &ProcessorConfig) -> Option<Self> {
        let mut values = Vec::new();
        processor.guard_values(&mut values);
        Self::new(&values)
    }

    /// `None` when there is nothing to guard.
    pub fn new(values: &[SecretBytes]) -> Option<Self> {
        let mut pairs = Vec::new();
        for v in values {
            for form in forms(v.expose()) {
                let mask = mask(form.len());
                pairs.push((form, mask));
            }
        }
        pairs.sort();
        pairs.dedup();
        Replacer::reusable(pairs).map(|replacer| Self { replacer })
    }

    /// Mask the credentials of every guard in `guards` in the response headers and body;
    /// `count` adds one per mask. The guards run one after the other, not as one merged
    /// automaton: each secret's is built once and cached with it, and merging them would
    /// cost a fresh build per request. Guards with longer credentials go first, so a
    /// credential that contains another is masked whole.
    pub fn apply_all(
        guards: &mut [Self],
        head: &mut Parts,
        mut body: Body,
        count: &Arc<AtomicUsize>,
    ) -> Body {
        guards.sort_by_key(|g| std::cmp::Reverse(g.replacer.longest()));
        for guard in guards.iter() {
            body = guard.apply(head, body, count.clone());
        }
        body
    }

    /// Mask credentials in the response headers and body; `count` adds one per mask.
    pub fn apply(&self, head: &mut Parts, body: Body, count: Arc<AtomicUsize>) -> Body {
        for value in head.headers.values_mut() {
            if !self.replacer.is_match(value.as_bytes()) {
                continue;
            }
            let (masked, n) = self.replacer.replace_all(value.as_bytes());
            if n > 0
                && let Ok(v) = HeaderValue::from_bytes(&masked)
            {
                *value = v;
                count.fetch_add(n, Ordering::Relaxed);
            }
        }
        ReplaceBody::counting(body, self.replacer.clone(), count).boxed()
    }
}

/// A same-length mask: `[REDACTED]` padded with `*`, or `*`s for short values.
fn mask(len: usize) -> Vec<u8> {
    const TAG: &[u8] = b"[REDACTED]";
    if len < TAG.len() {
        return vec![b'*'; len];
    }
    let mut m = TAG.to_vec();
    m.resize(len, b'*');
    m
}

/// The forms a reflected credential may take.
fn forms(value: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![value.to_vec()];
    for engine in [&STANDARD, &URL_SAFE] {
        for offset in 0..3 {
            out.extend(aligned_base64(engine, value, offset));
        }
    }
    let url: String = form_urlencoded::byte_serialize(value).collect();
    out.push(url.into_bytes());
    let percent: Vec<u8> = value
        .iter()
        .flat_map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                vec![b]
            } else {
                format!("%{b:02X}").into_bytes()
            }
        })
        .collect();
    out.push(percent);
    if let Ok(text) = std::str::from_utf8(value)
        && let Ok(json) = serde_json::to_string(text)
    {
        out.push(json.trim_matches('"').replace('/', "\\/").into_bytes());
        out.push(json.trim_matches('"').as_bytes().to_vec());
    }
    out.retain(|f| f.len() >= MIN_GUARDED_LEN);
    out.sort();
    out.dedup();
    out
}

/// The part of the base64 encoding of `value` that is the same whatever surrounds it,
/// when it starts `offset` bytes into a 3-byte group.
fn aligned_base64(engine: &impl Engine, value: &[u8], offset: usize) -> Option<Vec<u8>> {
    let mut padded = vec![0u8; offset];
    padded.extend_from_slice(value);
    let encoded = engine.encode(&padded);
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

    fn guard(v: &str) -> ReflectionGuard {
        ReflectionGuard::new(&[SecretBytes::new(v.as_bytes().to_vec())]).unwrap()
    }

    #[test]
    fn masks_keep_the_length() {
        assert_eq!(mask(8), b"********");
        assert_eq!(mask(12), b"[REDACTED]**");
    }

    #[test]
    fn finds_base64_at_any_alignment() {
        let secret = "sk-live-0123456789abcdef";
        let g = guard(secret);
        for prefix in ["", "a", "ab", "user:", "Bearer "] {
            let text = STANDARD.encode(format!("{prefix}{secret}"));
            let (out, n) = g.replacer.replace_all(text.as_bytes());
            assert!(n >= 1, "{prefix:?}: {text}");
            assert!(
                !String::from_utf8(out)
                    .unwrap()
                    .contains(&text[text.len() / 2..][..8])
            );
        }
    }

    #[test]
    fn finds_raw_url_and_json_forms() {
        let secret = "tok/with+chars&=ok";
        let g = guard(secret);
        for text in [
            secret.to_owned(),
            form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>(),
            "tok%2Fwith%2Bchars%26%3Dok".to_owned(),
            "tok\\/with+chars&=ok".to_owned(),
        ] {
            let (out, n) = g.replacer.replace_all(text.as_bytes());
            assert_eq!(n, 1, "{text}");
            assert_eq!(out.len(), text.len());
        }
        assert!(ReflectionGuard::new(&[SecretBytes::new(b"short".to_vec())]).is_none());
    }

    #[tokio::test]
    async fn several_guards_mask_every_credential_and_nested_ones_whole() {
        let short = guard("credential-aaaa");
        let long = guard("outer-credential-aaaa-outer");
        let mut guards = vec![short, long];
        let text = "x outer-credential-aaaa-outer y credential-aaaa z";
        let response = http::Response::builder()
            .header("x-echo", text)
            .body(())
            .unwrap();
        let (mut head, ()) = response.into_parts();
        let count = Arc::new(AtomicUsize::new(0));
        let body = crate::body::full(text.as_bytes().to_vec());
        let body = ReflectionGuard::apply_all(&mut guards, &mut head, body, &count);
        let out = body.collect().await.unwrap().to_bytes();
        for masked in [&out[..], head.headers["x-echo"].as_bytes()] {
            let masked = String::from_utf8(masked.to_vec()).unwrap();
            assert_eq!(masked.len(), text.len());
            assert!(!masked.contains("credential"), "{masked}");
            assert!(
                !masked.contains("outer"),
                "nested credential masked whole: {masked}"
            );
        }
        assert_eq!(count.load(Ordering::Relaxed), 4);
    }
}
