//! Caveats: tokenizer's five request caveats, the library's `ValidityWindow`,
//! third-party caveats and the bind-to-parent caveat of discharges (both satisfied by
//! verification, see [`super::Macaroon::verify_discharged`]), and every other type kept
//! byte for byte (so re-encoding and attenuation preserve it) and denied.
//!
//! On the wire a caveat is a type (uint) and a body: a `[]string` for the request
//! caveats, `[not_before, not_after]` (unix seconds) for `ValidityWindow`. In JSON it is
//! `{"type": …, "body": …}` where `type` is the decimal number for user-defined types and
//! the registered name for library ones, as Go's `CaveatSet.MarshalJSON` writes it.

use std::borrow::Cow;

use regex::Regex;

use crate::policy::go_regexp::GoRegexError;
use serde::Deserialize;
use serde_json::Value;

use super::wire::{Reader, Writer};
use super::{MacaroonError, RequestFacts};

/// Go's `macaroon.CavMinUserDefined`: the first type free for applications.
const USER_DEFINED: u64 = 1 << 48;

/// One restriction on what a macaroon may be used for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caveat {
    /// The request method is one of these (exact, case-sensitive).
    RequestMethod(Vec<String>),
    /// The escaped request path is one of these (exact).
    RequestPath(Vec<String>),
    /// The escaped request path starts with one of these.
    RequestPathPrefix(Vec<String>),
    /// Some pattern matches somewhere in the escaped request path (unanchored).
    RequestPathPattern(Vec<String>),
    /// The request's Host, as the client wrote it (port included), is one of these.
    RequestHost(Vec<String>),
    /// The token is valid from `not_before` to `not_after`, unix seconds, inclusive.
    ValidityWindow {
        /// The first valid second (Go's `NotBefore`; JSON `not_before`).
        not_before: i64,
        /// The last valid second (Go's `NotAfter`; JSON `not_after`).
        not_after: i64,
    },
    /// A discharge from the third party at `location` must come with the token. The
    /// verifier key is the discharge's root key sealed (ChaCha20-Poly1305) under the
    /// token's HMAC chain just before this caveat; the ticket, sealed to the third party,
    /// is the discharge's key id.
    ThirdParty {
        /// The third party's location, which issues the discharge (JSON `Location`).
        location: String,
        /// The discharge's root key, sealed (JSON `VerifierKey`, base64).
        verifier_key: Vec<u8>,
        /// The ticket for the third party, which becomes the discharge's key id (JSON
        /// `Ticket`, base64).
        ticket: Vec<u8>,
    },
    /// In a discharge: a prefix of a SHA-256 of one of its parent's HMAC chain values.
    BindToParent(Vec<u8>),
    /// Any other type (third-party, bind-to-parent, unknown): its msgpack body as received.
    /// It always denies.
    Unsupported {
        /// The caveat's numeric type.
        type_id: u64,
        /// Its msgpack-encoded body, byte for byte as received.
        body: Vec<u8>,
    },
}

/// `ValidityWindow`'s JSON body.
#[derive(Deserialize)]
struct WindowJson {
    #[serde(default)]
    not_before: i64,
    #[serde(default)]
    not_after: i64,
}

// === impl Caveat ===

impl Caveat {
    /// Type of [`Caveat::ValidityWindow`] (the library's `CavValidityWindow`).
    pub const VALIDITY_WINDOW: u64 = 4;
    /// Type of [`Caveat::ThirdParty`] (the library's `Cav3P`).
    pub const THIRD_PARTY: u64 = 11;
    /// Type of [`Caveat::BindToParent`] (the library's `CavBindToParentToken`).
    pub const BIND_TO_PARENT_TOKEN: u64 = 12;
    /// Type of [`Caveat::RequestMethod`] (tokenizer's `CavRequestMethod`, 2^48).
    pub const REQUEST_METHOD: u64 = USER_DEFINED;
    /// Type of [`Caveat::RequestPath`] (tokenizer's `CavRequestPath`, 2^48 + 1).
    pub const REQUEST_PATH: u64 = USER_DEFINED + 1;
    /// Type of [`Caveat::RequestPathPrefix`] (tokenizer's `CavRequestPathPrefix`, 2^48 + 2).
    pub const REQUEST_PATH_PREFIX: u64 = USER_DEFINED + 2;
    /// Type of [`Caveat::RequestPathPattern`] (tokenizer's `CavRequestPathPattern`,
    /// 2^48 + 3).
    pub const REQUEST_PATH_PATTERN: u64 = USER_DEFINED + 3;
    /// Type of [`Caveat::RequestHost`] (tokenizer's `CavRequestHost`, 2^48 + 4).
    pub const REQUEST_HOST: u64 = USER_DEFINED + 4;

    /// The numeric caveat type.
    pub fn type_id(&self) -> u64 {
        match self {
            Self::RequestMethod(_) => Self::REQUEST_METHOD,
            Self::RequestPath(_) => Self::REQUEST_PATH,
            Self::RequestPathPrefix(_) => Self::REQUEST_PATH_PREFIX,
            Self::RequestPathPattern(_) => Self::REQUEST_PATH_PATTERN,
            Self::RequestHost(_) => Self::REQUEST_HOST,
            Self::ValidityWindow { .. } => Self::VALIDITY_WINDOW,
            Self::ThirdParty { .. } => Self::THIRD_PARTY,
            Self::BindToParent(_) => Self::BIND_TO_PARENT_TOKEN,
            Self::Unsupported { type_id, .. } => *type_id,
        }
    }

    /// The JSON `type`: the decimal number for user-defined types, the name Go registers
    /// for library types.
    pub fn json_type(&self) -> Cow<'static, str> {
        match self.type_id() {
            Self::VALIDITY_WINDOW => "ValidityWindow".into(),
            Self::THIRD_PARTY => "3P".into(),
            Self::BIND_TO_PARENT_TOKEN => "BindToParentToken".into(),
            n => n.to_string().into(),
        }
    }

    /// `0x92 ‖ type ‖ body`: the caveat as a one-element caveat set, the bytes the MAC
    /// chain covers. Smallest msgpack forms, as Go writes them.
    pub(super) fn pack(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.array_len(2);
        w.uint(self.type_id());
        match self {
            Self::RequestMethod(v)
            | Self::RequestPath(v)
            | Self::RequestPathPrefix(v)
            | Self::RequestPathPattern(v)
            | Self::RequestHost(v) => {
                w.array_len(v.len());
                for s in v {
                    w.str(s);
                }
            }
            Self::ValidityWindow {
                not_before,
                not_after,
            } => {
                w.array_len(2);
                w.sint(*not_before);
                w.sint(*not_after);
            }
            Self::ThirdParty {
                location,
                verifier_key,
                ticket,
            } => {
                w.array_len(3);
                w.str(location);
                w.bin(verifier_key);
                w.bin(ticket);
            }
            Self::BindToParent(id) => w.bin(id),
            Self::Unsupported { body, .. } => w.raw(body),
        }
        w.into_vec()
    }

    /// The caveat of type `type_id` whose body is the msgpack value `body`. A body that
    /// does not fit its type makes the whole token malformed, as in Go.
    pub(super) fn unpack(type_id: u64, body: &[u8]) -> Result<Self, MacaroonError> {
        let mut r = Reader::new(body);
        let caveat = match type_id {
            Self::REQUEST_METHOD => Self::RequestMethod(r.strings()?),
            Self::REQUEST_PATH => Self::RequestPath(r.strings()?),
            Self::REQUEST_PATH_PREFIX => Self::RequestPathPrefix(r.strings()?),
            Self::REQUEST_PATH_PATTERN => Self::RequestPathPattern(r.strings()?),
            Self::REQUEST_HOST => Self::RequestHost(r.strings()?),
            Self::VALIDITY_WINDOW => unpack_window(&mut r)?,
            Self::THIRD_PARTY => {
                if r.array_len()? != 3 {
                    return Err(MacaroonError::Malformed(
                        "a third-party caveat has 3 fields",
                    ));
                }
                Self::ThirdParty {
                    location: r.string()?,
                    verifier_key: r.bytes()?.to_vec(),
                    ticket: r.bytes()?.to_vec(),
                }
            }
            Self::BIND_TO_PARENT_TOKEN => Self::BindToParent(r.bytes()?.to_vec()),
            type_id => {
                return Ok(Self::Unsupported {
                    type_id,
                    body: body.to_vec(),
                });
            }
        };
        if !r.is_empty() {
            return Err(MacaroonError::Malformed("caveat body has trailing bytes"));
        }
        Ok(caveat)
    }

    /// Does this caveat allow the request at `now` (unix seconds)?
    pub fn check(&self, facts: &RequestFacts<'_>, now: i64) -> Result<(), MacaroonError> {
        let denied = |what, value: &str| MacaroonError::Denied {
            what,
            value: value.to_owned(),
        };
        match self {
            Self::RequestMethod(allowed) if !contains(allowed, facts.method) => {
                Err(denied("method", facts.method))
            }
            Self::RequestPath(allowed) if !contains(allowed, facts.path) => {
                Err(denied("path", facts.path))
            }
            Self::RequestPathPrefix(prefixes)
                if !prefixes.iter().any(|p| facts.path.starts_with(p.as_str())) =>
            {
                Err(denied("path", facts.path))
            }
            Self::RequestPathPattern(patterns) => {
                // Like Go, an invalid pattern denies even if a later one would match.
                for pattern in patterns {
                    let re = compile_pattern(pattern).map_err(|_| MacaroonError::BadPattern)?;
                    if re.is_match(facts.path) {
                        return Ok(());
                    }
                }
                Err(denied("path", facts.path))
            }
            Self::RequestHost(allowed) if !contains(allowed, facts.host) => {
                Err(denied("host", facts.host))
            }
            Self::ValidityWindow { not_after, .. } if now > *not_after => {
                Err(MacaroonError::Expired)
            }
            Self::ValidityWindow { not_before, .. } if now < *not_before => {
                Err(MacaroonError::NotYetValid)
            }
            // Verification satisfies these (and leaves them out of the caveats it
            // returns); met anywhere else, they deny.
            Self::ThirdParty { .. } | Self::BindToParent(_) => {
                Err(MacaroonError::UnsupportedCaveat(self.type_id()))
            }
            Self::Unsupported { type_id, .. } => Err(MacaroonError::UnsupportedCaveat(*type_id)),
            _ => Ok(()),
        }
    }

    /// `{"type": …, "body": …}`, as Go's `CaveatSet.MarshalJSON` writes one caveat.
    pub(super) fn to_json(&self) -> Value {
        let body = match self {
            Self::RequestMethod(v)
            | Self::RequestPath(v)
            | Self::RequestPathPrefix(v)
            | Self::RequestPathPattern(v)
            | Self::RequestHost(v) => Value::from(v.clone()),
            Self::ValidityWindow {
                not_before,
                not_after,
            } => serde_json::json!({ "not_before": not_before, "not_after": not_after }),
            Self::ThirdParty {
                location,
                verifier_key,
                ticket,
            } => serde_json::json!({
                "Location": location,
                "VerifierKey": tokenizer_core::b64::encode(verifier_key),
                "Ticket": tokenizer_core::b64::encode(ticket),
            }),
            Self::BindToParent(id) => Value::from(tokenizer_core::b64::encode(id)),
            Self::Unsupported { body, .. } => Reader::new(body).json().unwrap_or(Value::Null),
        };
        serde_json::json!({ "type": self.json_type(), "body": body })
    }

    /// The caveat a JSON `type` and `body` describe. `type` is a decimal number or a
    /// registered name; types this tokenizer cannot encode are refused.
    pub(super) fn from_json(type_name: &str, body: Value) -> Result<Self, String> {
        let type_id = match type_name {
            "RequestMethod" => Self::REQUEST_METHOD,
            "RequestPath" => Self::REQUEST_PATH,
            "RequestPathPrefix" => Self::REQUEST_PATH_PREFIX,
            "RequestPathPattern" => Self::REQUEST_PATH_PATTERN,
            "RequestHost" => Self::REQUEST_HOST,
            "ValidityWindow" => Self::VALIDITY_WINDOW,
            other => other
                .parse::<u64>()
                .map_err(|_| format!("unknown caveat type {other:?}"))?,
        };
        let strings = |body: Value| -> Result<Vec<String>, String> {
            match body {
                Value::Null => Ok(Vec::new()),
                body => serde_json::from_value(body).map_err(|e| e.to_string()),
            }
        };
        Ok(match type_id {
            Self::REQUEST_METHOD => Self::RequestMethod(strings(body)?),
            Self::REQUEST_PATH => Self::RequestPath(strings(body)?),
            Self::REQUEST_PATH_PREFIX => Self::RequestPathPrefix(strings(body)?),
            Self::REQUEST_PATH_PATTERN => Self::RequestPathPattern(strings(body)?),
            Self::REQUEST_HOST => Self::RequestHost(strings(body)?),
            Self::VALIDITY_WINDOW => {
                let w: WindowJson = serde_json::from_value(body).map_err(|e| e.to_string())?;
                Self::ValidityWindow {
                    not_before: w.not_before,
                    not_after: w.not_after,
                }
            }
            other => return Err(format!("unsupported caveat type {other}")),
        })
    }
}

/// Compile a `RequestPathPattern` pattern with Go's meaning (see
/// [`crate::policy::go_regexp`]).
pub fn compile_pattern(pattern: &str) -> Result<Regex, GoRegexError> {
    crate::policy::go_regexp::compile(pattern)
}

fn contains(allowed: &[String], value: &str) -> bool {
    allowed.iter().any(|a| a == value)
}

/// `ValidityWindow` is a Go struct encoded as an array; like Go's decoder, take the
/// fields that are there (missing ones are zero) and skip extra ones.
fn unpack_window(r: &mut Reader<'_>) -> Result<Caveat, MacaroonError> {
    let len = r.array_len()?;
    let mut fields = [0i64; 2];
    for i in 0..len {
        match fields.get_mut(i) {
            Some(field) => *field = r.int()?,
            None => {
                r.raw_value()?;
            }
        }
    }
    Ok(Caveat::ValidityWindow {
        not_before: fields[0],
        not_after: fields[1],
    })
}
