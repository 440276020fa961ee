//! What the proxy remembers about its traffic, without a database: one audit line per
//! request (logged as JSON), the last N of them in a bounded in-memory ring (for
//! `/v1/audit` and the dashboard), and Prometheus metrics.

mod entry;
mod metrics;
pub mod request_log;
mod response;
mod ring;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use entry::{AuditEntry, Decision, MAX_ENTRY_BYTES};
pub use metrics::Metrics;
pub use request_log::{RequestEnd, RequestLog};
pub use response::{IntoErrorResponse, error_response};
pub use ring::{AuditQuery, AuditRing};

/// Shared by every request of a process.
pub struct Telemetry {
    /// The last `AUDIT_RING_SIZE` entries, for `/v1/audit` and the dashboard.
    pub ring: AuditRing,
    /// The Prometheus metrics served at `/metrics`.
    pub metrics: Metrics,
    /// Requests since start, by decision (indexed by [`Decision::index`]).
    totals: [AtomicU64; Decision::ALL.len()],
}

impl Telemetry {
    /// `fleet`: export the fleet's Redis health too (`REDIS_URL` is set).
    pub fn new(ring_size: usize, fleet: bool) -> Arc<Self> {
        Arc::new(Self {
            ring: AuditRing::new(ring_size),
            metrics: Metrics::new(fleet),
            totals: Default::default(),
        })
    }

    /// Log, store and count one finished request.
    pub fn record(&self, mut entry: AuditEntry) {
        self.metrics.observe(&entry);
        self.totals[entry.decision.index()].fetch_add(1, Ordering::Relaxed);
        entry.log();
        // The secrets' JSON is for the log line only; the ring keeps clipped fields, so
        // it is bounded in bytes (about AUDIT_RING_SIZE × MAX_ENTRY_BYTES).
        entry.secrets = String::new();
        entry.clip();
        self.ring.push(entry);
    }

    /// Requests since start by decision, plus `total`.
    pub fn totals(&self) -> BTreeMap<&'static str, u64> {
        let mut totals: BTreeMap<&'static str, u64> = Decision::ALL
            .iter()
            .map(|d| (d.as_str(), self.totals[d.index()].load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let total = totals.values().sum();
        totals.insert("total", total);
        totals
    }
}
