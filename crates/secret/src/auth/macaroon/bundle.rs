//! A token bundle: one `Proxy-Authorization` candidate holding comma-separated tokens,
//! read the way superfly/macaroon's `bundle.ParseBundle` reads it.
//!
//! Leading `Bearer `/`FlyV1 ` schemes are stripped (repeatedly, case-insensitively) from
//! the whole value; it is split on `,` and each part trimmed. A part labelled `fm2_`,
//! `fm1r_` or `fm1a_` is a macaroon and must decode; any other part is not a macaroon
//! and is kept as it is.

use super::{Macaroon, MacaroonError};
use tokenizer_core::SecretString;

/// One part of a bundle.
#[derive(Debug)]
pub enum Token {
    /// A part labelled `fm2_`, `fm1r_` or `fm1a_`, decoded.
    Macaroon(Macaroon),
    /// A part that is not labelled as a macaroon (it may be some other credential).
    Other(SecretString),
}

/// Go's `StripAuthorizationScheme`: trim, then drop leading `Bearer`/`FlyV1` schemes
/// (any case), however many there are.
pub fn strip_scheme(mut header: &str) -> &str {
    loop {
        header = header.trim();
        let Some((scheme, rest)) = header.split_once(' ') else {
            return header;
        };
        if !(scheme.eq_ignore_ascii_case("Bearer") || scheme.eq_ignore_ascii_case(super::SCHEME)) {
            return header;
        }
        header = rest;
    }
}

/// The tokens of one bundle, in order (empty parts dropped). A part labelled as a
/// macaroon that does not decode fails the whole bundle, as in Go.
pub fn parse_tokens(header: &str) -> Result<Vec<Token>, MacaroonError> {
    strip_scheme(header)
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| match super::token::payload(part) {
            Some(payload) => Macaroon::from_base64(payload).map(Token::Macaroon),
            None => Ok(Token::Other(SecretString::new(part))),
        })
        .collect()
}

/// The bundle's tokens joined with `,`, no scheme.
pub fn join_tokens(tokens: &[Token]) -> String {
    let parts: Vec<String> = tokens
        .iter()
        .map(|t| match t {
            Token::Macaroon(m) => m.encode(),
            Token::Other(s) => s.expose().to_owned(),
        })
        .collect();
    parts.join(",")
}

/// `FlyV1 ` followed by [`join_tokens`]: a whole `Proxy-Authorization` value.
pub fn to_header(tokens: &[Token]) -> String {
    format!("{} {}", super::SCHEME, join_tokens(tokens))
}
