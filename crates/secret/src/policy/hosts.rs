//! `allowed_hosts` (exact, case-sensitive, port included) and `allowed_host_pattern`
//! (an unanchored regular expression). Both must pass when both are present.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::PolicyError;

/// The host validators of a secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRules {
    /// `None`: no restriction. `Some([])`: nothing is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_hosts: Option<Vec<String>>,
    /// `""` on the wire means no pattern.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_pattern"
    )]
    pub allowed_host_pattern: Option<HostPattern>,
}

/// A compiled `allowed_host_pattern`, with Go's meaning (see [`super::go_regexp`]).
#[derive(Clone)]
pub struct HostPattern(Regex, String);

// === impl HostRules ===

impl HostRules {
    /// Check `host` (the request's host as the client wrote it, port included).
    pub fn check(&self, host: &str) -> Result<(), PolicyError> {
        if self.allowed_hosts.is_none() && self.allowed_host_pattern.is_none() {
            return Ok(());
        }
        if host.is_empty() {
            return Err(PolicyError::NoHost);
        }
        let listed = self
            .allowed_hosts
            .as_ref()
            .is_none_or(|hosts| hosts.iter().any(|h| h == host));
        let matched = self
            .allowed_host_pattern
            .as_ref()
            .is_none_or(|p| p.0.is_match(host));
        if listed && matched {
            Ok(())
        } else {
            Err(PolicyError::HostNotAllowed(host.to_owned()))
        }
    }

    /// True when neither validator is set: the secret may go anywhere.
    pub fn is_unrestricted(&self) -> bool {
        self.allowed_hosts.is_none() && self.allowed_host_pattern.is_none()
    }
}

// === impl HostPattern ===

impl HostPattern {
    /// Compiled as Go compiles it, within [`super::go_regexp::SIZE_LIMIT`]: anyone can
    /// seal a secret.
    pub fn new(pattern: &str) -> Result<Self, super::go_regexp::GoRegexError> {
        super::go_regexp::compile(pattern).map(|re| Self(re, pattern.to_owned()))
    }

    /// The pattern as sealed (Go's syntax).
    pub fn as_str(&self) -> &str {
        &self.1
    }
}

impl PartialEq for HostPattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for HostPattern {}

impl fmt::Debug for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostPattern({:?})", self.as_str())
    }
}

impl Serialize for HostPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `""` means "no pattern" and is handled by `deserialize_pattern`; here every string
/// must compile.
impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::new(&text).map_err(|_| serde::de::Error::custom("invalid allowed_host_pattern"))
    }
}

fn deserialize_pattern<'de, D: Deserializer<'de>>(d: D) -> Result<Option<HostPattern>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    HostPattern::new(&text)
        .map(Some)
        .map_err(|_| serde::de::Error::custom("invalid allowed_host_pattern"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(hosts: Option<&[&str]>, pattern: Option<&str>) -> HostRules {
        HostRules {
            allowed_hosts: hosts.map(|h| h.iter().map(|s| (*s).to_owned()).collect()),
            allowed_host_pattern: pattern.map(|p| HostPattern::new(p).unwrap()),
        }
    }

    #[test]
    fn exact_hosts_include_the_port_and_case() {
        let r = rules(Some(&["127.0.0.1:8443"]), None);
        assert!(r.check("127.0.0.1:8443").is_ok());
        assert!(r.check("127.0.0.1").is_err());
        assert!(rules(Some(&["api.x"]), None).check("API.X").is_err());
    }

    #[test]
    fn empty_list_allows_nothing_absent_allows_all() {
        assert!(rules(Some(&[]), None).check("a").is_err());
        assert!(rules(None, None).check("a").is_ok());
        assert!(rules(None, None).check("").is_ok());
        assert_eq!(
            rules(Some(&["a"]), None).check(""),
            Err(PolicyError::NoHost)
        );
    }

    #[test]
    fn huge_patterns_are_refused() {
        assert!(HostPattern::new(r"^api\.example\.com$").is_ok());
        // ASCII classes, as in Go: this used to pass the size limit (Unicode `\w`).
        assert!(HostPattern::new(r"\w{1000}\w{1000}\w{1000}").is_ok());
        assert!(
            HostPattern::new(r"(a{500}){3}").is_err(),
            "Go's repeat rule"
        );
        assert!(
            HostPattern::new(r"\pL{1000}\pL{1000}").is_err(),
            "too large here"
        );
    }

    #[test]
    fn pattern_is_unanchored_and_anded_with_the_list() {
        assert!(
            rules(None, Some("example"))
                .check("api.example.com")
                .is_ok()
        );
        assert!(
            rules(None, Some("^127\\.0\\.0\\.1:1$"))
                .check("127.0.0.1.nip.io:1")
                .is_err()
        );
        assert!(rules(Some(&["a.com"]), Some("^b")).check("a.com").is_err());
    }
}
