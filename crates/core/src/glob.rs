//! `*` and `**` patterns: one matcher for every glob the tokenizer takes — request paths
//! (`allowed_paths`), certificate URIs and DNS names (`mtls_auth`), OIDC claim values.
//!
//! A value is cut into segments at a separator (`/` for paths and URIs, `.` for DNS
//! names; none for claim values, which are one segment). In a pattern, a segment `**`
//! matches any number of segments, none included; `*` inside a segment matches any run of
//! characters within that segment. Matching is computed over suffixes, one pattern
//! segment at a time, in O(pattern × value) segment matches: backtracking over every way
//! each `**` could split the value would be exponential in the number of `**`, and anyone
//! can seal a secret.

use serde::{Serialize, Serializer};

/// The longest pattern accepted.
pub const MAX_PATTERN: usize = 4096;

/// A pattern, cut into segments.
#[derive(Clone, Debug)]
pub struct Glob {
    text: String,
    separator: Option<char>,
    segments: Vec<String>,
}

impl Glob {
    /// `text`, whose `*` does not cross `separator` (none: one segment).
    pub fn new(text: &str, separator: Option<char>) -> Result<Self, String> {
        if text.is_empty() || text.len() > MAX_PATTERN {
            return Err(format!("a pattern of 1 to {MAX_PATTERN} characters"));
        }
        let segments = match separator {
            Some(sep) => text.split(sep).map(str::to_owned).collect(),
            None => vec![text.to_owned()],
        };
        Ok(Self {
            text: text.to_owned(),
            separator,
            segments,
        })
    }

    /// Does the pattern match all of `value`?
    pub fn matches(&self, value: &str) -> bool {
        match self.separator {
            Some(sep) => {
                let segments: Vec<&str> = value.split(sep).collect();
                match_segments(&self.segments, &segments)
            }
            None => match_segment(&self.text, value),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text && self.separator == other.separator
    }
}

impl Eq for Glob {}

impl Serialize for Glob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Does `glob` match all of `value`, segment by segment?
fn match_segments(glob: &[String], value: &[&str]) -> bool {
    // after[j]: do the pattern segments after the current one match `value[j..]`?
    let mut after: Vec<bool> = (0..=value.len()).map(|j| j == value.len()).collect();
    for pattern in glob.iter().rev() {
        let mut here = vec![false; value.len() + 1];
        for j in (0..=value.len()).rev() {
            here[j] = if pattern == "**" {
                // Match nothing, or swallow `value[j]` and stay on this `**`.
                after[j] || (j < value.len() && here[j + 1])
            } else {
                j < value.len() && after[j + 1] && match_segment(pattern, value[j])
            };
        }
        after = here;
    }
    after[0]
}

/// `*` matches any run of characters within one segment.
fn match_segment(glob: &str, seg: &str) -> bool {
    let mut parts = glob.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = seg.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(g: &str) -> Glob {
        Glob::new(g, Some('/')).unwrap()
    }

    #[test]
    fn single_and_double_stars() {
        assert!(path("/v1/models").matches("/v1/models"));
        assert!(!path("/v1/models").matches("/v1/models/x"));
        assert!(path("/v1/*").matches("/v1/models"));
        assert!(!path("/v1/*").matches("/v1/models/x"));
        assert!(!path("/v1/*").matches("/v1"));
        assert!(path("/v1/**").matches("/v1"));
        assert!(path("/v1/**").matches("/v1/a/b/c"));
        assert!(!path("/v1/**").matches("/v2/a"));
        assert!(path("/repos/*/*/issues").matches("/repos/o/r/issues"));
        assert!(path("/**/issues").matches("/a/b/issues"));
        assert!(path("/files/*.json").matches("/files/a.json"));
        assert!(!path("/files/*.json").matches("/files/a.txt"));
        assert!(path("/a*b*c").matches("/abxbc"));
        assert!(!path("/a*b*c").matches("/ac"));
    }

    #[test]
    fn stars_stay_in_their_segment() {
        let uri = Glob::new("spiffe://example.org/ns/agents/*", Some('/')).unwrap();
        assert!(uri.matches("spiffe://example.org/ns/agents/a1"));
        assert!(!uri.matches("spiffe://example.org/ns/agents/a1/x"));
        assert!(!uri.matches("spiffe://example.org/ns/agentsX/a1"));
        let deep = Glob::new("spiffe://example.org/**", Some('/')).unwrap();
        assert!(deep.matches("spiffe://example.org/ns/agents/a1"));
        assert!(!deep.matches("spiffe://example.orgX/ns"));
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

    #[test]
    fn many_double_stars_match_in_polynomial_time() {
        let glob = path(&format!("/{}x", "**/".repeat(60)));
        let value = format!("/{}y", "a/".repeat(60));
        let started = std::time::Instant::now();
        assert!(!glob.matches(&value));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
