//! Revocations across the fleet. A revocation is added to a set in Redis, its version is
//! bumped, and it is announced on a channel, in one transaction. Every instance
//! subscribes to the channel (a revocation reaches it within milliseconds) and checks
//! the version and the set's size every `REFRESH` (and whenever it (re)subscribes),
//! re-reading the whole set when either changed: an announcement missed while
//! disconnected is picked up then. While Redis is unreachable the last set seen stays in
//! force.
//!
//! Redis can lose its data (a restart without persistence, `FLUSHALL`, a failover to an
//! empty replica). A revocation is never taken back, so every instance keeps what it
//! has seen, and one that finds entries missing from Redis writes them back: an instance
//! started afterwards loads them. The same check notices the loss itself — the
//! `{prefix}epoch` marker this code sets is gone — and logs it (use counts and rate
//! counters started afresh then).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionLike, ConnectionManager};

use super::{FleetError, Health, Keys};
use tokenizer_secret::policy::Revocations;
use tokenizer_secret::policy::revocation::normalize;

/// How often the set's version is checked.
const REFRESH: Duration = Duration::from_secs(1);
/// The longest entry accepted: ids are short names, digests 64 hex characters.
const MAX_ENTRY: usize = 256;

/// Check a revocation entry (an id, or the hex digest of a sealed secret); returns it as
/// it is compared.
pub fn entry(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_ENTRY {
        return Err(format!("an id or digest of 1 to {MAX_ENTRY} characters"));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("no spaces or control characters".to_owned());
    }
    Ok(normalize(text))
}

/// Add `entry` to the fleet's revocations, bump the version and announce it.
pub async fn revoke<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    entry: &str,
) -> Result<(), FleetError> {
    let entry = self::entry(entry).map_err(FleetError::Redis)?;
    redis::pipe()
        .atomic()
        .sadd(keys.revoked(), &entry)
        .ignore()
        .incr(keys.revoked_version(), 1)
        .ignore()
        .publish(keys.channel(), &entry)
        .ignore()
        .query_async::<()>(conn)
        .await?;
    Ok(())
}

/// Keep `revocations`' fleet list current: subscribe, and refresh on (re)subscription
/// and every [`REFRESH`].
pub(super) fn spawn_sync(
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
    revocations: Revocations,
    health: Arc<Health>,
) {
    tokio::spawn(async move {
        let mut sync = Sync {
            conn,
            keys,
            revocations,
            version: None,
            epoch: None,
            health: health.clone(),
        };
        loop {
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => {
                    if pubsub.subscribe(sync.keys.channel()).await.is_ok() {
                        health.set_subscribed(true);
                        sync.refresh().await;
                        let mut messages = pubsub.on_message();
                        let mut tick = tokio::time::interval(REFRESH);
                        tick.tick().await;
                        loop {
                            tokio::select! {
                                msg = messages.next() => match msg {
                                    Some(msg) => {
                                        if let Ok(text) = msg.get_payload::<String>()
                                            && let Ok(entry) = entry(&text)
                                        {
                                            sync.revocations.add_fleet(entry);
                                        }
                                    }
                                    None => break,
                                },
                                _ = tick.tick() => {
                                    // A subscription on a dead connection gets no
                                    // messages and no error: the version check finds out.
                                    if !sync.refresh().await {
                                        break;
                                    }
                                }
                            }
                        }
                        health.set_subscribed(false);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "revocation channel: cannot subscribe"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

struct Sync {
    conn: ConnectionManager,
    keys: Keys,
    revocations: Revocations,
    /// The version of the set last read.
    version: Option<i64>,
    /// The marker of the Redis data this instance has seen (see [`Sync::check_epoch`]).
    epoch: Option<String>,
    health: Arc<Health>,
}

impl Sync {
    /// Re-read the set if its version or size changed, and write back what Redis lost;
    /// false when Redis did not answer.
    async fn refresh(&mut self) -> bool {
        match tokio::time::timeout(REFRESH.max(Duration::from_secs(2)), self.read()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "fleet revocations: cannot read");
                false
            }
            Err(_) => false,
        }
    }

    async fn read(&mut self) -> Result<(), redis::RedisError> {
        self.check_epoch().await?;
        let (version, size): (Option<i64>, usize) = redis::pipe()
            .get(self.keys.revoked_version())
            .scard(self.keys.revoked())
            .query_async(&mut self.conn)
            .await?;
        let version = version.unwrap_or(0);
        let known = self.revocations.fleet_entries();
        if self.version == Some(version) && size >= known.len() {
            return Ok(());
        }
        let set: HashSet<String> = self.conn.smembers(self.keys.revoked()).await?;
        let set: HashSet<String> = set.iter().filter_map(|e| entry(e).ok()).collect();
        let lost: Vec<&String> = known.iter().filter(|e| !set.contains(*e)).collect();
        if !lost.is_empty() {
            tracing::warn!(
                entries = lost.len(),
                "fleet revocations: Redis lost entries this instance knows; writing them back"
            );
            redis::pipe()
                .atomic()
                .sadd(self.keys.revoked(), &lost)
                .ignore()
                .incr(self.keys.revoked_version(), 1)
                .ignore()
                .query_async::<()>(&mut self.conn)
                .await?;
        }
        tracing::info!(entries = set.len(), version, "fleet revocations loaded");
        self.revocations.merge_fleet(set);
        // Read again next time if entries were written back (the version moved).
        self.version = lost.is_empty().then_some(version);
        Ok(())
    }

    /// The fleet's data carries a random marker (`{prefix}epoch`), set by whichever
    /// instance first finds none. A marker that changed or vanished since this instance
    /// last saw it means Redis lost its data: logged and counted.
    async fn check_epoch(&mut self) -> Result<(), redis::RedisError> {
        let key = self.keys.epoch();
        let fresh = hex::encode(rand_bytes());
        redis::cmd("SET")
            .arg(&key)
            .arg(&fresh)
            .arg("NX")
            .query_async::<Option<String>>(&mut self.conn)
            .await?;
        let current: Option<String> = self.conn.get(&key).await?;
        if let (Some(seen), Some(now)) = (&self.epoch, &current)
            && seen != now
        {
            tracing::warn!(
                "fleet view (Redis) lost its data: use counts and rate counters start afresh; \
                 revocations are written back by the instances that know them"
            );
            self.health.record_data_loss();
            // Re-read the set whatever its version says.
            self.version = None;
        }
        self.epoch = current;
        Ok(())
    }
}

/// 16 random bytes for the epoch marker.
fn rand_bytes() -> [u8; 16] {
    use crypto_box::aead::rand_core::RngCore;
    let mut bytes = [0u8; 16];
    crypto_box::aead::OsRng.fill_bytes(&mut bytes);
    bytes
}
