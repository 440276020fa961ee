//! The DNS listener's tables, each bounded in entries and bytes whatever the sandbox
//! asks: names per second per client, the refused names already audited in this
//! interval, and the answers of the real resolvers. Locks are held only for a lookup or
//! an insert, never across I/O.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Clients tracked for the rate limit.
const MAX_CLIENTS: usize = 4096;
/// Refused names remembered per audit interval.
const MAX_AUDITED: usize = 1024;
/// How long a refused name is not audited again.
pub const AUDIT_INTERVAL: Duration = Duration::from_secs(60);
/// Answers cached, and their bytes together.
const MAX_CACHED: usize = 2048;
const MAX_CACHED_BYTES: usize = 1 << 20;
/// How long an answer is kept, at most (and a negative one).
const MAX_TTL: Duration = Duration::from_secs(300);
const NEGATIVE_TTL: Duration = Duration::from_secs(30);

/// Names per second per client: a token bucket each, `rate` deep, refilled `rate` per
/// second. A full table forgets its longest-idle client.
pub struct ClientRates {
    rate: f64,
    clients: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl ClientRates {
    /// `rate` names per second per client (at least one).
    pub fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// May `client` ask one more name now? Loopback sources are one client (a process
    /// may send from any 127.x address), and IPv6 sources count by /64.
    pub fn allow(&self, client: IpAddr, now: Instant) -> bool {
        let client = bucket(client);
        let Ok(mut clients) = self.clients.lock() else {
            return false;
        };
        if !clients.contains_key(&client)
            && clients.len() >= MAX_CLIENTS
            && let Some(idle) = clients
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(ip, _)| *ip)
        {
            clients.remove(&idle);
        }
        let (tokens, at) = clients.entry(client).or_insert((self.rate, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() * self.rate;
        *tokens = (*tokens + refill).min(self.rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The rate-limit bucket of a source address.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) if a.is_loopback() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V4(a) => IpAddr::V4(a),
        IpAddr::V6(a) if a.is_loopback() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) => {
            let mut s = a.segments();
            s[4..].fill(0);
            IpAddr::V6(s.into())
        }
    }
}

/// Refused names audited in the current interval: one line per distinct name per
/// interval; once the set is full, further names in that interval are only counted.
pub struct AuditOnce {
    inner: Mutex<AuditState>,
}

struct AuditState {
    since: Instant,
    names: std::collections::HashSet<String>,
    suppressed: u64,
}

/// Should a refusal be logged?
#[derive(Debug, PartialEq, Eq)]
pub enum AuditVerdict {
    /// Log it; `suppressed` names of the previous interval went unlogged (say so).
    Log { suppressed: u64 },
    /// Already logged in this interval, or the interval's table is full.
    Skip,
}

impl AuditOnce {
    /// An empty table.
    pub fn new(now: Instant) -> Self {
        Self {
            inner: Mutex::new(AuditState {
                since: now,
                names: std::collections::HashSet::new(),
                suppressed: 0,
            }),
        }
    }

    /// Is `name` (already clipped) to be logged now?
    pub fn check(&self, name: &str, now: Instant) -> AuditVerdict {
        let Ok(mut s) = self.inner.lock() else {
            return AuditVerdict::Skip;
        };
        let mut suppressed = 0;
        if now.saturating_duration_since(s.since) >= AUDIT_INTERVAL {
            suppressed = std::mem::take(&mut s.suppressed);
            s.names.clear();
            s.since = now;
        }
        if s.names.contains(name) {
            return AuditVerdict::Skip;
        }
        if s.names.len() >= MAX_AUDITED {
            s.suppressed += 1;
            return AuditVerdict::Skip;
        }
        s.names.insert(name.to_owned());
        AuditVerdict::Log { suppressed }
    }
}

/// Answers of the real resolvers, by the question exactly as asked (name bytes, type,
/// class, EDNS or not), until their TTL (at most [`MAX_TTL`]) passes.
pub struct AnswerCache {
    inner: Mutex<CacheState>,
}

struct CacheState {
    entries: HashMap<Vec<u8>, (Vec<u8>, Instant)>,
    bytes: usize,
}

impl AnswerCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(CacheState {
                entries: HashMap::new(),
                bytes: 0,
            }),
        }
    }

    /// The cached answer for `key`, if still fresh.
    pub fn get(&self, key: &[u8], now: Instant) -> Option<Vec<u8>> {
        let mut s = self.inner.lock().ok()?;
        match s.entries.get(key) {
            Some((answer, until)) if *until > now => Some(answer.clone()),
            Some(_) => {
                if let Some((answer, _)) = s.entries.remove(key) {
                    s.bytes -= answer.len() + key.len();
                }
                None
            }
            None => None,
        }
    }

    /// Keep `answer` for `ttl` (capped; a zero TTL or a full cache keeps nothing after
    /// the expired entries are swept).
    pub fn put(&self, key: Vec<u8>, answer: Vec<u8>, ttl: Option<Duration>, now: Instant) {
        let ttl = ttl.unwrap_or(NEGATIVE_TTL).min(MAX_TTL);
        if ttl.is_zero() {
            return;
        }
        let Ok(mut s) = self.inner.lock() else {
            return;
        };
        let size = answer.len() + key.len();
        if s.entries.len() >= MAX_CACHED || s.bytes + size > MAX_CACHED_BYTES {
            let before = s.entries.len();
            s.entries.retain(|_, (_, until)| *until > now);
            if s.entries.len() != before {
                s.bytes = s.entries.iter().map(|(k, (a, _))| k.len() + a.len()).sum();
            }
            if s.entries.len() >= MAX_CACHED || s.bytes + size > MAX_CACHED_BYTES {
                return;
            }
        }
        if let Some((old, _)) = s.entries.insert(key.clone(), (answer, now + ttl)) {
            s.bytes -= old.len() + key.len();
        }
        s.bytes += size;
    }
}

impl Default for AnswerCache {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_rate_and_refills() {
        let rates = ClientRates::new(3);
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t = Instant::now();
        assert!((0..3).all(|_| rates.allow(a, t)));
        assert!(!rates.allow(a, t));
        assert!(rates.allow(b, t), "another client has its own bucket");
        assert!(rates.allow(a, t + Duration::from_millis(400)));
    }

    #[test]
    fn loopback_sources_share_one_bucket() {
        let rates = ClientRates::new(2);
        let t = Instant::now();
        assert!(rates.allow("127.0.0.1".parse().unwrap(), t));
        assert!(rates.allow("127.78.1.2".parse().unwrap(), t));
        assert!(!rates.allow("127.9.9.9".parse().unwrap(), t));
        assert!(!rates.allow("::1".parse().unwrap(), t));
    }

    #[test]
    fn the_client_table_stays_bounded() {
        let rates = ClientRates::new(1);
        let t = Instant::now();
        for i in 0..(MAX_CLIENTS as u32 + 100) {
            // 10.x.y.z: not loopback, one bucket each.
            assert!(rates.allow(IpAddr::from((0x0a00_0000 + i).to_be_bytes()), t));
        }
        assert_eq!(rates.clients.lock().unwrap().len(), MAX_CLIENTS);
    }

    #[test]
    fn a_name_is_audited_once_per_interval_and_the_table_is_bounded() {
        let t = Instant::now();
        let audit = AuditOnce::new(t);
        assert_eq!(
            audit.check("x.attacker.test", t),
            AuditVerdict::Log { suppressed: 0 }
        );
        assert_eq!(audit.check("x.attacker.test", t), AuditVerdict::Skip);
        for i in 0..(MAX_AUDITED + 10) {
            audit.check(&format!("n{i}.attacker.test"), t);
        }
        assert_eq!(audit.inner.lock().unwrap().names.len(), MAX_AUDITED);
        let later = t + AUDIT_INTERVAL;
        assert_eq!(
            audit.check("x.attacker.test", later),
            AuditVerdict::Log { suppressed: 11 }
        );
    }

    #[test]
    fn the_cache_is_bounded_in_entries_and_bytes_and_expires() {
        let cache = AnswerCache::new();
        let t = Instant::now();
        cache.put(
            b"k".to_vec(),
            b"answer".to_vec(),
            Some(Duration::from_secs(5)),
            t,
        );
        assert_eq!(cache.get(b"k", t).as_deref(), Some(&b"answer"[..]));
        assert_eq!(cache.get(b"k", t + Duration::from_secs(6)), None);
        for i in 0..(MAX_CACHED + 50) {
            cache.put(format!("k{i}").into_bytes(), vec![0; 16], Some(MAX_TTL), t);
        }
        assert!(cache.inner.lock().unwrap().entries.len() <= MAX_CACHED);
        let big = AnswerCache::new();
        for i in 0..100 {
            big.put(
                format!("b{i}").into_bytes(),
                vec![0; 64 << 10],
                Some(MAX_TTL),
                t,
            );
        }
        assert!(big.inner.lock().unwrap().bytes <= MAX_CACHED_BYTES);
        // Expired entries make room.
        let later = t + MAX_TTL + Duration::from_secs(1);
        big.put(b"new".to_vec(), vec![0; 64 << 10], Some(MAX_TTL), later);
        assert!(big.get(b"new", later).is_some());
    }
}
