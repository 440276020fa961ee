//! Forged certificates by SNI: forged on first use (or ahead of time), reused until a
//! day before expiry, bounded in number. Unknown names get no certificate, so their
//! handshake fails.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::CertificateAuthority;
use super::leaf::Leaf;

/// Replace a leaf this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(24 * 3600);

/// The sidecar's TLS certificate resolver: one forged leaf per target SNI, cached and
/// renewed a day before expiry; unknown names get no certificate.
pub struct CertCache {
    ca: CertificateAuthority,
    names: HashSet<String>,
    leaves: Mutex<HashMap<String, Leaf>>,
    max: usize,
    hits: Counter,
    misses: Counter,
}

impl CertCache {
    /// Serve certificates for `names` only, keeping at most `max` leaves.
    pub fn new(
        ca: CertificateAuthority,
        names: impl IntoIterator<Item = String>,
        max: usize,
    ) -> Self {
        Self {
            ca,
            names: names.into_iter().map(|n| n.to_ascii_lowercase()).collect(),
            leaves: Mutex::new(HashMap::new()),
            max: max.max(1),
            hits: Counter::default(),
            misses: Counter::default(),
        }
    }

    /// Count certificates served from the cache in `hits`, forged in `misses`.
    pub fn with_counters(mut self, hits: Counter, misses: Counter) -> Self {
        self.hits = hits;
        self.misses = misses;
        self
    }

    /// The CA the leaves are forged with.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// How many leaves are cached.
    pub fn len(&self) -> usize {
        self.leaves.lock().map_or(0, |l| l.len())
    }

    /// No leaf is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forge every name now, so first handshakes are fast.
    pub fn warm(&self) {
        let names: Vec<String> = self.names.iter().cloned().collect();
        for name in names {
            let _ = self.get(&name);
        }
    }

    /// The certificate for `name`, if it is one of ours.
    pub fn get(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if !self.names.contains(&name) {
            return None;
        }
        let now = SystemTime::now();
        let mut leaves = self.leaves.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(leaf) = leaves.get(&name)
            && leaf.not_after > now + RENEW_BEFORE
        {
            self.hits.inc();
            return Some(leaf.key.clone());
        }
        self.misses.inc();
        let leaf = match self.ca.forge(&name) {
            Ok(leaf) => leaf,
            Err(e) => {
                tracing::error!(%name, error = %e, "cannot forge certificate");
                return None;
            }
        };
        let key = leaf.key.clone();
        if leaves.len() >= self.max && !leaves.contains_key(&name) {
            // Evict the leaf closest to expiry.
            if let Some(oldest) = leaves
                .iter()
                .min_by_key(|(_, l)| l.not_after)
                .map(|(n, _)| n.clone())
            {
                leaves.remove(&oldest);
            }
        }
        leaves.insert(name, leaf);
        Some(key)
    }
}

impl fmt::Debug for CertCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertCache")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertCache {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?;
        let found = self.get(name);
        if found.is_none() {
            tracing::info!(sni = %name, "TLS refused: not a target");
        }
        found
    }
}
