//! Streaming multi-pattern replacement over a body: placeholders in request bodies
//! (`inject_body_processor`, `oauth2_body_processor`, `oauth2_processor`).
//!
//! Matches are found with Aho-Corasick (leftmost-longest). Between chunks, only a tail
//! that is a proper prefix of some pattern is held back — bytes that cannot start a
//! match are released at once, so streamed responses (server-sent events) are not
//! delayed — and memory is bounded by the longest pattern, never by the body.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use bytes::{Bytes, BytesMut};
use zeroize::Zeroizing;

use tokenizer_http::body::{Transform, TransformBody};

/// Patterns and their replacements, compiled once, shared by many bodies.
pub struct Replacer {
    matcher: AhoCorasick,
    patterns: Vec<Zeroizing<Vec<u8>>>,
    /// Each pattern's KMP failure function, to find the held-back tail in linear time.
    failures: Vec<Vec<usize>>,
    replacements: Vec<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for Replacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Replacer({} patterns)", self.patterns.len())
    }
}

impl Replacer {
    /// `pairs` of (pattern, replacement); empty patterns are ignored. `None` when no
    /// pattern is left. A contiguous NFA: its build is linear in the patterns (a few µs
    /// for placeholders), which matters for an automaton built per request.
    pub fn new(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Option<Arc<Self>> {
        let (patterns, replacements): (Vec<_>, Vec<_>) = pairs
            .into_iter()
            .filter(|(p, _)| !p.is_empty())
            .map(|(p, r)| (Zeroizing::new(p), Zeroizing::new(r)))
            .unzip();
        if patterns.is_empty() {
            return None;
        }
        let matcher = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .match_kind(MatchKind::LeftmostLongest)
            .build(patterns.iter().map(|p| p.as_slice()))
            .ok()?;
        let failures = patterns.iter().map(|p| failure(p)).collect();
        Some(Arc::new(Self {
            matcher,
            patterns,
            failures,
            replacements,
        }))
    }

    /// Does `text` hold any pattern?
    pub fn is_match(&self, text: &[u8]) -> bool {
        self.matcher.is_match(text)
    }

    /// The length of the longest pattern.
    pub fn longest(&self) -> usize {
        self.patterns.iter().map(|p| p.len()).max().unwrap_or(0)
    }

    /// Replace every match in `text`; returns the result and the number of matches.
    pub fn replace_all(&self, text: &[u8]) -> (Vec<u8>, usize) {
        let mut out = Vec::with_capacity(text.len());
        let n = self.replace_into(text, &mut out);
        (out, n)
    }

    fn replace_into(&self, text: &[u8], out: &mut Vec<u8>) -> usize {
        let mut last = 0;
        let mut count = 0;
        for m in self.matcher.find_iter(text) {
            out.extend_from_slice(&text[last..m.start()]);
            out.extend_from_slice(&self.replacements[m.pattern().as_usize()]);
            last = m.end();
            count += 1;
        }
        out.extend_from_slice(&text[last..]);
        count
    }

    /// Is `tail` (which starts with a match and runs to the end of the buffer) a proper
    /// prefix of some longer pattern?
    fn could_grow(&self, tail: &[u8]) -> bool {
        self.patterns
            .iter()
            .any(|p| p.len() > tail.len() && p.starts_with(tail))
    }

    /// The length of the longest suffix of `text` that is a proper prefix of a pattern:
    /// bytes that a later chunk could complete into a match. Linear in the tail and the
    /// patterns (a naive comparison of every suffix is quadratic in the placeholder,
    /// which the client chooses).
    pub(crate) fn pending_len(&self, text: &[u8]) -> usize {
        self.patterns
            .iter()
            .zip(&self.failures)
            .map(|(p, fail)| {
                let tail = &text[text.len().saturating_sub(p.len() - 1)..];
                let mut k = 0;
                for &b in tail {
                    while k > 0 && (k == p.len() || p[k] != b) {
                        k = fail[k - 1];
                    }
                    if p[k] == b {
                        k += 1;
                    }
                }
                if k == p.len() { fail[k - 1] } else { k }
            })
            .max()
            .unwrap_or(0)
    }
}

/// The KMP failure function of `p`: `f[i]` is the length of the longest proper prefix
/// of `p[..=i]` that is also its suffix.
fn failure(p: &[u8]) -> Vec<usize> {
    let mut f = vec![0; p.len()];
    let mut k = 0;
    for i in 1..p.len() {
        while k > 0 && p[i] != p[k] {
            k = f[k - 1];
        }
        if p[i] == p[k] {
            k += 1;
        }
        f[i] = k;
    }
    f
}

/// A body with every pattern of a [`Replacer`] replaced.
pub type ReplaceBody<B> = TransformBody<B, Replacing>;

/// The streaming state of one replaced body.
pub struct Replacing {
    replacer: Arc<Replacer>,
    carry: BytesMut,
    replaced: Arc<AtomicUsize>,
}

/// `inner` with every pattern of `replacer` replaced.
pub fn replace_body<B>(inner: B, replacer: Arc<Replacer>) -> ReplaceBody<B> {
    counting(inner, replacer, Arc::default())
}

/// Like [`replace_body`], adding the number of replacements to `replaced`.
pub fn counting<B>(
    inner: B,
    replacer: Arc<Replacer>,
    replaced: Arc<AtomicUsize>,
) -> ReplaceBody<B> {
    TransformBody::new(
        inner,
        Replacing {
            replacer,
            carry: BytesMut::new(),
            replaced,
        },
    )
}

/// Replace matches in `buf`, keeping back (in `buf`) what a later chunk could extend
/// into a match (or into a longer match) unless `last`. Returns the bytes to emit.
fn drain(replacer: &Replacer, buf: &mut BytesMut, last: bool, replaced: &AtomicUsize) -> Bytes {
    let mut out = Vec::with_capacity(buf.len());
    let mut start = 0;
    let mut hold_from = None;
    for m in replacer.matcher.find_iter(&buf[..]) {
        // Leftmost-longest: more data could still make a longer match here.
        if !last && replacer.could_grow(&buf[m.start()..]) {
            hold_from = Some(m.start());
            break;
        }
        out.extend_from_slice(&buf[start..m.start()]);
        out.extend_from_slice(&replacer.replacements[m.pattern().as_usize()]);
        start = m.end();
        replaced.fetch_add(1, Ordering::Relaxed);
    }
    let emit_to = match (last, hold_from) {
        (true, _) => buf.len(),
        (false, Some(at)) => at,
        (false, None) => buf.len() - replacer.pending_len(&buf[start..]),
    };
    out.extend_from_slice(&buf[start..emit_to]);
    let _ = buf.split_to(emit_to);
    Bytes::from(out)
}

impl Transform for Replacing {
    fn push(&mut self, data: Bytes) -> Bytes {
        if self.carry.is_empty() && !self.replacer.is_match(&data) {
            // The common case, without copying: nothing to replace, and only a tail
            // that could start a match is held back.
            let keep = self.replacer.pending_len(&data);
            self.carry.extend_from_slice(&data[data.len() - keep..]);
            return data.slice(..data.len() - keep);
        }
        self.carry.extend_from_slice(&data);
        drain(&self.replacer, &mut self.carry, false, &self.replaced)
    }

    fn finish(&mut self) -> Bytes {
        drain(&self.replacer, &mut self.carry, true, &self.replaced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;
    use http_body::Frame;
    use http_body_util::{BodyExt, StreamBody};

    fn replacer(pairs: &[(&str, &str)]) -> Arc<Replacer> {
        Replacer::new(
            pairs
                .iter()
                .map(|(p, r)| (p.as_bytes().to_vec(), r.as_bytes().to_vec()))
                .collect(),
        )
        .unwrap()
    }

    async fn run(chunks: &[&str], pairs: &[(&str, &str)]) -> (String, usize) {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c.as_bytes()))))
            .collect();
        let count = Arc::new(AtomicUsize::new(0));
        let body = counting(
            StreamBody::new(stream::iter(frames)),
            replacer(pairs),
            count.clone(),
        );
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            String::from_utf8(bytes.to_vec()).unwrap(),
            count.load(Ordering::Relaxed),
        )
    }

    #[tokio::test]
    async fn replaces_all_occurrences() {
        assert_eq!(
            run(&["a{{T}}b{{T}}"], &[("{{T}}", "xyz")]).await,
            ("axyzbxyz".into(), 2)
        );
    }

    #[tokio::test]
    async fn matches_split_across_chunks() {
        assert_eq!(
            run(&["a{", "{T", "}", "}b{{"], &[("{{T}}", "X")]).await.0,
            "aXb{{"
        );
        assert_eq!(run(&["{{T}", "}{{T}}"], &[("{{T}}", "")]).await.0, "");
    }

    #[tokio::test]
    async fn several_patterns_longest_first() {
        let pairs = [
            ("secret", "[A]"),
            ("secret-token", "[B]"),
            ("c2VjcmV0", "[C]"),
        ];
        assert_eq!(
            run(&["x secret-tok", "en y c2Vj", "cmV0 secret"], &pairs)
                .await
                .0,
            "x [B] y [C] [A]"
        );
    }

    #[tokio::test]
    async fn no_match_and_empty_bodies_pass_through() {
        assert_eq!(
            run(&["hello", " world"], &[("{{T}}", "X")]).await.0,
            "hello world"
        );
        assert_eq!(run(&[], &[("{{T}}", "X")]).await.0, "");
    }

    #[tokio::test]
    async fn many_occurrences_in_small_chunks() {
        let body = "<<TOKEN>>".repeat(10_000);
        let chunks: Vec<String> = body
            .as_bytes()
            .chunks(7)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        assert_eq!(
            run(&refs, &[("<<TOKEN>>", "t")]).await.0,
            "t".repeat(10_000)
        );
    }

    #[test]
    fn the_held_back_tail_is_found_in_linear_time() {
        // A long placeholder of repeated bytes and a body of the same bytes: comparing
        // every suffix with every prefix is quadratic (seconds for 64 KiB).
        let placeholder = format!("{}b", "a".repeat(64 * 1024));
        let r = replacer(&[(placeholder.as_str(), "X")]);
        let text = vec![b'a'; 128 * 1024];
        let start = std::time::Instant::now();
        assert_eq!(r.pending_len(&text), 64 * 1024);
        assert_eq!(r.pending_len(b"xxaab"), 0);
        assert_eq!(r.pending_len(b"xxaa"), 2);
        assert!(start.elapsed() < std::time::Duration::from_millis(500));
    }

    #[test]
    fn only_possible_match_starts_are_held_back() {
        let r = replacer(&[("sk-live-abcdef", "X")]);
        let mut buf = BytesMut::from(&b"data: one\n\n"[..]);
        let count = AtomicUsize::new(0);
        assert_eq!(&drain(&r, &mut buf, false, &count)[..], b"data: one\n\n");
        assert!(buf.is_empty());
        let mut buf = BytesMut::from(&b"data: sk-li"[..]);
        assert_eq!(&drain(&r, &mut buf, false, &count)[..], b"data: ");
        assert_eq!(&buf[..], b"sk-li");
    }
}
