//! What to do when PII is found: the global `PII_ACTION`/`PII_KINDS` pair, or a secret's
//! `pii` key, `{"action":"redact","kinds":["email","credit_card"]}` (kinds default to all).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::kind::KindSet;

/// The action taken on a request body that contains PII.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiAction {
    /// Do not scan.
    #[default]
    Off,
    /// Replace every match with `[REDACTED]` and forward the request.
    Redact,
    /// Refuse the request (403) when anything is found.
    Block,
}

/// A scanning policy: an action and the kinds it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiPolicy {
    /// What to do with a body that contains any of `kinds`.
    pub action: PiiAction,
    /// The kinds scanned for; every kind when the `pii` key leaves it out.
    #[serde(default = "KindSet::all")]
    pub kinds: KindSet,
}

/// A `PII_ACTION` value that names no action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown PII action {0:?} (expected off, redact or block)")]
pub struct ParseActionError(pub String);

/// Parse `PII_ACTION` (`off`, `redact`, `block`; case and surrounding space ignored).
pub fn parse_action(s: &str) -> Result<PiiAction, ParseActionError> {
    s.parse()
}

// === impl PiiAction ===

impl PiiAction {
    /// The wire name: `off`, `redact` or `block`.
    pub const fn name(self) -> &'static str {
        match self {
            PiiAction::Off => "off",
            PiiAction::Redact => "redact",
            PiiAction::Block => "block",
        }
    }
}

impl fmt::Display for PiiAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PiiAction {
    type Err = ParseActionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        [PiiAction::Off, PiiAction::Redact, PiiAction::Block]
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(t))
            .ok_or_else(|| ParseActionError(s.to_owned()))
    }
}

// === impl PiiPolicy ===

impl PiiPolicy {
    /// `action` applied to `kinds`.
    pub const fn new(action: PiiAction, kinds: KindSet) -> Self {
        Self { action, kinds }
    }

    /// True when bodies must be read: an action other than `off`, and some kinds.
    pub fn is_active(&self) -> bool {
        self.action != PiiAction::Off && !self.kinds.is_empty()
    }

    /// The stricter of two policies: block over redact over off, and every kind either
    /// names. A secret's policy is combined with `PII_ACTION` this way, so a secret can
    /// only tighten scanning (anyone can seal a secret that says `off`).
    pub fn stricter(self, other: Self) -> Self {
        match (self.is_active(), other.is_active()) {
            (false, _) => return other,
            (_, false) => return self,
            _ => {}
        }
        let rank = |a: PiiAction| match a {
            PiiAction::Off => 0,
            PiiAction::Redact => 1,
            PiiAction::Block => 2,
        };
        let action = if rank(self.action) >= rank(other.action) {
            self.action
        } else {
            other.action
        };
        let mut kinds = self.kinds;
        for k in other.kinds.iter() {
            kinds.insert(k);
        }
        Self { action, kinds }
    }
}
