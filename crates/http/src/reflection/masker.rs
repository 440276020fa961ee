//! Masking a stream: the union of every guard's matches is masked, across chunk
//! boundaries, holding back only a tail that could still grow into a match.
//!
//! Held-back bytes stay unmasked in the carry (so later bytes can complete a match that
//! starts in them) and are searched again with the next chunk. A match that starts in
//! bytes already sent and runs into the carry cannot be found again; its part in the
//! carry is remembered as `mask_prefix`. Memory is bounded by the longest pattern.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;

use super::GuardSet;
use crate::body::Transform;

/// The streaming state of one response (or one upgraded stream).
pub struct Masker {
    guards: GuardSet,
    carry: BytesMut,
    /// Leading carry bytes inside a match that began in bytes already sent.
    mask_prefix: usize,
    /// How much of a masked run the last bytes sent were (so a run that goes on in the
    /// next bytes goes on with the same mask text, whatever the chunking).
    run: usize,
    count: Arc<AtomicUsize>,
}

impl Masker {
    /// `count` adds one per masked match.
    pub fn new(guards: GuardSet, count: Arc<AtomicUsize>) -> Self {
        Self {
            guards,
            carry: BytesMut::new(),
            mask_prefix: 0,
            run: 0,
            count,
        }
    }

    /// Take the next chunk; returns what can be sent now (possibly empty).
    pub fn push(&mut self, data: Bytes) -> Bytes {
        if self.carry.is_empty() && self.mask_prefix == 0 && !self.guards.is_match(&data) {
            // The common case, without copying: nothing to mask, and only a tail that
            // could start a match is held back.
            let hold = self.hold(&data);
            self.carry.extend_from_slice(&data[data.len() - hold..]);
            if hold < data.len() {
                self.run = 0;
            }
            return data.slice(..data.len() - hold);
        }
        self.carry.extend_from_slice(&data);
        self.drain(false)
    }

    /// Are bytes held back, waiting for more?
    pub fn is_holding(&self) -> bool {
        !self.carry.is_empty()
    }

    /// The end of the stream (or of a pause in it): everything held back, masked.
    pub fn finish(&mut self) -> Bytes {
        if self.carry.is_empty() {
            return Bytes::new();
        }
        self.drain(true)
    }

    /// How many trailing bytes of `text` to hold back: all that a pattern could still
    /// grow from, when any could (a guess on the safe side, found in linear time).
    fn hold(&self, text: &[u8]) -> usize {
        if self.guards.pending(text) {
            text.len().min(self.guards.longest().saturating_sub(1))
        } else {
            0
        }
    }

    fn drain(&mut self, last: bool) -> Bytes {
        let buf = &self.carry[..];
        let found = self.guards.find_all(buf);
        let hold = if last { 0 } else { self.hold(buf) };
        let emit = buf.len() - hold;
        // Matches that start in what is sent now are final; later ones are found again.
        let done = found.iter().filter(|(start, _)| *start < emit);
        self.count
            .fetch_add(done.clone().count(), Ordering::Relaxed);
        let straddle = done.map(|(_, end)| end.saturating_sub(emit)).max();
        let mut out = buf[..emit].to_vec();
        let mut ranges = found.clone();
        if self.mask_prefix > 0 {
            ranges.push((0, self.mask_prefix));
        }
        if emit > 0 {
            self.run = mask_ranges(&mut out, &ranges, self.run);
        }
        self.mask_prefix = self
            .mask_prefix
            .saturating_sub(emit)
            .max(straddle.unwrap_or(0));
        let _ = self.carry.split_to(emit);
        Bytes::from(out)
    }
}

impl Transform for Masker {
    fn push(&mut self, data: Bytes) -> Bytes {
        Masker::push(self, data)
    }

    fn finish(&mut self) -> Bytes {
        Masker::finish(self)
    }

    /// Trailers are masked like headers.
    fn trailers(&mut self, mut trailers: HeaderMap) -> HeaderMap {
        let n = self.guards.mask_headers(&mut trailers);
        self.count.fetch_add(n, Ordering::Relaxed);
        trailers
    }

    /// Masks have the length of what they replace.
    fn keeps_length(&self) -> bool {
        true
    }
}

/// Mask the union of `ranges` (clipped to `text`): each maximal run becomes
/// `[REDACTED]` padded with `*` (or only `*` when shorter), the same length. A run at
/// the very start continues one of `before` bytes that ended the previous text. Returns
/// the length of the run that reaches the end of `text` (0 if none does).
pub fn mask_ranges(text: &mut [u8], ranges: &[(usize, usize)], before: usize) -> usize {
    let mut sorted: Vec<(usize, usize)> = ranges
        .iter()
        .map(|&(s, e)| (s.min(text.len()), e.min(text.len())))
        .filter(|(s, e)| s < e)
        .collect();
    sorted.sort_unstable();
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (s, e) in sorted {
        match runs.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => runs.push((s, e)),
        }
    }
    const TAG: &[u8] = b"[REDACTED]";
    let mut at_end = 0;
    for (s, e) in runs {
        let offset = if s == 0 { before } else { 0 };
        for (i, b) in text[s..e].iter_mut().enumerate() {
            *b = TAG.get(offset + i).copied().unwrap_or(b'*');
        }
        if e == text.len() {
            at_end = offset + (e - s);
        }
    }
    at_end
}
