//! `Proxy-Authorization` candidates: every credential the caller presented.
//!
//! For each header line, split at the first space into scheme and rest (the rest is not
//! trimmed; schemes are case-sensitive, as in Go): `Bearer x` and `FlyV1 x` give `x`;
//! `Basic b64` gives the password and, if it URL-decodes, the decoded password too.
//! Other lines are ignored.

use http::HeaderMap;
use http::header::PROXY_AUTHORIZATION;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use tokenizer_core::{SecretString, b64};

/// The candidates of one request, with their SHA-256 digests computed once.
#[derive(Debug, Default)]
pub struct Candidates {
    items: Vec<Candidate>,
}

#[derive(Debug)]
struct Candidate {
    value: SecretString,
    digest: Zeroizing<[u8; 32]>,
}

impl Candidates {
    /// Collect candidates from every `Proxy-Authorization` line of each header map.
    pub fn from_headers<'a>(maps: impl IntoIterator<Item = &'a HeaderMap>) -> Self {
        let mut out = Self::default();
        for map in maps {
            for line in map.get_all(PROXY_AUTHORIZATION) {
                out.add_line(line.as_bytes());
            }
        }
        out
    }

    fn add_line(&mut self, line: &[u8]) {
        let Ok(line) = std::str::from_utf8(line) else {
            return;
        };
        let Some((scheme, rest)) = line.split_once(' ') else {
            return;
        };
        match scheme {
            "Bearer" | "FlyV1" => self.push(rest.to_owned()),
            "Basic" => {
                let Ok(decoded) = b64::decode(rest).map(Zeroizing::new) else {
                    return;
                };
                let Ok(text) = std::str::from_utf8(&decoded) else {
                    return;
                };
                let Some((_user, password)) = text.split_once(':') else {
                    return;
                };
                self.push(password.to_owned());
                if let Some(unescaped) = query_unescape(password) {
                    self.push(unescaped);
                }
            }
            _ => {}
        }
    }

    fn push(&mut self, value: String) {
        let digest = Zeroizing::new(Sha256::digest(value.as_bytes()).into());
        self.items.push(Candidate {
            value: SecretString::new(value),
            digest,
        });
    }

    /// SHA-256 digests of the candidates.
    pub fn digests(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.items.iter().map(|c| &*c.digest)
    }

    /// The raw candidate values (macaroon tokens, for example).
    pub fn values(&self) -> impl Iterator<Item = &SecretString> {
        self.items.iter().map(|c| &c.value)
    }

    /// Did the request present no credential at all?
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Go's `url.QueryUnescape`, as text; `None` on a malformed escape or non-UTF-8 result.
fn query_unescape(s: &str) -> Option<String> {
    let bytes = Zeroizing::new(tokenizer_core::percent::query_unescape(s)?);
    String::from_utf8(bytes.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn candidates(lines: &[&str]) -> Vec<String> {
        let mut map = HeaderMap::new();
        for l in lines {
            map.append(PROXY_AUTHORIZATION, HeaderValue::from_str(l).unwrap());
        }
        Candidates::from_headers([&map])
            .values()
            .map(|v| v.expose().to_owned())
            .collect()
    }

    #[test]
    fn schemes() {
        assert_eq!(candidates(&["Bearer abc"]), ["abc"]);
        assert_eq!(candidates(&["FlyV1 fm2_x"]), ["fm2_x"]);
        assert_eq!(
            candidates(&["bearer abc", "Token x", "Bearer"]),
            Vec::<String>::new()
        );
        assert_eq!(candidates(&["Bearer  two"]), [" two"]);
    }

    #[test]
    fn basic_gives_password_raw_and_unescaped() {
        let b = b64::encode(b"user:a%2Bb+c");
        assert_eq!(candidates(&[&format!("Basic {b}")]), ["a%2Bb+c", "a+b c"]);
        let bad = b64::encode(b"user:100%");
        assert_eq!(candidates(&[&format!("Basic {bad}")]), ["100%"]);
        let plain = b64::encode(b"user:pw");
        assert_eq!(candidates(&[&format!("Basic {plain}")]), ["pw", "pw"]);
        assert!(candidates(&["Basic !!!"]).is_empty());
        assert!(candidates(&[&format!("Basic {}", b64::encode(b"nocolon"))]).is_empty());
    }
}
