//! The kinds of PII the scanner knows, and a small set of them.
//!
//! Wire names are snake_case: `email`, `credit_card`, `ssn`, `phone`, `api_key`. A set
//! parses from `PII_KINDS` (`"email,ssn"`, or `"all"`) and serializes as a list of names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One kind of personal or secret data found in a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// An email address (`email`).
    Email,
    /// A payment card number passing the Luhn check (`credit_card`).
    CreditCard,
    /// A US social security number written `ddd-dd-dddd` (`ssn`).
    Ssn,
    /// A North American or `+`-prefixed international phone number (`phone`).
    Phone,
    /// An API key or token of a known shape: OpenAI, Anthropic, GitHub, AWS key id, Slack,
    /// Stripe, Google, or a JWT (`api_key`).
    ApiKey,
}

/// A set of [`PiiKind`]s, one bit per kind.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KindSet(u8);

/// A `PII_KINDS` entry that names no kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown PII kind {0:?} (expected email, credit_card, ssn, phone, api_key or all)")]
pub struct ParseKindError(pub String);

// === impl PiiKind ===

impl PiiKind {
    /// Every kind, in wire order.
    pub const ALL: [PiiKind; 5] = [
        PiiKind::Email,
        PiiKind::CreditCard,
        PiiKind::Ssn,
        PiiKind::Phone,
        PiiKind::ApiKey,
    ];

    /// The wire name: `email`, `credit_card`, `ssn`, `phone` or `api_key`.
    pub const fn name(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::CreditCard => "credit_card",
            PiiKind::Ssn => "ssn",
            PiiKind::Phone => "phone",
            PiiKind::ApiKey => "api_key",
        }
    }

    /// Position in [`PiiKind::ALL`]; also the bit in a [`KindSet`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A lower bound on the length of any match of this kind: a body shorter than this
    /// cannot contain the kind (checked against the patterns in tests).
    pub const fn min_len(self) -> usize {
        match self {
            PiiKind::Email => 6,       // a@b.co
            PiiKind::CreditCard => 12, // 4-digit group and two 3-digit groups
            PiiKind::Ssn => 11,        // ddd-dd-dddd
            PiiKind::Phone => 9,       // +12345678
            PiiKind::ApiKey => 15,     // xoxb- and ten characters
        }
    }
}

impl fmt::Display for PiiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PiiKind {
    type Err = ParseKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        PiiKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseKindError(s.to_owned()))
    }
}

// === impl KindSet ===

impl KindSet {
    /// No kinds.
    pub const fn empty() -> Self {
        KindSet(0)
    }

    /// Every kind (`"all"`, and the default when a policy names none).
    pub const fn all() -> Self {
        KindSet(0b1_1111)
    }

    /// This set plus `kind`.
    pub const fn with(self, kind: PiiKind) -> Self {
        KindSet(self.0 | 1 << kind.index())
    }

    /// Add `kind` to the set.
    pub fn insert(&mut self, kind: PiiKind) {
        *self = self.with(kind);
    }

    /// Is `kind` in the set?
    pub const fn contains(self, kind: PiiKind) -> bool {
        self.0 & (1 << kind.index()) != 0
    }

    /// Are there no kinds in the set (so nothing to scan for)?
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set, in wire order.
    pub fn iter(self) -> impl Iterator<Item = PiiKind> {
        PiiKind::ALL.into_iter().filter(move |k| self.contains(*k))
    }

    /// Parse a comma-separated list (`PII_KINDS`): `"email, ssn"`, or `"all"`.
    /// Empty entries are skipped, but the list must name at least one kind.
    pub fn parse(s: &str) -> Result<Self, ParseKindError> {
        if s.trim().eq_ignore_ascii_case("all") {
            return Ok(Self::all());
        }
        let mut set = Self::empty();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            set.insert(name.parse()?);
        }
        if set.is_empty() {
            return Err(ParseKindError(s.to_owned()));
        }
        Ok(set)
    }

    /// The shortest match any kind in the set can produce (`usize::MAX` when empty).
    pub fn min_len(self) -> usize {
        self.iter()
            .map(PiiKind::min_len)
            .min()
            .unwrap_or(usize::MAX)
    }
}

impl FromIterator<PiiKind> for KindSet {
    fn from_iter<I: IntoIterator<Item = PiiKind>>(iter: I) -> Self {
        iter.into_iter().fold(Self::empty(), Self::with)
    }
}

/// `email,ssn`; empty for the empty set.
impl fmt::Display for KindSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, kind) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(kind.name())?;
        }
        Ok(())
    }
}

impl fmt::Debug for KindSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for KindSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for KindSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<PiiKind>::deserialize(deserializer).map(KindSet::from_iter)
    }
}
