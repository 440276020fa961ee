//! `*` patterns for identities — OIDC claim values, certificate URIs and DNS names —
//! on the one matcher ([`tokenizer_core::glob`]): with a separator (`/` for URIs, `.` for
//! DNS names) `*` stays within one segment and `**` crosses any number of them; a claim
//! value is one segment, so `*` matches anything. Linear in the value whatever the
//! pattern: values such as branch names are chosen by whoever triggers a workload.

use serde::{Deserialize, Deserializer, Serialize};
use tokenizer_core::glob::Glob;

/// The longest identity pattern accepted.
const MAX_PATTERN: usize = 512;

fn compile(text: &str, separator: Option<char>) -> Result<Glob, String> {
    if text.len() > MAX_PATTERN {
        return Err(format!("a pattern of 1 to {MAX_PATTERN} characters"));
    }
    Glob::new(text, separator)
}

/// Patterns whose `*` crosses nothing: claim values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AnyGlob(pub Glob);

/// Patterns over `/`-separated values: URIs (SPIFFE IDs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct UriGlob(pub Glob);

/// Patterns over `.`-separated values: DNS names (case-insensitive).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DnsGlob(pub Glob);

impl<'de> Deserialize<'de> for AnyGlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        compile(&text, None)
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for UriGlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        compile(&text, Some('/'))
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for DnsGlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?.to_ascii_lowercase();
        compile(&text, Some('.'))
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}
