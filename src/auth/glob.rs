//! `*` patterns for identities: OIDC claim values, certificate URIs and DNS names.
//!
//! A pattern is compiled once, when the secret is opened, into an anchored regular
//! expression, so matching is linear in the value whatever the pattern (the `regex`
//! crate guarantees it) — values such as branch names are chosen by whoever triggers a
//! workload. With a separator (`/` for URIs, `.` for DNS names) `*` stays within one
//! segment and `**` crosses them; without one, `*` matches anything.

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest pattern accepted.
const MAX_PATTERN: usize = 512;

/// A compiled pattern and its text.
#[derive(Clone, Debug)]
pub struct Glob {
    text: String,
    regex: Regex,
}

impl Glob {
    /// Compile `text`; `separator` is the character `*` does not cross.
    pub fn new(text: &str, separator: Option<char>) -> Result<Self, String> {
        if text.is_empty() || text.len() > MAX_PATTERN {
            return Err(format!("a pattern of 1 to {MAX_PATTERN} characters"));
        }
        let one = match separator {
            Some(sep) => format!("[^{}]*", regex::escape(&sep.to_string())),
            None => ".*".to_owned(),
        };
        let mut source = String::from("^");
        let mut rest = text;
        while let Some(at) = rest.find('*') {
            source.push_str(&regex::escape(&rest[..at]));
            if rest[at..].starts_with("**") {
                source.push_str(".*");
                rest = &rest[at + 2..];
            } else {
                source.push_str(&one);
                rest = &rest[at + 1..];
            }
        }
        source.push_str(&regex::escape(rest));
        source.push('$');
        let regex = regex::RegexBuilder::new(&source)
            .dot_matches_new_line(true)
            .build()
            .map_err(|e| format!("pattern {text:?}: {e}"))?;
        Ok(Self {
            text: text.to_owned(),
            regex,
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Glob {}

impl Serialize for Glob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
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
        Glob::new(&text, None)
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for UriGlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Glob::new(&text, Some('/'))
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for DnsGlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?.to_ascii_lowercase();
        Glob::new(&text, Some('.'))
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_stay_in_their_segment() {
        let uri = Glob::new("spiffe://example.org/ns/agents/*", Some('/')).unwrap();
        assert!(uri.matches("spiffe://example.org/ns/agents/a1"));
        assert!(!uri.matches("spiffe://example.org/ns/agents/a1/x"));
        assert!(!uri.matches("spiffe://example.org/ns/agentsX/a1"));
        let deep = Glob::new("spiffe://example.org/**", Some('/')).unwrap();
        assert!(deep.matches("spiffe://example.org/ns/agents/a1"));
        let dns = Glob::new("*.internal", Some('.')).unwrap();
        assert!(dns.matches("worker.internal"));
        assert!(!dns.matches("a.worker.internal"));
        let claim = Glob::new("refs/heads/*", None).unwrap();
        assert!(claim.matches("refs/heads/feature/x"));
        assert!(!claim.matches("refs/tags/v1"));
        // Regex syntax in a pattern is literal.
        let lit = Glob::new("a.b(c)+", None).unwrap();
        assert!(lit.matches("a.b(c)+"));
        assert!(!lit.matches("aXb(c)+"));
        assert!(Glob::new("", None).is_err());
    }
}
