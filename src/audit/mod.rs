//! What the proxy remembers about its traffic, without a database: one audit line per
//! request (logged as JSON), the last N of them in a bounded in-memory ring (for
//! `/v1/audit` and the dashboard), and Prometheus metrics.

mod entry;
mod metrics;
mod ring;

use std::sync::Arc;

pub use entry::{AuditEntry, Decision};
pub use metrics::Metrics;
pub use ring::{AuditQuery, AuditRing};

/// Shared by every request of a process.
pub struct Telemetry {
    pub ring: AuditRing,
    pub metrics: Metrics,
}

impl Telemetry {
    pub fn new(ring_size: usize) -> Arc<Self> {
        Arc::new(Self {
            ring: AuditRing::new(ring_size),
            metrics: Metrics::new(),
        })
    }

    /// Log, store and count one finished request.
    pub fn record(&self, entry: AuditEntry) {
        self.metrics.observe(&entry);
        entry.log();
        self.ring.push(entry);
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self {
            ring: AuditRing::new(1000),
            metrics: Metrics::new(),
        }
    }
}
