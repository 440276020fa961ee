//! Counts of what a scan found, shared between a streaming body and the audit log.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use super::kind::{KindSet, PiiKind};

/// Matches found per kind. Written while a body streams, read after it ends; holds
/// counts only, never the matched text.
#[derive(Default)]
pub struct Findings {
    counts: [AtomicU64; 5],
}

impl Findings {
    /// Count one match of `kind`.
    pub fn record(&self, kind: PiiKind) {
        self.counts[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Matches of `kind` counted so far.
    pub fn count(&self, kind: PiiKind) -> u64 {
        self.counts[kind.index()].load(Ordering::Relaxed)
    }

    /// Matches of every kind counted so far.
    pub fn total(&self) -> u64 {
        PiiKind::ALL.into_iter().map(|k| self.count(k)).sum()
    }

    /// Nothing found (so far, for a body still streaming).
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// Add `other`'s counts to these.
    pub fn merge(&self, other: &Findings) {
        for k in PiiKind::ALL {
            self.counts[k.index()].fetch_add(other.count(k), Ordering::Relaxed);
        }
    }

    /// Count one of each kind in `kinds` (a scan that could not finish counts as
    /// having found everything it looked for).
    pub fn add_all(&self, kinds: KindSet) {
        for k in kinds.iter() {
            self.record(k);
        }
    }

    /// The kinds found at least once.
    pub fn kinds(&self) -> KindSet {
        PiiKind::ALL
            .into_iter()
            .filter(|k| self.count(*k) > 0)
            .collect()
    }
}

/// `{email: 2, ssn: 1}`, listing only kinds found.
impl fmt::Debug for Findings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.kinds().iter().map(|k| (k.name(), self.count(k))))
            .finish()
    }
}
