//! Revoked secrets: ids or SHA-256 digests (hex) of sealed secrets, from two sources
//! that add up.
//!
//! - `REVOKED_SECRETS_FILE`: one per line (`#` starts a comment). The file is checked
//!   for changes every second and re-read without a restart; if it becomes unreadable
//!   the last good list stays.
//! - The fleet's set in Redis (`REDIS_URL`), kept current by the fleet crate: every
//!   instance sees a revocation within a second; while Redis is unreachable the last
//!   set seen stays, and an entry Redis loses is written back by any instance that
//!   still knows it. A revocation is never taken back.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// The current revocation lists.
#[derive(Clone, Default)]
pub struct Revocations {
    list: Arc<RwLock<Arc<HashSet<String>>>>,
    fleet: Arc<RwLock<Arc<HashSet<String>>>>,
}

impl Revocations {
    /// Load `path` now (an unreadable file is an error) and watch it for changes.
    pub fn watch(path: PathBuf) -> std::io::Result<Self> {
        let this = Self::default();
        let mut stamp = stamp(&path)?;
        this.replace(read(&path)?);
        let watcher = this.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Ok(now) = stamp_of(&path) else { continue };
                if now == stamp {
                    continue;
                }
                match read(&path) {
                    Ok(list) => {
                        tracing::info!(entries = list.len(), "revocation list reloaded");
                        watcher.replace(list);
                        stamp = now;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot re-read REVOKED_SECRETS_FILE"),
                }
            }
        });
        Ok(this)
    }

    fn replace(&self, list: HashSet<String>) {
        *self.list.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(list);
    }

    /// The fleet's whole set, as just read from Redis, added to what this instance
    /// already knew: a revocation is never taken back, so one that Redis lost (a
    /// restart without persistence, `FLUSHALL`, a failover to an empty replica) stays
    /// in force here, and is written back (by the fleet crate).
    pub fn merge_fleet(&self, set: HashSet<String>) {
        let mut fleet = self.fleet.write().unwrap_or_else(|p| p.into_inner());
        if set.iter().all(|e| fleet.contains(e)) {
            return;
        }
        let mut merged = HashSet::clone(&fleet);
        merged.extend(set);
        *fleet = Arc::new(merged);
    }

    /// The fleet's revocations this instance knows.
    pub fn fleet_entries(&self) -> Arc<HashSet<String>> {
        self.fleet.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// One revocation announced by another instance.
    pub fn add_fleet(&self, entry: String) {
        let mut fleet = self.fleet.write().unwrap_or_else(|p| p.into_inner());
        if !fleet.contains(&entry) {
            let mut set = HashSet::clone(&fleet);
            set.insert(entry);
            *fleet = Arc::new(set);
        }
    }

    /// Is a secret with this `id` and sealed-secret `digest` revoked?
    pub fn is_revoked(&self, id: Option<&str>, digest: impl FnOnce() -> String) -> bool {
        let list = self.list.read().unwrap_or_else(|p| p.into_inner()).clone();
        let fleet = self.fleet.read().unwrap_or_else(|p| p.into_inner()).clone();
        if list.is_empty() && fleet.is_empty() {
            return false;
        }
        let listed = |entry: &str| list.contains(entry) || fleet.contains(entry);
        id.is_some_and(listed) || listed(&digest())
    }

    /// Entries of both lists.
    pub fn len(&self) -> usize {
        self.list.read().map_or(0, |l| l.len()) + self.fleet_len()
    }

    /// Entries of the fleet's list.
    pub fn fleet_len(&self) -> usize {
        self.fleet.read().map_or(0, |l| l.len())
    }

    /// Are both lists empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

type Stamp = (SystemTime, u64);

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    stamp_of(path)
}

fn stamp_of(path: &Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.modified()?, meta.len()))
}

fn read(path: &Path) -> std::io::Result<HashSet<String>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(normalize)
        .collect())
}

/// An entry as it is compared: digests in lowercase hex, ids as they are.
pub fn normalize(entry: &str) -> String {
    if entry.len() == 64 && entry.bytes().all(|b| b.is_ascii_hexdigit()) {
        entry.to_ascii_lowercase()
    } else {
        entry.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_ids_and_digests_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked");
        let digest = "AB".repeat(32);
        std::fs::write(&path, format!("# revoked\nkey-1\n{digest}  # old\n")).unwrap();
        let r = Revocations::watch(path.clone()).unwrap();
        assert!(r.is_revoked(Some("key-1"), String::new));
        assert!(r.is_revoked(None, || "ab".repeat(32)));
        assert!(!r.is_revoked(Some("key-2"), || "cd".repeat(32)));
        std::fs::write(&path, "key-2\n").unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(r.is_revoked(Some("key-2"), String::new));
        assert!(!r.is_revoked(Some("key-1"), String::new));
        assert!(Revocations::watch(dir.path().join("missing")).is_err());
    }
}
