//! `rate_limit` and `max_requests` across the fleet: one Lua script per request checks
//! every limited secret's counters and, only if all admit the request, takes one from
//! each. Redis runs a script atomically, so instances sharing a Redis together admit at
//! most each limit; times come from the Redis server (`TIME`), so instances' clocks do
//! not matter.
//!
//! The rate counter is the same GCRA as [`crate::policy::Limiter`]: it holds the
//! theoretical arrival time in microseconds and expires when the bucket is full again.
//! The use counter holds a count and expires with the secret (or after the retention).
//! Both are registered in a sorted set scored by expiry, so the fleet holds at most
//! `RATE_LIMIT_KEYS` counters: a new one when the set is full (after dropping expired
//! ones) is refused, as in one process.

use std::sync::LazyLock;

use redis::aio::ConnectionLike;

use super::{FleetError, Keys};
use crate::policy::{Limit, Refusal};

/// KEYS: [registry, rate1, uses1, rate2, uses2, …]
/// ARGV: [capacity, n, then per secret: interval µs (0: no rate), burst µs,
///        max uses (-1: none), keep uses ms]
/// Returns {0, 0} admitted, {1, ms} rate spent, {2, ms} registry full, {3, 0} uses spent.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now / 1000)
local cap = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local new_keys = 0
local plan = {}
for i = 1, n do
  local a = 2 + 4 * (i - 1)
  local interval, burst = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local max = tonumber(ARGV[a + 3])
  local step = {}
  if interval > 0 then
    local tat = tonumber(redis.call('GET', KEYS[2 * i]))
    if not tat then
      new_keys = new_keys + 1
      tat = now
    end
    if tat < now then tat = now end
    local allow_at = tat - burst
    if allow_at > now then
      return {1, math.ceil((allow_at - now) / 1000)}
    end
    step.tat = tat + interval
  end
  if max >= 0 then
    local used = tonumber(redis.call('GET', KEYS[2 * i + 1]))
    if not used then
      new_keys = new_keys + 1
      used = 0
    end
    if used >= max then return {3, 0} end
    step.used = used + 1
  end
  plan[i] = step
end
if new_keys > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
  if redis.call('ZCARD', KEYS[1]) + new_keys > cap then
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    local wait = 1000
    if first[2] then wait = tonumber(first[2]) - now_ms end
    return {2, math.max(wait, 1)}
  end
end
for i = 1, n do
  local step = plan[i]
  if step.tat then
    local px = math.max(math.ceil((step.tat - now) / 1000), 1)
    redis.call('SET', KEYS[2 * i], string.format('%.0f', step.tat), 'PX', px)
    redis.call('ZADD', KEYS[1], now_ms + px, KEYS[2 * i])
  end
  if step.used then
    local keep = tonumber(ARGV[2 + 4 * (i - 1) + 4])
    redis.call('SET', KEYS[2 * i + 1], step.used, 'PX', keep)
    redis.call('ZADD', KEYS[1], now_ms + keep, KEYS[2 * i + 1])
  end
end
return {0, 0}
";

static TAKE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SCRIPT));

/// Run the script for `limits` (one round trip: EVALSHA, loaded on first use).
pub(super) async fn take<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    limits: &[Limit],
    capacity: usize,
) -> Result<Result<(), Refusal>, FleetError> {
    let mut invocation = TAKE.prepare_invoke();
    invocation.key(keys.registry());
    invocation.arg(capacity).arg(limits.len());
    for limit in limits {
        invocation
            .key(keys.counter("rl", &limit.key))
            .key(keys.counter("max", &limit.key));
        let (interval, burst) = limit.rate.map_or((0, 0), |r| {
            (r.interval().as_micros().max(1), r.burst().as_micros())
        });
        let max = limit
            .max_requests
            .map_or(-1, |m| i64::try_from(m).unwrap_or(i64::MAX));
        let keep_ms = limit.keep_uses.as_millis().max(1);
        invocation
            .arg(u64::try_from(interval).unwrap_or(u64::MAX))
            .arg(u64::try_from(burst).unwrap_or(u64::MAX))
            .arg(max)
            .arg(u64::try_from(keep_ms).unwrap_or(u64::MAX));
    }
    let (code, ms): (i64, i64) = invocation.invoke_async(conn).await?;
    let wait = std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    Ok(match code {
        0 => Ok(()),
        1 => Err(Refusal::Wait(wait)),
        2 => Err(Refusal::Full(wait)),
        3 => Err(Refusal::Exhausted),
        other => return Err(FleetError::Redis(format!("limit script answered {other}"))),
    })
}
