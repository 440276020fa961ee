//! `allowed_paths`: globs over normalized request paths.
//!
//! A glob is split into `/` segments: `**` matches any number of segments (zero
//! included), `*` inside a segment matches any characters except `/`. Paths are
//! normalized before matching and forwarded in that form, so what the upstream sees is
//! what was checked: unreserved percent-escapes are decoded, duplicate slashes collapse,
//! `.` and `..` segments are resolved (RFC 3986 §5.2.4), and encoded slashes,
//! backslashes or NUL (which servers disagree about) are refused.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokenizer_core::glob::Glob;

/// A path that cannot be normalized unambiguously.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    /// An encoded slash, a backslash or a NUL (raw or encoded), which servers disagree
    /// about.
    #[error("path contains an encoded slash, backslash or NUL")]
    Ambiguous,
    /// The path does not start with `/`.
    #[error("path is not absolute")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("path contains a malformed percent-escape")]
    BadEscape,
    /// `..;x` or `.;x`: a dot segment with a path parameter, which some servers
    /// (Tomcat, Spring) resolve as a dot segment after the check has passed.
    #[error("path contains a parameter on a dot segment")]
    DotSegmentParams,
}

/// Does the normalized `path` hold a dot segment with a path parameter (`/v1/..;/x`),
/// spelt with escapes or not (`/v1/..%3B/x`: a stack that decodes before it splits off
/// path parameters reads it as `..;`)?
pub fn has_dot_segment_params(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        decoded
            .split_once(';')
            .is_some_and(|(name, _)| name == "." || name == "..")
    })
}

/// One `allowed_paths` entry: a glob over `/`-separated segments (the one matcher,
/// [`tokenizer_core::glob`]).
#[derive(Clone, PartialEq, Eq)]
pub struct PathGlob(Glob);

impl PathGlob {
    /// Compile an `allowed_paths` entry; it must start with `/`.
    pub fn new(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("allowed_paths entry {text:?} must start with /"));
        }
        Glob::new(text, Some('/')).map(Self)
    }

    /// Does the (already normalized) `path` match?
    pub fn matches(&self, path: &str) -> bool {
        path.starts_with('/') && self.0.matches(path)
    }
}

/// Normalize an absolute request path (no query).
pub fn normalize(path: &str) -> Result<String, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path.contains('\\') || path.contains('\0') {
        return Err(PathError::Ambiguous);
    }
    let decoded = decode_unreserved(path)?;
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = decoded[1..].split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {}
            ".." => {
                out.pop();
            }
            "" if i != last => {} // duplicate slash
            s => out.push(s),
        }
    }
    let trailing = matches!(segments.last(), Some(&"." | &".."));
    let mut result = format!("/{}", out.join("/"));
    if trailing && !result.ends_with('/') {
        result.push('/');
    }
    Ok(result)
}

/// Decode `%XX` for unreserved characters; upper-case other escapes; refuse escapes
/// of `/`, `\` and NUL, and a `%` without two hex digits after it (a literal `%` would
/// join the characters decoded after it into a new escape, which the upstream decodes).
fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            // Copy up to the next escape as it is, multi-byte characters included.
            let end = path[i..].find('%').map_or(path.len(), |n| i + n);
            out.push_str(&path[i..end]);
            i = end;
            continue;
        }
        match tokenizer_core::percent::escape_at(bytes, i).ok_or(PathError::BadEscape)? {
            b'/' | b'\\' | 0 => return Err(PathError::Ambiguous),
            b if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => out.push(char::from(b)),
            b => out.push_str(&format!("%{b:02X}")),
        }
        i += 3;
    }
    Ok(out)
}

impl fmt::Debug for PathGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0.as_str())
    }
}

impl Serialize for PathGlob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for PathGlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(g: &str) -> PathGlob {
        PathGlob::new(g).unwrap()
    }

    #[test]
    fn single_and_double_stars() {
        assert!(glob("/v1/models").matches("/v1/models"));
        assert!(!glob("/v1/models").matches("/v1/models/x"));
        assert!(glob("/v1/*").matches("/v1/models"));
        assert!(!glob("/v1/*").matches("/v1/models/x"));
        assert!(!glob("/v1/*").matches("/v1"));
        assert!(glob("/v1/**").matches("/v1"));
        assert!(glob("/v1/**").matches("/v1/a/b/c"));
        assert!(!glob("/v1/**").matches("/v2/a"));
        assert!(glob("/repos/*/*/issues").matches("/repos/o/r/issues"));
        assert!(glob("/**/issues").matches("/a/b/issues"));
        assert!(glob("/files/*.json").matches("/files/a.json"));
        assert!(!glob("/files/*.json").matches("/files/a.txt"));
        assert!(glob("/a*b*c").matches("/abxbc"));
        assert!(!glob("/a*b*c").matches("/ac"));
        assert!(PathGlob::new("v1").is_err());
    }

    #[test]
    fn normalization() {
        assert_eq!(normalize("/v1/../admin").unwrap(), "/admin");
        assert_eq!(normalize("/v1/./models").unwrap(), "/v1/models");
        assert_eq!(normalize("/../../etc").unwrap(), "/etc");
        assert_eq!(normalize("//v1///models").unwrap(), "/v1/models");
        assert_eq!(normalize("/v1/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(normalize("/v1/%2E%2E/admin").unwrap(), "/admin");
        assert_eq!(normalize("/v1/models/").unwrap(), "/v1/models/");
        assert_eq!(normalize("/v1/a/..").unwrap(), "/v1/");
        assert_eq!(normalize("/a%20b").unwrap(), "/a%20b");
        assert_eq!(normalize("/a%7e").unwrap(), "/a~");
        assert_eq!(normalize("/").unwrap(), "/");
        for bad in ["/v1/..%2fadmin", "/a%5Cb", "/a\\b", "/a%00"] {
            assert_eq!(normalize(bad), Err(PathError::Ambiguous), "{bad}");
        }
        assert_eq!(normalize("v1"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn many_double_stars_match_in_polynomial_time() {
        // Reproduced as a libFuzzer timeout by the `authority` fuzz target: matching by
        // backtracking took 26 s here (debug build) and grows twentyfold with each two
        // more `**`, and a secret's globs are chosen by whoever seals it.
        let g = glob(&format!("{}/z", "/**".repeat(10)));
        let path = format!("/{}", ["a"; 30].join("/"));
        let start = std::time::Instant::now();
        assert!(!g.matches(&path));
        assert!(g.matches(&format!("{path}/z")));
        assert!(glob("/**/a/**/b/**").matches("/x/a/y/a/b/z"));
        assert!(!glob("/**/a/**/b").matches("/b/a"));
        assert!(
            start.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn non_ascii_paths_are_kept_as_sent() {
        // Found by the `authority` fuzz target: each byte of a multi-byte character
        // became a character of its own, so `/café` was forwarded as `/cafÃ©`, and
        // normalizing twice gave a third spelling.
        assert_eq!(
            normalize("/caf\u{e9}/%7e/\u{1f600}").unwrap(),
            "/caf\u{e9}/~/\u{1f600}"
        );
        // The input found, less its malformed escapes (refused since, see below).
        let found = "/\u{f}e1/\u{3}ve21/api\u{486}est:e6\u{12}\u{3}/fie";
        let once = normalize(found).unwrap();
        assert_eq!(once, found);
        assert_eq!(normalize(&once).unwrap(), once);
    }

    #[test]
    fn malformed_escapes_are_refused() {
        // Found by the `authority` fuzz target: a literal `%` followed by an escape of a
        // hex digit decoded into a new escape (`%%32e` → `%2e`), so `/v1/**` let
        // `/v1/%2e%2e/admin` through to an upstream that decodes it to `/admin`; and
        // `%+2` read as the escape `%02`.
        for bad in [
            "/v1/%%32e%%32e/admin",
            "/22u/%+2u",
            "/a%",
            "/a%4",
            "/a%g0",
            "/%%6222",
        ] {
            assert_eq!(normalize(bad), Err(PathError::BadEscape), "{bad}");
        }
        assert_eq!(normalize("/a%25%32e").unwrap(), "/a%252e");
    }

    #[test]
    fn dot_segments_with_parameters_are_spotted() {
        for bad in [
            "/v1/..;/admin",
            "/v1/.;x/a",
            "/v1/%2e%2e;/admin",
            "/..;",
            "/v1/..%3B/admin",
            "/v1/..%3b/admin",
            "/v1/%2e%2e%3b/admin",
            "/v1/.%3Bx/a",
        ] {
            let n = normalize(bad).unwrap();
            assert!(has_dot_segment_params(&n), "{bad} -> {n}");
        }
        for ok in [
            "/v1/a;b/c",
            "/v1/...;/x",
            "/v1/models",
            "/a/..b;c",
            "/a/..%3Bb/../c",
            "/v1/a%3Bb",
        ] {
            assert!(!has_dot_segment_params(&normalize(ok).unwrap()), "{ok}");
        }
    }

    #[test]
    fn escapes_cannot_leave_an_allowed_prefix() {
        let g = glob("/v1/**");
        for attempt in [
            "/v1/../admin",
            "/v1/%2e%2e/admin",
            "/v1/./../admin",
            "/v1//../../admin",
        ] {
            let n = normalize(attempt).unwrap();
            assert!(!g.matches(&n), "{attempt} -> {n}");
        }
    }
}
