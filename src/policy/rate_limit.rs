//! `rate_limit` (`"60/min"`): per-secret limits enforced in memory, per instance.
//!
//! The algorithm is GCRA (a token bucket that stores one instant per key): a burst of up
//! to N requests, refilled evenly over the period. Hand-written because the rate-limit
//! crates (governor) fix one quota per limiter, while here every secret carries its own.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Prune idle keys once the table holds this many.
const PRUNE_AT: usize = 10_000;

/// `N/unit`, unit one of `s`, `sec`, `second`, `min`, `minute`, `h`, `hour`, `day`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    count: u32,
    period: Duration,
}

impl RateLimit {
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
    fn interval(&self) -> Duration {
        self.period / self.count
    }
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_wire())
    }
}

impl RateLimit {
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

/// Per-key theoretical arrival times.
#[derive(Default)]
pub struct Limiter {
    tat: Mutex<HashMap<String, Instant>>,
}

impl Limiter {
    /// Take one request for `key` under `limit`; on refusal, how long to wait.
    pub fn check(&self, key: &str, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        let interval = limit.interval();
        let burst = limit.period.saturating_sub(interval);
        let mut table = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= PRUNE_AT {
            table.retain(|_, tat| *tat > now);
        }
        let tat = table.get(key).copied().unwrap_or(now).max(now);
        let allow_at = tat.checked_sub(burst).unwrap_or(now);
        if allow_at > now {
            return Err(allow_at - now);
        }
        table.insert(key.to_owned(), tat + interval);
        Ok(())
    }
}

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

    #[test]
    fn allows_a_burst_then_refills_evenly() {
        let limiter = Limiter::default();
        let limit = RateLimit::parse("3/min").unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("k", limit, t0).is_ok());
        }
        let wait = limiter.check("k", limit, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(20));
        // Another key is independent.
        assert!(limiter.check("other", limit, t0).is_ok());
        // One slot frees every 20 s.
        assert!(
            limiter
                .check("k", limit, t0 + Duration::from_secs(20))
                .is_ok()
        );
        assert!(
            limiter
                .check("k", limit, t0 + Duration::from_secs(21))
                .is_err()
        );
    }
}
