//! superfly/macaroon tokens, as `macaroon_auth` uses them (wire-compat spec §5).
//!
//! A macaroon is `fm2_` + base64 of msgpack `[nonce, location, caveats, tail]`. The tail
//! is an HMAC-SHA256 chain keyed first by the secret's key, then by the running tail over
//! each caveat: anyone can add a caveat (attenuate), nobody can remove one.
//!
//! Tokenizer's macaroons have location `tokenizer` and key id `sha256(key)[:16]`, where
//! the key is the sealed `macaroon_auth.key`. A `Proxy-Authorization` candidate may hold
//! several comma-separated tokens; the request is authorized when ANY tokenizer macaroon
//! with this key id verifies and ALL its caveats allow the request. Caveats: method,
//! escaped path (exact, prefix, unanchored pattern), Host, and a validity window. A
//! third-party caveat is satisfied by a discharge macaroon in the same candidate
//! (`FlyV1 fm2_<token>,fm2_<discharge>`), whose caveats then apply too, as in Go's
//! library; any other caveat type denies.
//!
//! Differences from Go, all failing closed: an empty key authorizes nothing; Fly.io's
//! `FromMachineSource` caveat is not checked.

mod bundle;
mod caveat;
mod caveat_set;
mod error;
mod token;
mod wire;

#[cfg(test)]
mod tests;

use sha2::{Digest, Sha256};

pub use bundle::{Token, join_tokens, parse_tokens, strip_scheme, to_header};
pub use caveat::{Caveat, compile_pattern};
pub use caveat_set::CaveatSet;
pub use error::MacaroonError;
pub use token::Macaroon;

use crate::auth::Candidates;

/// The location of tokenizer's macaroons.
pub const LOCATION: &str = "tokenizer";

/// The `Authorization` scheme of macaroon bundles.
pub const SCHEME: &str = "FlyV1";

/// What the caveats look at.
#[derive(Clone, Copy, Debug)]
pub struct RequestFacts<'a> {
    /// The request method, as sent (caveats compare it case-sensitively).
    pub method: &'a str,
    /// The escaped path (Go's `URL.EscapedPath()`), without the query.
    pub path: &'a str,
    /// The Host as the client wrote it, port included.
    pub host: &'a str,
}

/// Tokenizer's key id for `key`: the first 16 bytes of its SHA-256.
pub fn key_id(key: &[u8]) -> [u8; 16] {
    let digest = Sha256::digest(key);
    let mut kid = [0u8; 16];
    kid.copy_from_slice(&digest[..16]);
    kid
}

/// A new tokenizer macaroon for `key` with `caveats`: random nonce, not a proof.
pub fn mint(key: &[u8], caveats: Vec<Caveat>) -> Macaroon {
    let mut macaroon = Macaroon::new(key, &key_id(key), LOCATION);
    macaroon.add(caveats);
    macaroon
}

/// Does some candidate hold a tokenizer macaroon minted with `key` whose caveats all
/// allow the request at `now_unix`? If not, the refusal of the token that got furthest.
pub fn authorize(
    key: &[u8],
    candidates: &Candidates,
    facts: &RequestFacts<'_>,
    now_unix: i64,
) -> Result<(), MacaroonError> {
    if key.is_empty() {
        return Err(MacaroonError::EmptyKey);
    }
    let kid = key_id(key);
    let mut refusal = MacaroonError::Missing;
    for candidate in candidates.values() {
        match authorize_bundle(key, &kid, candidate.expose(), facts, now_unix) {
            Ok(()) => return Ok(()),
            Err(e) => refusal = refusal.furthest(e),
        }
    }
    Err(refusal)
}

/// One candidate: a bundle of tokens, any of which may authorize the request.
fn authorize_bundle(
    key: &[u8],
    kid: &[u8; 16],
    header: &str,
    facts: &RequestFacts<'_>,
    now_unix: i64,
) -> Result<(), MacaroonError> {
    let tokens = parse_tokens(header)?;
    let macaroons = tokens.iter().filter_map(|t| match t {
        Token::Macaroon(m) => Some(m),
        Token::Other(_) => None,
    });
    // Macaroons for other locations are discharges (or someone else's tokens).
    let (permissions, discharges): (Vec<&Macaroon>, Vec<&Macaroon>) =
        macaroons.partition(|m| m.location() == LOCATION);
    let mut refusal = MacaroonError::Missing;
    for macaroon in permissions {
        match permits(macaroon, &discharges, key, kid, facts, now_unix) {
            Ok(()) => return Ok(()),
            Err(e) => refusal = refusal.furthest(e),
        }
    }
    Err(refusal)
}

/// One tokenizer macaroon: right key, genuine, discharged, every caveat satisfied.
fn permits(
    macaroon: &Macaroon,
    discharges: &[&Macaroon],
    key: &[u8],
    kid: &[u8; 16],
    facts: &RequestFacts<'_>,
    now_unix: i64,
) -> Result<(), MacaroonError> {
    if macaroon.kid() != kid {
        return Err(MacaroonError::UnknownKey);
    }
    macaroon
        .verify_discharged(key, discharges)?
        .check(facts, now_unix)
}
