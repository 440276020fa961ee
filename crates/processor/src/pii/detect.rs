//! Finding PII in bytes: the leftmost-first, non-overlapping matches of the enabled
//! kinds' patterns (see [`patterns`](super::patterns) for what each one matches).
//!
//! The scan is restartable: what [`Matches`] yields from a position depends only on the
//! bytes from [`CONTEXT`] before that position on, and a match starting at `s` depends
//! only on bytes up to `s + MAX_MATCH_LEN + CONTEXT`. The streaming redactor relies on
//! this to give the same result as a whole-body scan while holding a bounded tail.

use std::ops::Range;

use super::findings::Findings;
use super::kind::{KindSet, PiiKind};
use super::patterns;

/// What replaces each match.
pub const REDACTED: &str = "[REDACTED]";

/// No pattern matches more bytes than this (asserted in tests).
pub const MAX_MATCH_LEN: usize = 1024;

/// No pattern check looks further than this before or after a match.
pub const CONTEXT: usize = 8;

/// One piece of PII: where it is and what it is. Never holds the text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Byte offsets of the match in the scanned haystack.
    pub range: Range<usize>,
    /// What was found.
    pub kind: PiiKind,
}

/// All matches in `haystack` for `kinds`: non-overlapping and sorted by position. Where
/// candidates of several kinds overlap, the leftmost wins, then the longest.
pub fn find(haystack: &[u8], kinds: KindSet) -> Vec<Match> {
    Matches::new(haystack, 0, kinds).collect()
}

/// `haystack` with every match replaced by [`REDACTED`] and recorded in `findings`;
/// `None` when nothing matched.
pub fn redact(haystack: &[u8], kinds: KindSet, findings: &Findings) -> Option<Vec<u8>> {
    let mut matches = Matches::new(haystack, 0, kinds).peekable();
    matches.peek()?;
    let mut out = Vec::with_capacity(haystack.len());
    let mut copied = 0;
    for m in matches {
        out.extend_from_slice(&haystack[copied..m.range.start]);
        out.extend_from_slice(REDACTED.as_bytes());
        findings.record(m.kind);
        copied = m.range.end;
    }
    out.extend_from_slice(&haystack[copied..]);
    Some(out)
}

/// An iterator over the matches in a haystack from a position on.
pub struct Matches<'h> {
    haystack: &'h [u8],
    pos: usize,
    kinds: KindSet,
    /// Per kind, the next accepted candidate at or after the position it was searched
    /// from: `None` not searched yet, `Some(None)` there is none.
    next: [Option<Option<Range<usize>>>; 5],
}

// === impl Matches ===

impl<'h> Matches<'h> {
    /// Matches starting at or after `start`; earlier bytes serve as context only.
    pub fn new(haystack: &'h [u8], start: usize, kinds: KindSet) -> Self {
        Self {
            haystack,
            pos: start,
            kinds,
            next: Default::default(),
        }
    }

    /// The next candidate of `kind` starting at or after `self.pos`, searching again
    /// when the cached one was overtaken by an accepted match of another kind.
    fn candidate(&mut self, kind: PiiKind) -> Option<Range<usize>> {
        let slot = &mut self.next[kind.index()];
        let stale = match slot {
            None => true,
            Some(Some(r)) => r.start < self.pos,
            Some(None) => false,
        };
        if stale {
            *slot = Some(patterns::pattern(kind).next(self.haystack, self.pos));
        }
        slot.clone().flatten()
    }
}

impl Iterator for Matches<'_> {
    type Item = Match;

    fn next(&mut self) -> Option<Match> {
        let mut best: Option<Match> = None;
        for kind in self.kinds.iter() {
            let Some(range) = self.candidate(kind) else {
                continue;
            };
            let better = best.as_ref().is_none_or(|b| {
                range.start < b.range.start
                    || (range.start == b.range.start && range.end > b.range.end)
            });
            if better {
                best = Some(Match { range, kind });
            }
        }
        let m = best?;
        self.pos = m.range.end;
        Some(m)
    }
}
