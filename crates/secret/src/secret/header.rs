//! `Proxy-Tokenizer: <base64 sealed secret>[; <params JSON object>]`.
//!
//! One header line is one secret (lines are never split on commas). The value is split
//! at the first `;`, both parts trimmed; params must be a JSON object of strings.

use http::HeaderValue;

use super::SecretError;

/// The header that carries sealed secrets.
pub const PROXY_TOKENIZER: &str = "proxy-tokenizer";

pub use tokenizer_core::Params;

/// The longest params part taken: params are short (a header name, a format, a
/// placeholder), and each one can cost work in proportion to its length.
pub const MAX_PARAMS_LEN: usize = 16 * 1024;

/// One parsed header line: the sealed secret (still base64) and its params.
#[derive(Debug, PartialEq, Eq)]
pub struct TokenizerHeader<'a> {
    /// The sealed secret, base64, trimmed: the value up to the first `;`.
    pub sealed: &'a str,
    /// The params after the `;`; empty when there are none, or they are `""` or `null`.
    pub params: Params,
}

impl<'a> TokenizerHeader<'a> {
    /// Split one `Proxy-Tokenizer` line. [`SecretError::BadHeader`] for an empty secret
    /// or a value that is not UTF-8; [`SecretError::BadParams`] for params over 16 KiB
    /// or not a JSON object of strings.
    pub fn parse(value: &'a HeaderValue) -> Result<Self, SecretError> {
        let text = std::str::from_utf8(value.as_bytes()).map_err(|_| SecretError::BadHeader)?;
        let (sealed, params) = match text.split_once(';') {
            Some((sealed, params)) => (sealed.trim(), Some(params.trim())),
            None => (text.trim(), None),
        };
        if sealed.is_empty() {
            return Err(SecretError::BadHeader);
        }
        if params.is_some_and(|p| p.len() > MAX_PARAMS_LEN) {
            return Err(SecretError::BadParams);
        }
        // As in Go, an empty params part or `null` means no params.
        let params = match params {
            Some("") | None => Params::new(),
            Some(json) => serde_json::from_str::<Option<Params>>(json)
                .map_err(|_| SecretError::BadParams)?
                .unwrap_or_default(),
        };
        Ok(Self { sealed, params })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Result<(String, Params), SecretError> {
        let hv = HeaderValue::from_str(v).unwrap();
        TokenizerHeader::parse(&hv).map(|h| (h.sealed.to_owned(), h.params))
    }

    #[test]
    fn secret_alone_and_with_params() {
        assert_eq!(parse(" abc= ").unwrap(), ("abc=".to_owned(), Params::new()));
        let (s, p) = parse(r#"abc=; {"dst":"Foo","fmt":"%s"}"#).unwrap();
        assert_eq!(s, "abc=");
        assert_eq!(p["dst"], "Foo");
        assert_eq!(p["fmt"], "%s");
    }

    #[test]
    fn empty_or_null_params_are_no_params() {
        assert_eq!(parse("abc;").unwrap(), ("abc".to_owned(), Params::new()));
        assert_eq!(
            parse("abc; null").unwrap(),
            ("abc".to_owned(), Params::new())
        );
    }

    #[test]
    fn bad_headers() {
        assert_eq!(parse("  ; {}"), Err(SecretError::BadHeader));
        assert_eq!(parse(""), Err(SecretError::BadHeader));
        assert_eq!(parse(r#"abc; {"dst":1}"#), Err(SecretError::BadParams));
        assert_eq!(parse("abc; [1]"), Err(SecretError::BadParams));
        assert_eq!(parse("abc; x"), Err(SecretError::BadParams));
        let long = format!(r#"abc; {{"placeholder":"{}"}}"#, "x".repeat(MAX_PARAMS_LEN));
        assert_eq!(parse(&long), Err(SecretError::BadParams));
    }
}
