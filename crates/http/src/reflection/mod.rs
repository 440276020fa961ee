//! The reflection guard: an upstream that echoes requests (or quotes them in errors)
//! must not hand an injected credential back to the sandbox.
//!
//! Every credential a request's secrets inject — and every credential the proxy creates
//! for it, such as a signed JWT assertion — is searched for in the response headers, the
//! streamed body, the trailers and, after a protocol switch, the upstream's bytes; raw
//! and in its base64, hex, URL-, JSON- and HTML-escaped forms ([`forms`]). Every byte any
//! pattern covers is masked (same length, so framing stays right): the union of all
//! overlapping matches of all guards, so one secret's pattern can never hide part of
//! another's credential from its guard.
//!
//! What the guard cannot promise is in docs/security.md: credentials the
//! upstream stores and serves later in another shape, partial echoes (a truncated
//! quote), and encodings not listed in [`forms`].

mod forms;
mod masker;

use std::sync::Arc;

use aho_corasick::automaton::{Automaton, OverlappingState};
use aho_corasick::{Anchored, Input, MatchKind, dfa, nfa};
use http::HeaderMap;
use zeroize::Zeroizing;

pub use forms::forms;
pub use masker::Masker;

use crate::body::TransformBody;
use tokenizer_core::SecretBytes;

/// Credentials shorter than this are not guarded: masking short strings would mangle
/// unrelated responses.
pub const MIN_GUARDED_LEN: usize = 8;
/// The longest credential the guard takes. A longer one is refused (400) rather than
/// left unguarded: its automaton would cost too much to build and keep.
pub const MAX_GUARDED_LEN: usize = 8 * 1024;
/// The most credential bytes one secret may ask the guard to cover.
pub const MAX_GUARDED_TOTAL: usize = 16 * 1024;
/// Up to this many pattern bytes the guard is a DFA (fastest search, built in at most a
/// few milliseconds, ~250 KiB); beyond it a contiguous NFA, whose build is linear.
const DFA_MAX_PATTERN_BYTES: usize = 1024;

/// A credential the guard will not take.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum GuardError {
    /// One credential is longer than [`MAX_GUARDED_LEN`], or one secret's together pass
    /// [`MAX_GUARDED_TOTAL`] (or the automaton would pass its size limits); refused with 400.
    #[error(
        "credential too long for the reflection guard (at most {MAX_GUARDED_LEN} bytes each, {MAX_GUARDED_TOTAL} per secret)"
    )]
    TooLong,
}

/// The compiled patterns of one set of credentials (one secret's, or the ones a request
/// created). Overlapping (`Standard`) semantics: every occurrence of every pattern.
pub struct Guard {
    matcher: Matcher,
}

enum Matcher {
    Dfa(dfa::DFA),
    Nfa(nfa::contiguous::NFA),
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Guard({} patterns)", self.with(|a| a.patterns_len()))
    }
}

// === impl Guard ===

impl Guard {
    /// The guard for `values`; `None` when none is long enough to guard.
    pub fn new(values: &[SecretBytes]) -> Result<Option<Self>, GuardError> {
        let total: usize = values.iter().map(|v| v.expose().len()).sum();
        if total > MAX_GUARDED_TOTAL || values.iter().any(|v| v.expose().len() > MAX_GUARDED_LEN) {
            return Err(GuardError::TooLong);
        }
        let mut patterns: Vec<Zeroizing<Vec<u8>>> = values
            .iter()
            .filter(|v| v.expose().len() >= MIN_GUARDED_LEN)
            .flat_map(|v| forms(v.expose()))
            .collect();
        patterns.sort_by(|a, b| a.as_slice().cmp(b.as_slice()));
        patterns.dedup();
        if patterns.is_empty() {
            return Ok(None);
        }
        let bytes: usize = patterns.iter().map(|p| p.len()).sum();
        let slices = patterns.iter().map(|p| p.as_slice());
        // Building can only fail past the automata's size limits, which the caps above
        // keep far away; then there is nothing safe to do but refuse.
        let matcher = if bytes <= DFA_MAX_PATTERN_BYTES {
            dfa::Builder::new()
                .match_kind(MatchKind::Standard)
                .build(slices)
                .map(Matcher::Dfa)
        } else {
            nfa::contiguous::Builder::new()
                .match_kind(MatchKind::Standard)
                .build(slices)
                .map(Matcher::Nfa)
        }
        .map_err(|_| GuardError::TooLong)?;
        Ok(Some(Self { matcher }))
    }

    /// Heap bytes the automaton holds.
    pub fn memory_usage(&self) -> usize {
        self.with(|a| a.memory_usage())
    }

    fn with<R>(&self, f: impl FnOnce(&dyn AutomatonRef) -> R) -> R {
        match &self.matcher {
            Matcher::Dfa(a) => f(a),
            Matcher::Nfa(a) => f(a),
        }
    }

    /// The length of the longest pattern.
    fn longest(&self) -> usize {
        self.with(|a| a.max_len())
    }

    /// Does `text` hold any pattern?
    fn is_match(&self, text: &[u8]) -> bool {
        self.with(|a| a.any(text))
    }

    /// Push `[start, end)` of every occurrence of every pattern in `text`.
    fn find_all(&self, text: &[u8], out: &mut Vec<(usize, usize)>) {
        self.with(|a| a.overlapping(text, out));
    }

    /// Could the end of `text` be the start of a pattern that more bytes complete?
    fn pending(&self, text: &[u8]) -> bool {
        self.with(|a| a.pending(text))
    }
}

/// The few automaton operations the guard uses, so DFA and NFA share one code path.
trait AutomatonRef {
    fn patterns_len(&self) -> usize;
    fn memory_usage(&self) -> usize;
    fn max_len(&self) -> usize;
    fn any(&self, text: &[u8]) -> bool;
    fn overlapping(&self, text: &[u8], out: &mut Vec<(usize, usize)>);
    fn pending(&self, text: &[u8]) -> bool;
}

impl<A: Automaton> AutomatonRef for A {
    fn patterns_len(&self) -> usize {
        Automaton::patterns_len(self)
    }

    fn memory_usage(&self) -> usize {
        Automaton::memory_usage(self)
    }

    fn max_len(&self) -> usize {
        self.max_pattern_len()
    }

    fn any(&self, text: &[u8]) -> bool {
        // Unanchored searches of a built automaton do not fail.
        self.try_find(&Input::new(text)).ok().flatten().is_some()
    }

    fn overlapping(&self, text: &[u8], out: &mut Vec<(usize, usize)>) {
        let input = Input::new(text);
        let mut state = OverlappingState::start();
        while self.try_find_overlapping(&input, &mut state).is_ok() {
            let Some(m) = state.get_match() else { break };
            out.push((m.start(), m.end()));
        }
    }

    fn pending(&self, text: &[u8]) -> bool {
        // The automaton's state after `text` stands for the longest suffix of `text`
        // that is a prefix of some pattern; it is a start state only when there is none.
        // Linear in the tail, whatever the patterns.
        let Ok(start) = self.start_state(Anchored::No) else {
            return true;
        };
        let tail = &text[text
            .len()
            .saturating_sub(self.max_pattern_len().saturating_sub(1))..];
        let end = tail
            .iter()
            .fold(start, |sid, &b| self.next_state(Anchored::No, sid, b));
        !self.is_start(end)
    }
}

/// The guards of one request: one per secret that injects something guardable (built
/// once and cached with the secret), plus one for what the request created.
#[derive(Clone, Debug, Default)]
pub struct GuardSet {
    guards: Vec<Arc<Guard>>,
}

impl GuardSet {
    /// Add one more guard to the request's set.
    pub fn push(&mut self, guard: Arc<Guard>) {
        self.guards.push(guard);
    }

    /// No guards: nothing in the response needs masking.
    pub fn is_empty(&self) -> bool {
        self.guards.is_empty()
    }

    /// The longest pattern of any guard.
    fn longest(&self) -> usize {
        self.guards.iter().map(|g| g.longest()).max().unwrap_or(0)
    }

    fn is_match(&self, text: &[u8]) -> bool {
        self.guards.iter().any(|g| g.is_match(text))
    }

    fn pending(&self, text: &[u8]) -> bool {
        self.guards.iter().any(|g| g.pending(text))
    }

    /// Every covered range in `text`, sorted by start.
    fn find_all(&self, text: &[u8]) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for g in &self.guards {
            g.find_all(text, &mut found);
        }
        found.sort_unstable();
        found
    }

    /// Mask every guarded credential in `text` (whole, nothing held back); the number of
    /// matches, and the masked text when there was one.
    pub fn mask_text(&self, text: &[u8]) -> (usize, Option<Vec<u8>>) {
        if !self.is_match(text) {
            return (0, None);
        }
        let found = self.find_all(text);
        let mut out = text.to_vec();
        masker::mask_ranges(&mut out, &found, 0);
        (found.len(), Some(out))
    }

    /// `body` with every guarded credential masked as it streams (trailers too); `count`
    /// adds one per masked match.
    pub fn body<B>(
        &self,
        body: B,
        count: Arc<std::sync::atomic::AtomicUsize>,
    ) -> TransformBody<B, Masker> {
        TransformBody::new(body, Masker::new(self.clone(), count))
    }

    /// Mask header values in place; returns the number of matches.
    pub fn mask_headers(&self, headers: &mut HeaderMap) -> usize {
        let mut count = 0;
        for value in headers.values_mut() {
            let (n, masked) = self.mask_text(value.as_bytes());
            if let Some(masked) = masked
                && let Ok(v) = http::HeaderValue::from_bytes(&masked)
            {
                *value = v;
                count += n;
            }
        }
        count
    }
}

#[cfg(test)]
mod tests;
