//! An ordered list of caveats, each kept with the exact bytes the MAC chain covers.
//!
//! msgpack: one flat array `[type, body, type, body, …]`. Decoded caveats keep their
//! bytes as received (Go does the same, so a token from any encoder verifies); new ones
//! are packed in the smallest forms. JSON: `[{"type": …, "body": …}, …]`.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::wire::{Reader, Writer};
use super::{Caveat, MacaroonError, RequestFacts};

/// msgpack `fixarray` of length 2: the prefix of every packed caveat.
const PAIR: u8 = 0x92;

/// A macaroon's caveats, in order, each with the bytes its MAC covers (Go's
/// `macaroon.CaveatSet`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CaveatSet {
    entries: Vec<Entry>,
}

#[derive(Clone, PartialEq, Eq)]
struct Entry {
    caveat: Caveat,
    /// `0x92 ‖ type ‖ body`.
    packed: Vec<u8>,
}

/// One caveat in JSON.
#[derive(Deserialize)]
struct JsonCaveat {
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default)]
    body: Value,
}

// === impl CaveatSet ===

impl CaveatSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of caveats.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Are there no caveats?
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The caveats, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Caveat> {
        self.entries.iter().map(|e| &e.caveat)
    }

    /// Append a caveat.
    pub fn push(&mut self, caveat: Caveat) {
        let packed = caveat.pack();
        self.entries.push(Entry { caveat, packed });
    }

    /// Append a caveat unless one with the same bytes is present (Go's `Add` dedups the
    /// same way); the packed bytes of the added caveat.
    pub(super) fn push_new(&mut self, caveat: Caveat) -> Option<&[u8]> {
        let packed = caveat.pack();
        if self.entries.iter().any(|e| e.packed == packed) {
            return None;
        }
        self.entries.push(Entry { caveat, packed });
        self.entries.last().map(|e| e.packed.as_slice())
    }

    /// Each caveat's `0x92 ‖ type ‖ body`, in order.
    pub(super) fn packed(&self) -> impl Iterator<Item = &[u8]> {
        self.entries.iter().map(|e| e.packed.as_slice())
    }

    /// Each caveat with its packed bytes, in order.
    pub(super) fn entries(&self) -> impl Iterator<Item = (&Caveat, &[u8])> {
        self.entries
            .iter()
            .map(|e| (&e.caveat, e.packed.as_slice()))
    }

    /// Append a caveat with the bytes it was received as.
    pub(super) fn push_packed(&mut self, caveat: Caveat, packed: &[u8]) {
        self.entries.push(Entry {
            caveat,
            packed: packed.to_vec(),
        });
    }

    /// Append every caveat of `other`.
    pub(super) fn extend(&mut self, other: CaveatSet) {
        self.entries.extend(other.entries);
    }

    /// Every caveat allows the request at `now` (unix seconds); else the first refusal.
    pub fn check(&self, facts: &RequestFacts<'_>, now: i64) -> Result<(), MacaroonError> {
        self.iter().try_for_each(|c| c.check(facts, now))
    }

    /// The msgpack form: one flat array `[type, body, …]`, each caveat as received or
    /// packed.
    pub fn to_msgpack(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_vec()
    }

    /// Decode the msgpack form, keeping each caveat's bytes; trailing bytes or a body
    /// that does not fit its type are [`MacaroonError::Malformed`].
    pub fn from_msgpack(bytes: &[u8]) -> Result<Self, MacaroonError> {
        let mut r = Reader::new(bytes);
        let set = Self::read(&mut r)?;
        if !r.is_empty() {
            return Err(MacaroonError::Malformed("trailing bytes after caveats"));
        }
        Ok(set)
    }

    pub(super) fn write(&self, w: &mut Writer) {
        w.array_len(2 * self.entries.len());
        for e in &self.entries {
            // Each packed caveat is a 2-array; the set holds its elements flat.
            w.raw(&e.packed[1..]);
        }
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, MacaroonError> {
        let len = r.array_len()?;
        if len % 2 != 0 {
            return Err(MacaroonError::Malformed("odd caveat array"));
        }
        let mut entries = Vec::new();
        for _ in 0..len / 2 {
            let type_raw = r.raw_value()?;
            let type_id = Reader::new(type_raw).uint()?;
            let body = r.raw_value()?;
            let mut packed = Vec::with_capacity(1 + type_raw.len() + body.len());
            packed.push(PAIR);
            packed.extend_from_slice(type_raw);
            packed.extend_from_slice(body);
            entries.push(Entry {
                caveat: Caveat::unpack(type_id, body)?,
                packed,
            });
        }
        Ok(Self { entries })
    }
}

impl FromIterator<Caveat> for CaveatSet {
    fn from_iter<I: IntoIterator<Item = Caveat>>(iter: I) -> Self {
        let mut set = Self::new();
        for c in iter {
            set.push(c);
        }
        set
    }
}

impl fmt::Debug for CaveatSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for CaveatSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(Caveat::to_json))
    }
}

impl<'de> Deserialize<'de> for CaveatSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<JsonCaveat>::deserialize(d)?
            .into_iter()
            .map(|j| Caveat::from_json(&j.type_name, j.body).map_err(D::Error::custom))
            .collect()
    }
}
