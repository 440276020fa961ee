//! `rate_limit` and `max_requests` across the fleet: one Lua script per request checks
//! every limited secret's counters and, only if all admit the request, takes one from
//! each. Redis runs a script atomically, so instances sharing a Redis together admit at
//! most each limit; times come from the Redis server (`TIME`), so instances' clocks do
//! not matter.
//!
//! The rate counter is the same GCRA as [`tokenizer_secret::policy::Limiter`], from the
//! same description ([`steps`]): it holds the theoretical arrival time in microseconds
//! and expires when the bucket is full again.
//! The use counter holds a count and expires with the secret, at most
//! `MAX_REQUESTS_RETENTION` after its last use. Every number the script is given is
//! bounded here, so no secret can make Redis refuse a command (an expiry too large for
//! `PX`, say) and so fail a request that carries it beside others.
//!
//! The counters are bounded as in one process: a registry (sorted by expiry) holds one
//! member per limited secret, `pool|id`; each pool (the caller identity a secret demands,
//! see [`tokenizer_secret::policy::Limit::pool`]) has a sorted set of its secrets by last use, and
//! `pools` counts each pool's secrets. When `RATE_LIMIT_KEYS` are in use, the script
//! drops expired members, then the least recently used secret of the largest pool
//! (never one of the request's own).

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionLike;

use super::{FleetError, Keys};
use tokenizer_secret::policy::limits::steps;
use tokenizer_secret::policy::{Limit, Refusal};

/// The longest a use count is kept (`MAX_REQUESTS_RETENTION` is validated to this).
const MAX_KEEP: Duration = Duration::from_secs(10 * 365 * 86_400);
/// Counts above this are not told apart (Lua numbers are doubles: exact to 2^53).
const MAX_COUNT: u64 = 1 << 53;

/// KEYS: [registry, pools, then per secret: rate counter, use counter, its pool's set]
/// ARGV: [capacity, n, key prefix, then per secret: id, pool, interval µs (0: no rate),
///        burst µs, max uses (-1: none), keep uses ms]
/// Returns {0, 0, evicted} admitted, {1, ms, 0} rate spent, {2, ms, 0} the request alone
/// needs more counters than the capacity, {3, 0, 0} uses spent.
///
/// What one request does to a counter (`rate_step`, `use_step`) is not written here: the
/// script starts with [`steps::LUA`], the same steps the local table runs in Rust.
const BODY: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now / 1000)
local cap = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local prefix = ARGV[3]
local registry, pools = KEYS[1], KEYS[2]
local own = {}
local plan = {}
local new_keys = 0
for i = 1, n do
  local a = 3 + 6 * (i - 1)
  local id, pool = ARGV[a + 1], ARGV[a + 2]
  local interval, burst = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local max, keep = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local k = 3 * i
  own[id] = true
  local step = {id = id, pool = pool, member = pool .. '|' .. id, keep = keep, k = k}
  if not redis.call('ZSCORE', registry, step.member) then new_keys = new_keys + 1 end
  if interval > 0 then
    local tat = tonumber(redis.call('GET', KEYS[k])) or now
    local ahead, wait = rate_step(math.max(tat - now, 0), interval, burst)
    if not ahead then return {1, math.ceil(wait / 1000), 0} end
    step.tat = now + ahead
  end
  if max >= 0 then
    local used = use_step(tonumber(redis.call('GET', KEYS[k + 1])) or 0, max)
    if not used then return {3, 0, 0} end
    step.used = used
  end
  plan[i] = step
end
local function drop(member)
  local sep = string.find(member, '|', 1, true)
  if not sep then
    redis.call('ZREM', registry, member)
    return
  end
  local pool, id = string.sub(member, 1, sep - 1), string.sub(member, sep + 1)
  redis.call('ZREM', registry, member)
  redis.call('DEL', prefix .. 'rl:' .. id, prefix .. 'max:' .. id)
  redis.call('ZREM', prefix .. 'pool:' .. pool, id)
  if tonumber(redis.call('ZINCRBY', pools, -1, pool)) <= 0 then
    redis.call('ZREM', pools, pool)
  end
end
local evicted = 0
if new_keys > 0 and redis.call('ZCARD', registry) + new_keys > cap then
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', registry, '-inf', now_ms, 'LIMIT', 0, 256)) do
    drop(member)
  end
  local tries = 0
  while redis.call('ZCARD', registry) + new_keys > cap do
    tries = tries + 1
    if tries > new_keys + 64 then return {2, 1000, 0} end
    local victim = nil
    for _, pool in ipairs(redis.call('ZREVRANGE', pools, 0, n)) do
      local ids = redis.call('ZRANGE', prefix .. 'pool:' .. pool, 0, n)
      if #ids == 0 then redis.call('ZREM', pools, pool) end
      for _, id in ipairs(ids) do
        if not own[id] then
          victim = pool .. '|' .. id
          break
        end
      end
      if victim then break end
    end
    if not victim then return {2, 1000, 0} end
    drop(victim)
    evicted = evicted + 1
  end
end
for i = 1, n do
  local s = plan[i]
  local expiry = now_ms + 1
  if s.tat then
    local px = math.max(math.ceil((s.tat - now) / 1000), 1)
    redis.call('SET', KEYS[s.k], string.format('%.0f', s.tat), 'PX', px)
    expiry = math.max(expiry, now_ms + px)
  end
  if s.used then
    redis.call('SET', KEYS[s.k + 1], string.format('%.0f', s.used), 'PX', s.keep)
    expiry = math.max(expiry, now_ms + s.keep)
  end
  if redis.call('ZADD', registry, expiry, s.member) == 1 then
    redis.call('ZINCRBY', pools, 1, s.pool)
  end
  redis.call('ZADD', KEYS[s.k + 2], now_ms, s.id)
end
return {0, 0, evicted}
";

/// The whole script: the shared steps, then [`BODY`].
fn script() -> String {
    format!("{}{BODY}", steps::LUA)
}

static TAKE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(&script()));

/// What the script decided, and how many counters it dropped to make room.
pub(super) struct Taken {
    pub decided: Result<(), Refusal>,
    pub evicted: u64,
}

/// Run the script for `limits` (one round trip: EVALSHA, loaded on first use).
pub(super) async fn take<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    limits: &[Limit],
    capacity: usize,
) -> Result<Taken, FleetError> {
    let mut invocation = TAKE.prepare_invoke();
    invocation.key(keys.registry()).key(keys.pools());
    invocation
        .arg(capacity)
        .arg(limits.len())
        .arg(keys.prefix());
    for limit in limits {
        let id = keys.counter_id(&limit.key);
        let pool = hex::encode(&limit.pool[..16]);
        invocation
            .key(keys.counter("rl", &id))
            .key(keys.counter("max", &id))
            .key(keys.pool(&pool));
        let (interval, burst) = limit.rate.map_or((0, 0), |r| {
            (r.interval().as_micros().max(1), r.burst().as_micros())
        });
        let max = limit
            .max_requests
            .map_or(-1, |m| i64::try_from(m.min(MAX_COUNT)).unwrap_or(i64::MAX));
        let keep_ms = limit.keep_uses.min(MAX_KEEP).as_millis().max(1);
        invocation
            .arg(id)
            .arg(pool)
            .arg(u64::try_from(interval).unwrap_or(u64::MAX))
            .arg(u64::try_from(burst).unwrap_or(u64::MAX))
            .arg(max)
            .arg(u64::try_from(keep_ms).unwrap_or(u64::MAX));
    }
    let (code, ms, evicted): (i64, i64, i64) = invocation.invoke_async(conn).await?;
    let wait = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    let decided = match code {
        0 => Ok(()),
        1 => Err(Refusal::Wait(wait)),
        2 => Err(Refusal::Full(wait)),
        3 => Err(Refusal::Exhausted),
        other => {
            return Err(FleetError::Answer(format!("limit script answered {other}")));
        }
    };
    Ok(Taken {
        decided,
        evicted: u64::try_from(evicted).unwrap_or(0),
    })
}
