//! A secret's limits: `rate_limit` (`"60/min"`) and `max_requests` (a lifetime cap), and
//! the counters that enforce them in this process ([`Limiter`]). With `REDIS_URL` the
//! fleet enforces them instead ([`crate::fleet`]), with the same semantics; this table is
//! then the fallback while Redis is unreachable (`REDIS_FAILURE=open`).
//!
//! The rate algorithm is GCRA (a token bucket that stores one instant per key): a burst
//! of up to N requests, refilled evenly over the period. Hand-written because the
//! rate-limit crates (governor) fix one quota per limiter, while here every secret
//! carries its own.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
    pub rate: Option<RateLimit>,
    pub max_requests: Option<u64>,
    /// How long a `max_requests` count must be kept: until the secret's `expires_at`,
    /// else `MAX_REQUESTS_RETENTION` from its last use.
    pub keep_uses: Duration,
}

/// Why a request was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The secret's limit is spent; retry after this long.
    Wait(Duration),
    /// Every counter slot holds a limit that has not refilled yet (`RATE_LIMIT_KEYS`):
    /// a secret not yet counted is refused rather than let an old counter go (which
    /// would reset that secret's limit). Retry after this long.
    Full(Duration),
    /// The secret's `max_requests` are used up.
    Exhausted,
    /// The fleet's counters are unreachable and `REDIS_FAILURE=closed`.
    Unavailable,
}

/// Per-key counters, at most `capacity` keys in all. A key is a 32-byte keyed hash, so
/// the table is bounded in bytes too: about 100 bytes a key with the map's overhead.
pub struct Limiter {
    table: Mutex<Table>,
    capacity: usize,
}

#[derive(Default)]
struct Table {
    /// Rate counters: the theoretical arrival time.
    tat: HashMap<[u8; 32], Instant>,
    /// Lifetime counters: uses so far, and until when the count is kept.
    uses: HashMap<[u8; 32], (u64, Instant)>,
    /// When a full table was last swept for expired counters, and the earliest time a
    /// counter then left would expire. A full table is swept at most once a second, so
    /// a flood of new keys costs no more than a map lookup each.
    swept: Option<(Instant, Instant)>,
}

impl Table {
    fn len(&self) -> usize {
        self.tat.len() + self.uses.len()
    }

    /// Forget counters whose time has passed (a full bucket, or a use count past its
    /// retention: forgetting them changes nothing), at most once a second.
    fn sweep(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|(at, _)| now.saturating_duration_since(at) < Duration::from_secs(1))
        {
            return;
        }
        self.tat.retain(|_, tat| *tat > now);
        self.uses.retain(|_, (_, until)| *until > now);
        let soonest = self
            .tat
            .values()
            .chain(self.uses.values().map(|(_, until)| until))
            .min()
            .copied()
            .unwrap_or(now);
        self.swept = Some((now, soonest));
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl Limiter {
    pub fn new(capacity: usize) -> Self {
        Self {
            table: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    /// Take one request from every limit, or from none: a request refused by one
    /// secret's limit spends nothing of another's.
    pub fn take(&self, limits: &[Limit], now: Instant) -> Result<(), Refusal> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let mut new_keys = 0;
        let mut plan: Vec<(Option<Instant>, Option<u64>)> = Vec::with_capacity(limits.len());
        for limit in limits {
            let mut tat_next = None;
            if let Some(rate) = limit.rate {
                let tat = match table.tat.get(&limit.key) {
                    Some(t) => (*t).max(now),
                    None => {
                        new_keys += 1;
                        now
                    }
                };
                let allow_at = tat.checked_sub(rate.burst()).unwrap_or(now);
                if allow_at > now {
                    return Err(Refusal::Wait(allow_at - now));
                }
                tat_next = Some(tat + rate.interval());
            }
            let mut used_next = None;
            if let Some(max) = limit.max_requests {
                let used = match table.uses.get(&limit.key) {
                    Some((n, until)) if *until > now => *n,
                    // Past its retention: the count starts afresh (in the same slot).
                    Some(_) => 0,
                    None => {
                        new_keys += 1;
                        0
                    }
                };
                if used >= max {
                    return Err(Refusal::Exhausted);
                }
                used_next = Some(used + 1);
            }
            plan.push((tat_next, used_next));
        }
        if new_keys > 0 && table.len() + new_keys > self.capacity {
            table.sweep(now);
            if table.len() + new_keys > self.capacity {
                let soonest = table.swept.map_or(now, |(_, soonest)| soonest);
                return Err(Refusal::Full(soonest.saturating_duration_since(now)));
            }
        }
        for (limit, (tat, used)) in limits.iter().zip(plan) {
            if let Some(tat) = tat {
                table.tat.insert(limit.key, tat);
            }
            if let Some(used) = used {
                table.uses.insert(limit.key, (used, now + limit.keep_uses));
            }
        }
        Ok(())
    }

    /// Counters held now.
    pub fn len(&self) -> usize {
        self.table.lock().map_or(0, |t| t.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    fn rate(key: [u8; 32], rate: RateLimit) -> [Limit; 1] {
        [Limit {
            key,
            rate: Some(rate),
            max_requests: None,
            keep_uses: Duration::ZERO,
        }]
    }

    impl Limiter {
        fn check(&self, key: &[u8; 32], limit: RateLimit, now: Instant) -> Result<(), Refusal> {
            self.take(&rate(*key, limit), now)
        }
    }

    #[test]
    fn max_requests_caps_uses_until_the_count_expires() {
        let limiter = Limiter::new(10);
        let t0 = Instant::now();
        let capped = [Limit {
            key: [7; 32],
            rate: None,
            max_requests: Some(2),
            keep_uses: Duration::from_secs(60),
        }];
        assert!(limiter.take(&capped, t0).is_ok());
        assert!(limiter.take(&capped, t0).is_ok());
        assert_eq!(limiter.take(&capped, t0), Err(Refusal::Exhausted));
        // Kept for its retention (refreshed by each use), then counted afresh.
        let t1 = t0 + Duration::from_secs(59);
        assert_eq!(limiter.take(&capped, t1), Err(Refusal::Exhausted));
        let later = t0 + Duration::from_secs(61);
        assert!(limiter.take(&capped, later).is_ok());
    }

    #[test]
    fn one_refused_limit_spends_none_of_the_others() {
        let limiter = Limiter::new(10);
        let t0 = Instant::now();
        let one = RateLimit::parse("1/min").unwrap();
        let a = rate([1; 32], one)[0];
        let b = rate([2; 32], one)[0];
        assert!(limiter.take(&[b], t0).is_ok());
        // b is spent, so a+b is refused, and a keeps its one request.
        assert!(matches!(limiter.take(&[a, b], t0), Err(Refusal::Wait(_))));
        assert!(limiter.take(&[a], t0).is_ok());
    }

    #[test]
    fn allows_a_burst_then_refills_evenly() {
        let limiter = Limiter::default();
        let limit = RateLimit::parse("3/min").unwrap();
        let t0 = Instant::now();
        let (k, other) = ([1; 32], [2; 32]);
        for _ in 0..3 {
            assert!(limiter.check(&k, limit, t0).is_ok());
        }
        let wait = limiter.check(&k, limit, t0).unwrap_err();
        assert_eq!(wait, Refusal::Wait(Duration::from_secs(20)));
        // Another key is independent.
        assert!(limiter.check(&other, limit, t0).is_ok());
        // One slot frees every 20 s.
        assert!(
            limiter
                .check(&k, limit, t0 + Duration::from_secs(20))
                .is_ok()
        );
        assert!(
            limiter
                .check(&k, limit, t0 + Duration::from_secs(21))
                .is_err()
        );
    }

    #[test]
    fn a_full_table_refuses_new_keys_and_never_drops_a_live_counter() {
        let limiter = Limiter::new(3);
        let day = RateLimit::parse("1/day").unwrap();
        let t0 = Instant::now();
        for i in 0..3u8 {
            assert!(limiter.check(&[i; 32], day, t0).is_ok());
        }
        assert!(matches!(
            limiter.check(&[9; 32], day, t0),
            Err(Refusal::Full(_))
        ));
        assert_eq!(limiter.len(), 3);
        // The first key's day is still spent: it was not evicted to make room.
        assert!(matches!(
            limiter.check(&[0; 32], day, t0),
            Err(Refusal::Wait(_))
        ));
        // Counters that have refilled make room.
        let fast = RateLimit::parse("10/s").unwrap();
        let limiter = Limiter::new(2);
        assert!(limiter.check(&[1; 32], fast, t0).is_ok());
        assert!(limiter.check(&[2; 32], fast, t0).is_ok());
        let later = t0 + Duration::from_secs(1);
        assert!(limiter.check(&[3; 32], fast, later).is_ok());
        assert!(limiter.len() <= 2);
    }
}
