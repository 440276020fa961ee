//! A secret's limits: `rate_limit` (`"60/min"`) and `max_requests` (a lifetime cap), and
//! the counters that enforce them in this process ([`Limiter`], in `table`). With
//! `REDIS_URL` the fleet enforces them instead (the fleet crate), with the same
//! semantics; this table is then the fallback while Redis is unreachable
//! (`REDIS_FAILURE=open`).
//!
//! The rate algorithm is GCRA (a token bucket that stores one instant per key): a burst
//! of up to N requests, refilled evenly over the period. What one request does to a
//! counter is described once, in [`steps`], which the fleet's Redis script shares. Hand-written because the
//! rate-limit crates (governor) fix one quota per limiter, while here every secret
//! carries its own.
//!
//! Anyone can seal secrets with limits, so the counters are kept in **pools**, one per
//! caller identity a secret demands ([`Limit::pool`]: its `bearer_auth` digest, Fly-Src
//! rule, macaroon key…; every `no_auth` secret shares one anonymous pool). When the
//! counters are all in use, room is made in the largest pool, so a caller that floods
//! the table with secrets of its own loses its own counters, not anyone else's.

pub mod steps;
mod table;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `N/unit`, unit one of `s`, `sec`, `second`, `min`, `minute`, `h`, `hour`, `day`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    count: u32,
    period: Duration,
}

impl RateLimit {
    /// Parse `N/unit`: `N` at least 1, unit `s`/`sec`/`second`, `m`/`min`/`minute`,
    /// `h`/`hour` or `d`/`day`. The error quotes `text`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("rate_limit {text:?}: want N/s, N/min, N/hour or N/day");
        let (count, unit) = text.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(bad());
        }
        Ok(Self {
            count,
            period: Duration::from_secs(period),
        })
    }

    /// Time between evenly spaced requests.
    pub fn interval(&self) -> Duration {
        self.period / self.count
    }
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_wire())
    }
}

impl RateLimit {
    /// How far ahead of now a counter may run: a full burst.
    pub fn burst(&self) -> Duration {
        self.period.saturating_sub(self.interval())
    }

    fn to_wire(self) -> String {
        let unit = match self.period.as_secs() {
            1 => "s",
            60 => "min",
            3600 => "hour",
            _ => "day",
        };
        format!("{}/{unit}", self.count)
    }
}

impl Serialize for RateLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_wire())
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// One secret's limits for one request, named by its counter key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// The secret's counter name (see [`crate::secret::Unsealed::limit_key`]).
    pub key: [u8; 32],
    /// Whose counters these are: a keyed hash of the caller identity the secret demands
    /// (see [`crate::secret::Unsealed::limit_pool`]). A full table makes room in the
    /// largest pool.
    pub pool: [u8; 32],
    /// The secret's `rate_limit`, if any.
    pub rate: Option<RateLimit>,
    /// The secret's `max_requests` (requests ever allowed), if any.
    pub max_requests: Option<u64>,
    /// How long a `max_requests` count must be kept: until the secret's `expires_at`,
    /// and at most `MAX_REQUESTS_RETENTION` from its last use.
    pub keep_uses: Duration,
}

/// Why a request was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The secret's limit is spent; retry after this long.
    Wait(Duration),
    /// The request itself carries more limited secrets than `RATE_LIMIT_KEYS` counters:
    /// no room can be made without dropping one of its own.
    Full(Duration),
    /// The secret's `max_requests` are used up.
    Exhausted,
    /// The fleet's counters cannot be consulted: Redis is unreachable and
    /// `REDIS_FAILURE=closed`, or Redis answered with an error.
    Unavailable,
}

pub use table::Limiter;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(
            RateLimit::parse("60/min").unwrap().interval(),
            Duration::from_secs(1)
        );
        assert_eq!(
            RateLimit::parse("10/s").unwrap().interval(),
            Duration::from_millis(100)
        );
        assert_eq!(
            RateLimit::parse(" 24 / day ").unwrap().interval(),
            Duration::from_secs(3600)
        );
        for bad in ["", "60", "x/min", "0/min", "5/week", "-1/s"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            serde_json::to_string(&RateLimit::parse("5/minute").unwrap()).unwrap(),
            "\"5/min\""
        );
    }
}
