//! What one request does to a secret's counters, described once for both places that
//! keep them: this process's table ([`super::Limiter`]) runs the Rust functions, and
//! the fleet's Redis script is built from [`LUA`], the same two steps in Lua. The fleet
//! crate's tests run both over the same inputs on a real Redis, so the two cannot drift.
//!
//! The rate counter is GCRA: it stores the theoretical arrival time (TAT) of the next
//! request. Each step is written in terms of how far the TAT runs **ahead** of now, so
//! neither side depends on the other's clock: this process uses a monotonic `Instant`,
//! the fleet the Redis server's `TIME`.

use std::time::Duration;

/// One request against a rate counter whose TAT runs `ahead` of now (zero when it is in
/// the past or unset), for a rate of one request per `interval` with up to `burst` of
/// headroom ([`super::RateLimit::interval`], [`super::RateLimit::burst`]).
///
/// `Ok(new ahead)`: admitted, and the TAT moves to now plus that. `Err(wait)`: refused
/// until that much time has passed.
pub fn rate_step(
    ahead: Duration,
    interval: Duration,
    burst: Duration,
) -> Result<Duration, Duration> {
    if ahead > burst {
        Err(ahead - burst)
    } else {
        Ok(ahead.saturating_add(interval))
    }
}

/// One request against a use counter that has counted `used` of `max` requests:
/// `Some(new count)` admitted, `None` spent.
pub fn use_step(used: u64, max: u64) -> Option<u64> {
    (used < max).then(|| used.saturating_add(1))
}

/// [`rate_step`] and [`use_step`] in Lua, on integers (microseconds for the rate): the
/// prelude of the fleet's limit script. `rate_step` returns the new ahead and `nil`, or
/// `nil` and the wait; `use_step` returns the new count, or `nil`.
pub const LUA: &str = r"
local function rate_step(ahead, interval, burst)
  if ahead > burst then return nil, ahead - burst end
  return ahead + interval, nil
end
local function use_step(used, max)
  if used >= max then return nil end
  return used + 1
end
";

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_burst_is_admitted_then_the_rest_waits() {
        // 3/s: one per 333 ms, 666 ms of headroom.
        let (interval, burst) = (333 * MS, 666 * MS);
        let mut ahead = Duration::ZERO;
        for _ in 0..3 {
            ahead = rate_step(ahead, interval, burst).unwrap();
        }
        assert_eq!(ahead, 999 * MS);
        assert_eq!(rate_step(ahead, interval, burst), Err(333 * MS));
        // At exactly the burst, still admitted.
        assert_eq!(rate_step(burst, interval, burst), Ok(999 * MS));
    }

    #[test]
    fn uses_count_up_to_the_maximum() {
        assert_eq!(use_step(0, 2), Some(1));
        assert_eq!(use_step(1, 2), Some(2));
        assert_eq!(use_step(2, 2), None);
        assert_eq!(use_step(0, 0), None);
    }
}
