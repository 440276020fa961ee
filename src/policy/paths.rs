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

/// A path that cannot be normalized unambiguously.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("path contains an encoded slash, backslash or NUL")]
    Ambiguous,
    #[error("path is not absolute")]
    NotAbsolute,
}

/// One `allowed_paths` entry.
#[derive(Clone, PartialEq, Eq)]
pub struct PathGlob {
    text: String,
    segments: Vec<String>,
}

impl PathGlob {
    pub fn new(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("allowed_paths entry {text:?} must start with /"));
        }
        Ok(Self {
            text: text.to_owned(),
            segments: text[1..].split('/').map(str::to_owned).collect(),
        })
    }

    /// Does the (already normalized) `path` match?
    pub fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let segments: Vec<&str> = rest.split('/').collect();
        match_segments(&self.segments, &segments)
    }
}

fn match_segments(glob: &[String], path: &[&str]) -> bool {
    match glob.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_segments(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((seg, path_rest)) => match_segment(first, seg) && match_segments(rest, path_rest),
            None => false,
        },
    }
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
/// of `/`, `\` and NUL.
fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i] as char);
            i += 1;
            continue;
        }
        let hex = path
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b'/' | b'\\' | 0) => return Err(PathError::Ambiguous),
            Some(b) if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => out.push(b as char),
            Some(b) => out.push_str(&format!("%{b:02X}")),
            None => out.push('%'),
        }
        i += if hex.is_some() { 3 } else { 1 };
    }
    Ok(out)
}

impl fmt::Debug for PathGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl Serialize for PathGlob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
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
