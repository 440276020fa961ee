//! Why a macaroon was refused. Messages are short, fixed texts plus request facts; they
//! never include key material, tails or whole tokens.

/// Why no macaroon authorized the request (or a token could not be read or changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacaroonError {
    /// No `fm2_`/`fm1r_`/`fm1a_` token for this tokenizer was presented.
    #[error("no macaroon presented")]
    Missing,
    /// The sealed `macaroon_auth` key is empty, so anyone could mint tokens; fail closed.
    #[error("macaroon_auth key is empty")]
    EmptyKey,
    /// A token looked like a macaroon but its base64 or msgpack is broken.
    #[error("malformed macaroon: {0}")]
    Malformed(&'static str),
    /// A tokenizer macaroon whose key id is not this secret's key.
    #[error("macaroon was minted with a different key")]
    UnknownKey,
    /// The HMAC chain does not end in the token's tail: tampered, or the wrong key.
    #[error("bad macaroon signature")]
    BadSignature,
    /// A request caveat does not allow this request, e.g. `method GET not allowed`.
    #[error("{what} {value} not allowed")]
    Denied {
        /// `method`, `path` or `host`.
        what: &'static str,
        /// The request's value, as the caveat saw it.
        value: String,
    },
    /// The validity window ended.
    #[error("macaroon expired")]
    Expired,
    /// The validity window has not started.
    #[error("macaroon not yet valid")]
    NotYetValid,
    /// A `RequestPathPattern` caveat holds a pattern that does not compile.
    #[error("macaroon path pattern is not a valid regular expression")]
    BadPattern,
    /// A caveat this tokenizer cannot check (third-party, bind-to-parent, unknown): deny.
    #[error("unsupported caveat type {0}")]
    UnsupportedCaveat(u64),
    /// A third-party caveat without a discharge that verifies.
    #[error("no matching discharge token")]
    NoDischarge,
    /// A discharge bound to another token (or a bind caveat outside a discharge).
    #[error("discharge bound to different parent token")]
    WrongParent,
    /// Caveats cannot be added to a finalized proof macaroon.
    #[error("caveats cannot be added to a finalized proof macaroon")]
    Finalized,
}

// === impl MacaroonError ===

impl MacaroonError {
    /// How far a token got before it was refused. With several tokens, the error of the
    /// one that got furthest is the useful one to report.
    pub(super) fn progress(&self) -> u8 {
        match self {
            Self::Missing | Self::EmptyKey => 0,
            Self::Malformed(_) => 1,
            Self::UnknownKey => 2,
            Self::BadSignature => 3,
            Self::Finalized => 3,
            Self::NoDischarge | Self::WrongParent => 4,
            Self::Denied { .. }
            | Self::Expired
            | Self::NotYetValid
            | Self::BadPattern
            | Self::UnsupportedCaveat(_) => 4,
        }
    }

    /// The error that got further of `self` and `other` (the first on a tie).
    pub(super) fn furthest(self, other: Self) -> Self {
        if other.progress() > self.progress() {
            other
        } else {
            self
        }
    }
}
