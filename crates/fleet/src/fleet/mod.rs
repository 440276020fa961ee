//! The fleet's shared state on Redis (`REDIS_URL`): `rate_limit` and `max_requests`
//! counted across every instance, and revocations every instance sees within a second.
//!
//! Nothing secret is written to Redis. Counters are named by a one-way hash of a secret's
//! counter key (itself a keyed hash of its id and credentials: see
//! [`tokenizer_secret::secret::Unsealed::limit_key`]), revocations are secret ids or SHA-256 digests
//! of sealed text, and the values are counts and times.
//!
//! - `limits`: one server-side script per request decides all its secrets' limits,
//!   atomically and all-or-nothing, by the Redis server's clock.
//! - [`revocations`]: the revocation set, announced on a channel and re-read when its
//!   version changes.
//! - `health`: a ping a second. Losing and regaining the fleet view is logged, and shown
//!   by `/readyz` and `/metrics`. While Redis is unreachable, `REDIS_FAILURE` decides:
//!   `open` counts limits in this process and keeps the last revocations seen; `closed`
//!   refuses every request that carries a secret (503).
//!
//! One Redis (or a primary with replicas) holds the state; Redis Cluster is not supported
//! (the script touches several keys).

mod health;
mod limits;
pub mod revocations;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};

pub use health::Health;

use tokenizer_core::SecretString;
use tokenizer_secret::policy::{Limit, Refusal, Revocations};

/// What to do while Redis is unreachable (`REDIS_FAILURE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureMode {
    /// Count limits in this process; revocations: the last set seen (and the file).
    Open,
    /// Refuse every request that carries a secret with 503.
    Closed,
}

impl std::fmt::Display for FailureMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Open => "open",
            Self::Closed => "closed",
        })
    }
}

impl FailureMode {
    /// Parse a `REDIS_FAILURE` value: `open` or `closed`, any case, surrounding space ignored.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            other => Err(format!("{other:?}: want open or closed")),
        }
    }
}

/// `REDIS_URL` and friends.
#[derive(Clone)]
pub struct FleetConfig {
    /// `redis://` or `rediss://`, credentials included: never logged.
    pub url: SecretString,
    /// `REDIS_PREFIX`: every key and the channel start with it.
    pub prefix: String,
    /// `REDIS_FAILURE`: what to do while Redis is unreachable.
    pub failure: FailureMode,
    /// How long one Redis call may take (`REDIS_TIMEOUT`).
    pub timeout: Duration,
    /// `REDIS_CA_FILE`: the CA (PEM) a `rediss://` server's certificate must chain to,
    /// instead of the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetConfig")
            .field("url", &"REDACTED")
            .field("prefix", &self.prefix)
            .field("failure", &self.failure)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Why a Redis call failed. Messages never hold the URL.
///
/// Only an unreachable Redis ([`FleetError::is_outage`]) is an outage, for which
/// `REDIS_FAILURE` decides; an error *answer* (a script error, a refused command, a
/// wrong type, an ACL refusal) means Redis is there and said no, and fails closed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// `REDIS_URL` is not a `redis://`/`rediss://` URL, or `REDIS_CA_FILE` is unusable.
    #[error("REDIS_URL: {0}")]
    Url(String),
    /// The connection failed or broke, or Redis is loading, failing over or read-only.
    #[error("redis: {0}")]
    Redis(String),
    /// Redis answered, with an error (or an answer this code does not understand).
    #[error("redis answered with an error: {0}")]
    Answer(String),
    /// A call got no answer within `REDIS_TIMEOUT`.
    #[error("redis: no answer within the timeout")]
    Timeout,
    /// The health monitor already knows Redis is down, so no call was made.
    #[error("redis is unreachable")]
    Down,
}

impl FleetError {
    /// Is Redis unreachable (or not serving), rather than answering with an error?
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Redis(_) | Self::Timeout | Self::Down)
    }
}

impl From<redis::RedisError> for FleetError {
    fn from(e: redis::RedisError) -> Self {
        use redis::{ErrorKind, ServerErrorKind};
        let unreachable = e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || matches!(
                e.kind(),
                ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::ReadOnly
                )
            );
        if unreachable {
            Self::Redis(e.to_string())
        } else {
            Self::Answer(e.to_string())
        }
    }
}

/// Where the fleet's state lives in Redis.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The keys under `prefix` (`REDIS_PREFIX`).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// Every key starts with it.
    fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A secret's counters' name: a one-way hash of the counter key, so whoever reads
    /// Redis cannot name the counter in a secret of their own (`rate_limit_key`) to
    /// spend another secret's limit.
    fn counter_id(&self, key: &[u8; 32]) -> String {
        let mut h = Sha256::new();
        h.update(b"tokenizer fleet counter\0");
        h.update(key);
        hex::encode(h.finalize())
    }

    /// A secret's counter of one kind (`rl`: rate, `max`: uses), by its id.
    fn counter(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    /// Every limited secret (`pool|id`), scored by its counters' expiry (ms): bounds the
    /// counters in Redis.
    fn registry(&self) -> String {
        format!("{}counters", self.prefix)
    }

    /// Each pool's number of limited secrets.
    fn pools(&self) -> String {
        format!("{}pools", self.prefix)
    }

    /// One pool's secrets (ids), scored by their last use (ms).
    fn pool(&self, pool: &str) -> String {
        format!("{}pool:{pool}", self.prefix)
    }

    /// The revocation set.
    pub fn revoked(&self) -> String {
        format!("{}revoked", self.prefix)
    }

    /// Bumped with every revocation, so instances re-read the set only when it changed.
    pub fn revoked_version(&self) -> String {
        format!("{}revoked:version", self.prefix)
    }

    /// A random marker of the data Redis holds: gone or changed when Redis lost it.
    pub fn epoch(&self) -> String {
        format!("{}epoch", self.prefix)
    }

    /// The channel revocations are announced on.
    pub fn channel(&self) -> String {
        format!("{}revoked", self.prefix)
    }
}

/// Open a client for `url` (`redis://` or `rediss://` only); `ca_pem` replaces the
/// system's roots for `rediss://`.
pub fn client(url: &SecretString, ca_pem: Option<&[u8]>) -> Result<redis::Client, FleetError> {
    let text = url.expose();
    let tls = text.starts_with("rediss://");
    if !(tls || text.starts_with("redis://")) {
        return Err(FleetError::Url("want redis://… or rediss://…".to_owned()));
    }
    // The parser's message could quote the URL, password included: not passed on.
    let bad = |_| FleetError::Url("not a valid Redis URL".to_owned());
    match ca_pem {
        Some(pem) if tls => redis::Client::build_with_tls(
            text,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        )
        .map_err(bad),
        Some(_) => Err(FleetError::Url(
            "REDIS_CA_FILE needs a rediss:// URL".to_owned(),
        )),
        None => redis::Client::open(text).map_err(bad),
    }
}

/// Read `REDIS_CA_FILE`.
pub fn read_ca(config: &FleetConfig) -> Result<Option<Vec<u8>>, FleetError> {
    config
        .ca_file
        .as_ref()
        .map(|path| {
            std::fs::read(path)
                .map_err(|e| FleetError::Url(format!("REDIS_CA_FILE {}: {e}", path.display())))
        })
        .transpose()
}

/// The fleet: a reconnecting connection, the health monitor and the revocation sync.
pub struct Fleet {
    conn: ConnectionManager,
    keys: Keys,
    failure: FailureMode,
    timeout: Duration,
    health: Arc<Health>,
    /// `RATE_LIMIT_KEYS`: counters the fleet keeps at once.
    capacity: usize,
    /// Counters the limit script dropped to make room, as this instance saw.
    evicted: std::sync::atomic::AtomicU64,
}

impl Fleet {
    /// Connect (lazily: an unreachable Redis is a degraded start, not a failed one) and
    /// start the health monitor and the revocation sync. Must run in a Tokio runtime.
    pub fn start(
        config: &FleetConfig,
        revocations: Revocations,
        capacity: usize,
    ) -> Result<Arc<Self>, FleetError> {
        let client = client(&config.url, read_ca(config)?.as_deref())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout.max(Duration::from_secs(1))))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)?;
        let keys = Keys::new(&config.prefix);
        let health = Arc::new(Health::default());
        let fleet = Arc::new(Self {
            conn,
            keys: keys.clone(),
            failure: config.failure,
            timeout: config.timeout,
            health: health.clone(),
            capacity: capacity.max(1),
            evicted: std::sync::atomic::AtomicU64::new(0),
        });
        health::spawn_monitor(fleet.conn.clone(), health.clone(), config.timeout);
        revocations::spawn_sync(client, fleet.conn.clone(), keys, revocations, health);
        Ok(fleet)
    }

    /// `REDIS_FAILURE`: what the caller does while Redis is unreachable.
    pub fn failure(&self) -> FailureMode {
        self.failure
    }

    /// Whether Redis is answering and the revocation channel subscribed, with counters.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Wait (at most `within`) for Redis to answer and the revocation set to be
    /// subscribed (and so loaded); whether both happened.
    pub async fn ready(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        if !self.health.wait_up(within).await {
            return false;
        }
        while !self.health.is_subscribed() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Take one request from every limit, across the fleet. `Err` when Redis did not
    /// decide: the caller applies `REDIS_FAILURE` to an outage and refuses on an error
    /// answer ([`FleetError::is_outage`]).
    pub async fn take(&self, limits: &[Limit]) -> Result<Result<(), Refusal>, FleetError> {
        if !self.health.is_up() {
            return Err(FleetError::Down);
        }
        let mut conn = self.conn.clone();
        let call = limits::take(&mut conn, &self.keys, limits, self.capacity);
        let outcome = match tokio::time::timeout(self.timeout, call).await {
            Ok(outcome) => outcome,
            Err(_) => Err(FleetError::Timeout),
        };
        match outcome {
            Ok(taken) => {
                self.evicted
                    .fetch_add(taken.evicted, std::sync::atomic::Ordering::Relaxed);
                Ok(taken.decided)
            }
            Err(e) => {
                self.health.record_error();
                Err(e)
            }
        }
    }

    /// Counters the fleet dropped to make room, in this instance's requests.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Add `entry` (an id or a digest) to the fleet's revocations and announce it.
    pub async fn revoke(&self, entry: &str) -> Result<(), FleetError> {
        let mut conn = self.conn.clone();
        let call = revocations::revoke(&mut conn, &self.keys, entry);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(FleetError::Timeout),
        }
    }

    /// Are revocations as current as the fleet's (Redis answering, subscribed)?
    pub fn revocations_current(&self) -> bool {
        self.health.is_up() && self.health.is_subscribed()
    }
}
