//! The in-process counters ([`Limiter`]): one entry per limited secret in use, at most
//! `RATE_LIMIT_KEYS` of them, kept in pools by caller identity.
//!
//! When a request needs counters the table has no room for, expired counters are swept
//! first (a full bucket or a use count past its retention: forgetting them changes
//! nothing). If that is not enough, room is made in the **largest pool**, by dropping
//! its least recently used counter (never one the request itself uses). A caller that
//! floods the table with self-sealed secrets grows its own pool, so it is its own
//! counters that go; a pool of a few secrets is touched only when no pool is larger.
//! A full table never refuses a newcomer: refusing would let anyone who can seal a
//! secret lock every new limited secret out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Limit, Refusal, steps};

/// Per-key counters, at most `capacity` keys in all. A key is a 32-byte keyed hash, so
/// the table is bounded in bytes too: about 200 bytes a key with the maps' overhead.
pub struct Limiter {
    table: Mutex<Table>,
    capacity: usize,
}

/// One limited secret's counters.
struct Counter {
    pool: [u8; 32],
    /// The rate counter: the theoretical arrival time.
    tat: Option<Instant>,
    /// The use counter: uses so far, and until when the count is kept.
    uses: Option<(u64, Instant)>,
    /// When it was last used, as a sequence number (for least-recently-used order).
    used: u64,
}

impl Counter {
    /// Forgetting it changes nothing: the bucket is full again and the use count is past
    /// its retention.
    fn expired(&self, now: Instant) -> bool {
        self.tat.is_none_or(|t| t <= now) && self.uses.is_none_or(|(_, until)| until <= now)
    }
}

/// The counters of each pool, least recently used first, and the pools by size.
#[derive(Default)]
struct Pools {
    members: HashMap<[u8; 32], BTreeMap<u64, [u8; 32]>>,
    by_size: BTreeSet<(usize, [u8; 32])>,
}

impl Pools {
    fn size(&self, pool: &[u8; 32]) -> usize {
        self.members.get(pool).map_or(0, BTreeMap::len)
    }

    /// Record `key` as used at `used` (it was at `before`, if it was in the pool).
    fn touch(&mut self, pool: [u8; 32], key: [u8; 32], before: Option<u64>, used: u64) {
        let size = self.size(&pool);
        let members = self.members.entry(pool).or_default();
        if let Some(before) = before {
            members.remove(&before);
        }
        members.insert(used, key);
        let after = members.len();
        if after != size {
            self.by_size.remove(&(size, pool));
            self.by_size.insert((after, pool));
        }
    }

    fn remove(&mut self, pool: [u8; 32], used: u64) {
        let size = self.size(&pool);
        let Some(members) = self.members.get_mut(&pool) else {
            return;
        };
        if members.remove(&used).is_none() {
            return;
        }
        self.by_size.remove(&(size, pool));
        if members.is_empty() {
            self.members.remove(&pool);
        } else {
            self.by_size.insert((size - 1, pool));
        }
    }

    /// The least recently used counter of the largest pool that is not in `keep`
    /// (looking at no more pools and counters than `keep` can rule out).
    fn victim(&self, keep: &[Limit]) -> Option<[u8; 32]> {
        self.by_size
            .iter()
            .rev()
            .take(keep.len() + 1)
            .find_map(|(_, pool)| {
                self.members
                    .get(pool)?
                    .values()
                    .take(keep.len() + 1)
                    .find(|key| !keep.iter().any(|l| l.key == **key))
                    .copied()
            })
    }
}

#[derive(Default)]
struct Table {
    counters: HashMap<[u8; 32], Counter>,
    pools: Pools,
    /// The last use's sequence number.
    seq: u64,
    /// When a full table was last swept for expired counters: at most once a second, so
    /// a flood of new keys costs no more than a map lookup and an eviction each.
    swept: Option<Instant>,
    /// Counters dropped to make room, since start.
    evicted: u64,
}

impl Table {
    fn remove(&mut self, key: &[u8; 32]) {
        if let Some(gone) = self.counters.remove(key) {
            self.pools.remove(gone.pool, gone.used);
        }
    }

    /// Forget counters whose time has passed, at most once a second.
    fn sweep(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1))
        {
            return;
        }
        self.swept = Some(now);
        let expired: Vec<[u8; 32]> = self
            .counters
            .iter()
            .filter(|(_, c)| c.expired(now))
            .map(|(k, _)| *k)
            .collect();
        for key in &expired {
            self.remove(key);
        }
    }

    /// Make room for `new` more counters besides the ones `limits` use; false when the
    /// request alone needs more than `capacity`.
    fn make_room(&mut self, new: usize, limits: &[Limit], capacity: usize, now: Instant) -> bool {
        if self.counters.len() + new <= capacity {
            return true;
        }
        self.sweep(now);
        while self.counters.len() + new > capacity {
            let Some(key) = self.pools.victim(limits) else {
                return false;
            };
            self.remove(&key);
            self.evicted += 1;
        }
        true
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl Limiter {
    /// A limiter holding at most `capacity` counters (at least 1).
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
            let counter = table.counters.get(&limit.key);
            if counter.is_none() {
                new_keys += 1;
            }
            let mut tat_next = None;
            if let Some(rate) = limit.rate {
                let ahead = counter
                    .and_then(|c| c.tat)
                    .map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
                let ahead = steps::rate_step(ahead, rate.interval(), rate.burst())
                    .map_err(Refusal::Wait)?;
                tat_next = Some(now + ahead);
            }
            let mut used_next = None;
            if let Some(max) = limit.max_requests {
                // Past its retention, the count starts afresh.
                let used = match counter.and_then(|c| c.uses) {
                    Some((n, until)) if until > now => n,
                    _ => 0,
                };
                used_next = Some(steps::use_step(used, max).ok_or(Refusal::Exhausted)?);
            }
            plan.push((tat_next, used_next));
        }
        if !table.make_room(new_keys, limits, self.capacity, now) {
            return Err(Refusal::Full(Duration::from_secs(1)));
        }
        for (limit, (tat, used)) in limits.iter().zip(plan) {
            table.seq += 1;
            let seq = table.seq;
            let counter = table.counters.entry(limit.key).or_insert(Counter {
                pool: limit.pool,
                tat: None,
                uses: None,
                used: seq,
            });
            let before = (counter.used != seq).then_some(counter.used);
            counter.used = seq;
            if tat.is_some() {
                counter.tat = tat;
            }
            if let Some(used) = used {
                counter.uses = Some((used, now + limit.keep_uses));
            }
            let pool = counter.pool;
            table.pools.touch(pool, limit.key, before, seq);
        }
        Ok(())
    }

    /// Counters held now.
    pub fn len(&self) -> usize {
        self.table.lock().map_or(0, |t| t.counters.len())
    }

    /// Are no counters held?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters dropped to make room since start.
    pub fn evicted(&self) -> u64 {
        self.table.lock().map_or(0, |t| t.evicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RateLimit;

    const POOL: [u8; 32] = [0xaa; 32];

    fn rate(key: [u8; 32], rate: RateLimit) -> [Limit; 1] {
        [Limit {
            key,
            pool: POOL,
            rate: Some(rate),
            max_requests: None,
            keep_uses: Duration::ZERO,
        }]
    }

    fn uses(key: [u8; 32], pool: [u8; 32], max: u64) -> Limit {
        Limit {
            key,
            pool,
            rate: None,
            max_requests: Some(max),
            keep_uses: Duration::from_secs(3600),
        }
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
            keep_uses: Duration::from_secs(60),
            ..uses([7; 32], POOL, 2)
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
    fn a_flood_in_one_pool_makes_room_there_and_never_refuses_a_newcomer() {
        let limiter = Limiter::new(10);
        let t0 = Instant::now();
        let (victim_pool, flood_pool, new_pool) = ([1; 32], [2; 32], [3; 32]);
        // A real secret with one use left.
        let victim = uses([100; 32], victim_pool, 1);
        assert!(limiter.take(&[victim], t0).is_ok());
        // A flood of self-sealed secrets in another pool fills the table many times over.
        for i in 0..50u8 {
            assert!(limiter.take(&[uses([i; 32], flood_pool, 1)], t0).is_ok());
            assert!(limiter.len() <= 10);
        }
        // The real secret's count survived: it is still used up.
        assert_eq!(limiter.take(&[victim], t0), Err(Refusal::Exhausted));
        // A newcomer in a pool of its own is admitted, and counted.
        let newcomer = uses([200; 32], new_pool, 1);
        assert!(limiter.take(&[newcomer], t0).is_ok());
        assert_eq!(limiter.take(&[newcomer], t0), Err(Refusal::Exhausted));
        assert_eq!(limiter.take(&[victim], t0), Err(Refusal::Exhausted));
        assert!(limiter.evicted() >= 41);
    }

    #[test]
    fn within_the_largest_pool_the_least_recently_used_counter_goes() {
        let limiter = Limiter::new(3);
        let t0 = Instant::now();
        let pool = [9; 32];
        let (a, b) = (uses([1; 32], pool, 5), uses([2; 32], pool, 5));
        assert!(limiter.take(&[a], t0).is_ok());
        assert!(limiter.take(&[b], t0).is_ok());
        let c = uses([3; 32], pool, 5);
        assert!(limiter.take(&[c], t0).is_ok());
        // a is used again: b is now the least recently used.
        assert!(limiter.take(&[a], t0).is_ok());
        let d = uses([4; 32], pool, 5);
        // A request never drops a counter it uses itself.
        assert!(limiter.take(&[b, d], t0).is_ok());
        assert_eq!(limiter.len(), 3);
        let table = limiter.table.lock().unwrap();
        assert!(table.counters.contains_key(&[2; 32]));
        assert!(table.counters.contains_key(&[4; 32]));
        assert_eq!(table.pools.size(&pool), 3);
    }

    #[test]
    fn a_request_needing_more_counters_than_the_table_holds_is_refused() {
        let limiter = Limiter::new(2);
        let t0 = Instant::now();
        let three: Vec<Limit> = (0..3u8).map(|i| uses([i; 32], POOL, 1)).collect();
        assert!(matches!(limiter.take(&three, t0), Err(Refusal::Full(_))));
        assert!(limiter.is_empty());
    }

    #[test]
    fn expired_counters_go_before_live_ones() {
        let fast = RateLimit::parse("10/s").unwrap();
        let limiter = Limiter::new(2);
        let t0 = Instant::now();
        let live = uses([1; 32], [1; 32], 3);
        assert!(limiter.take(&[live], t0).is_ok());
        assert!(limiter.check(&[2; 32], fast, t0).is_ok());
        let later = t0 + Duration::from_secs(1);
        assert!(limiter.check(&[3; 32], fast, later).is_ok());
        assert_eq!(limiter.len(), 2);
        assert_eq!(
            limiter.evicted(),
            0,
            "the refilled bucket was swept, not evicted"
        );
        let table = limiter.table.lock().unwrap();
        assert!(table.counters.contains_key(&[1; 32]));
    }
}
