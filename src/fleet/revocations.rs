//! Revocations across the fleet. A revocation is added to a set in Redis, its version is
//! bumped, and it is announced on a channel, in one transaction. Every instance
//! subscribes to the channel (a revocation reaches it within milliseconds) and checks
//! the version every [`REFRESH`] (and whenever it (re)subscribes), re-reading the whole
//! set when it changed: an announcement missed while disconnected is picked up then.
//! While Redis is unreachable the last set seen stays in force.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionLike, ConnectionManager};

use super::{FleetError, Health, Keys};
use crate::policy::Revocations;
use crate::policy::revocation::normalize;

/// How often the set's version is checked.
const REFRESH: Duration = Duration::from_secs(5);
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
}

impl Sync {
    /// Re-read the set if its version changed; false when Redis did not answer.
    async fn refresh(&mut self) -> bool {
        let read = async {
            let version: Option<i64> = self.conn.get(self.keys.revoked_version()).await?;
            let version = version.unwrap_or(0);
            if self.version == Some(version) {
                return Ok::<_, redis::RedisError>(None);
            }
            let set: HashSet<String> = self.conn.smembers(self.keys.revoked()).await?;
            Ok(Some((version, set)))
        };
        match tokio::time::timeout(REFRESH, read).await {
            Ok(Ok(Some((version, set)))) => {
                let set: HashSet<String> = set.iter().filter_map(|e| entry(e).ok()).collect();
                tracing::info!(entries = set.len(), version, "fleet revocations loaded");
                self.revocations.replace_fleet(set);
                self.version = Some(version);
                true
            }
            Ok(Ok(None)) => true,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "fleet revocations: cannot read");
                false
            }
            Err(_) => false,
        }
    }
}
