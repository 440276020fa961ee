//! Prometheus metrics (`/metrics`, text format).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::entry::AuditEntry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    role: &'static str,
    status: u16,
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    role: &'static str,
}

type HistogramFamily = Family<RoleLabels, Histogram, fn() -> Histogram>;

/// A series from its resolved `cell` (looked up by `lookup` on first use), or looked up
/// now when the role has no cell. Series share their values with their family's entry.
fn resolved<M: Clone>(cell: Option<&std::sync::OnceLock<M>>, lookup: impl FnOnce() -> M) -> M {
    match cell {
        Some(cell) => cell.get_or_init(lookup).clone(),
        None => lookup(),
    }
}

/// The roles whose per-role series are looked up once ([`Metrics::observe`]).
const ROLES: [&str; 2] = ["serve", "sideproxy"];

/// One role's series, resolved on first use: a family lookup hashes its labels under a
/// lock on every call, four times per request otherwise. Each is created when first
/// observed, so a series appears in `/metrics` exactly when it did before.
#[derive(Default)]
struct RoleSeries {
    duration: std::sync::OnceLock<Histogram>,
    upstream_duration: std::sync::OnceLock<Histogram>,
    request_bytes: std::sync::OnceLock<Counter>,
    response_bytes: std::sync::OnceLock<Counter>,
}

/// Every metric the process exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
    upstream_duration: HistogramFamily,
    request_bytes: Family<RoleLabels, Counter>,
    response_bytes: Family<RoleLabels, Counter>,
    reflections: Counter,
    pii_redacted: Counter,
    mcp_tool_calls: Family<DecisionLabels, Counter>,
    /// The per-role series of [`ROLES`], resolved once.
    roles: [RoleSeries; 2],
    /// Sealed secrets opened (X25519 + decryption).
    pub secrets_opened: Counter,
    /// Sealed secrets found in the unseal cache.
    pub unseal_cache_hits: Counter,
    /// Forged certificates served from the sidecar's certificate cache.
    pub cert_cache_hits: Counter,
    /// Certificates the sidecar had to forge (not cached, or due for renewal).
    pub cert_cache_misses: Counter,
    /// Upstream connections opened since start.
    pub upstream_connections: Counter,
    /// Upstream connections open now (pooled idle ones included).
    pub upstream_connections_open: Gauge,
    /// Client connections open now (bound: `MAX_CONNECTIONS`, plus those closing).
    pub connections_open: Gauge,
    /// Idle keep-alive client connections parked without their HTTP buffers.
    pub connections_parked: Gauge,
    /// OIDC tokens accepted from the cache of verified tokens.
    pub oidc_cache_hits: Counter,
    /// Bytes the unseal cache holds, estimated (bound: `UNSEAL_CACHE_BYTES`). This and
    /// the other table gauges a client can grow are sampled when scraped (see
    /// [`Metrics::set_sampler`]).
    pub unseal_cache_bytes: Gauge,
    /// Secrets in the unseal cache (bound: `UNSEAL_CACHE_SIZE`).
    pub unseal_cache_entries: Gauge,
    /// Rate-limit counters held (bound: `RATE_LIMIT_KEYS`).
    pub rate_limit_keys: Gauge,
    /// Limit counters dropped to make room (the largest pool's least recently used).
    pub rate_limit_evictions: Gauge,
    /// Request body bytes buffered now (bound: `BUFFERED_BODY_BUDGET`).
    pub buffered_body_bytes: Gauge,
    /// Log lines dropped because the writer's queue was full (see `logging`).
    log_lines_dropped: Gauge,
    /// The fleet's Redis, with `REDIS_URL`.
    pub fleet: Option<FleetMetrics>,
    sampler: std::sync::OnceLock<Sampler>,
}

/// The fleet's Redis as the last scrape saw it.
#[derive(Default)]
pub struct FleetMetrics {
    /// 1 while Redis answers pings.
    pub up: Gauge,
    /// The last ping's round trip.
    pub rtt_seconds: Gauge<f64, AtomicU64>,
    /// Failed Redis calls and pings since start.
    pub errors: Gauge,
    /// Entries of the fleet's revocation set this instance holds.
    pub revocations: Gauge,
    /// Times Redis was found to have lost the fleet's data.
    pub data_losses: Gauge,
}

/// Reads the proxy's table sizes into the gauges before they are encoded.
type Sampler = Box<dyn Fn(&Metrics) + Send + Sync>;

fn latency_histogram() -> Histogram {
    // 100 µs … ~105 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 21))
}

impl Metrics {
    /// `fleet`: also export the fleet's Redis health.
    pub fn new(fleet: bool) -> Self {
        let this = Self {
            registry: Registry::default(),
            requests: Family::default(),
            mcp_tool_calls: Family::default(),
            roles: Default::default(),
            duration: Family::new_with_constructor(latency_histogram),
            upstream_duration: Family::new_with_constructor(latency_histogram),
            request_bytes: Family::default(),
            response_bytes: Family::default(),
            reflections: Counter::default(),
            pii_redacted: Counter::default(),
            secrets_opened: Counter::default(),
            unseal_cache_hits: Counter::default(),
            cert_cache_hits: Counter::default(),
            cert_cache_misses: Counter::default(),
            upstream_connections: Counter::default(),
            upstream_connections_open: Gauge::default(),
            connections_open: Gauge::default(),
            connections_parked: Gauge::default(),
            oidc_cache_hits: Counter::default(),
            unseal_cache_bytes: Gauge::default(),
            unseal_cache_entries: Gauge::default(),
            rate_limit_keys: Gauge::default(),
            rate_limit_evictions: Gauge::default(),
            buffered_body_bytes: Gauge::default(),
            log_lines_dropped: Gauge::default(),
            fleet: fleet.then(FleetMetrics::default),
            sampler: std::sync::OnceLock::new(),
        };
        let mut registry = Registry::with_prefix("tokenizer");
        this.register_traffic(&mut registry);
        this.register_work(&mut registry);
        this.register_tables(&mut registry);
        if let Some(fleet) = &this.fleet {
            fleet.register(&mut registry);
        }
        Self { registry, ..this }
    }

    /// Requests, their latency and their bytes.
    fn register_traffic(&self, registry: &mut Registry) {
        registry.register(
            "requests",
            "Requests by role, status and decision",
            self.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request to the end of the response body",
            self.duration.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time from sending upstream to the response headers",
            self.upstream_duration.clone(),
        );
        registry.register(
            "request_bytes",
            "Request body bytes",
            self.request_bytes.clone(),
        );
        registry.register(
            "response_bytes",
            "Response body bytes",
            self.response_bytes.clone(),
        );
        registry.register(
            "mcp_tool_calls",
            "MCP tool calls judged by allowed_mcp_tools, by the request's decision",
            self.mcp_tool_calls.clone(),
        );
    }

    /// What the proxy did: redactions, secrets opened, caches, connections.
    fn register_work(&self, registry: &mut Registry) {
        for (name, help, counter) in [
            (
                "reflections_redacted",
                "Injected credentials found in responses and replaced",
                &self.reflections,
            ),
            (
                "pii_redacted_requests",
                "Requests whose body had PII replaced",
                &self.pii_redacted,
            ),
            (
                "secrets_opened",
                "Sealed secrets opened",
                &self.secrets_opened,
            ),
            (
                "unseal_cache_hits",
                "Sealed secrets served from the unseal cache",
                &self.unseal_cache_hits,
            ),
            (
                "cert_cache_hits",
                "Forged certificates reused",
                &self.cert_cache_hits,
            ),
            (
                "cert_cache_misses",
                "Certificates forged",
                &self.cert_cache_misses,
            ),
            (
                "upstream_connections",
                "Upstream connections opened",
                &self.upstream_connections,
            ),
            (
                "oidc_verified_cache_hits",
                "OIDC tokens accepted without a second signature check (verified before)",
                &self.oidc_cache_hits,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "upstream_connections_open",
            "Upstream connections open now",
            self.upstream_connections_open.clone(),
        );
        registry.register(
            "connections_open",
            "Client connections open now",
            self.connections_open.clone(),
        );
        registry.register(
            "connections_parked",
            "Idle keep-alive client connections parked without their HTTP buffers",
            self.connections_parked.clone(),
        );
    }

    /// The tables and buffers a client can grow, each with its bound.
    fn register_tables(&self, registry: &mut Registry) {
        for (name, help, gauge) in [
            (
                "unseal_cache_bytes",
                "Bytes the unseal cache holds (estimated; bound: UNSEAL_CACHE_BYTES)",
                &self.unseal_cache_bytes,
            ),
            (
                "unseal_cache_entries",
                "Secrets in the unseal cache (bound: UNSEAL_CACHE_SIZE)",
                &self.unseal_cache_entries,
            ),
            (
                "rate_limit_keys",
                "Rate-limit counters held (bound: RATE_LIMIT_KEYS)",
                &self.rate_limit_keys,
            ),
            (
                "rate_limit_evictions",
                "Limit counters dropped to make room since start, in this process and by \
                 this instance's requests in Redis (the largest pool's least recently used)",
                &self.rate_limit_evictions,
            ),
            (
                "buffered_body_bytes",
                "Request body bytes buffered now (bound: BUFFERED_BODY_BUDGET)",
                &self.buffered_body_bytes,
            ),
            (
                "log_lines_dropped",
                "Log lines (audit lines included) dropped because the writer fell behind",
                &self.log_lines_dropped,
            ),
        ] {
            registry.register(name, help, gauge.clone());
        }
    }

    /// Install the function that samples the table gauges at each scrape (once).
    pub fn set_sampler(&self, sampler: impl Fn(&Metrics) + Send + Sync + 'static) {
        let _ = self.sampler.set(Box::new(sampler));
    }

    /// Count a finished request.
    pub fn observe(&self, e: &AuditEntry) {
        self.requests
            .get_or_create(&RequestLabels {
                role: e.role,
                status: e.status,
                decision: e.decision.as_str(),
            })
            .inc();
        let role = RoleLabels { role: e.role };
        let series = ROLES
            .iter()
            .position(|r| *r == e.role)
            .map(|i| &self.roles[i]);
        resolved(series.map(|s| &s.duration), || {
            self.duration.get_or_create(&role).clone()
        })
        .observe(e.total_ms / 1000.0);
        if let Some(ms) = e.upstream_ms {
            resolved(series.map(|s| &s.upstream_duration), || {
                self.upstream_duration.get_or_create(&role).clone()
            })
            .observe(ms / 1000.0);
        }
        resolved(series.map(|s| &s.request_bytes), || {
            self.request_bytes.get_or_create(&role).clone()
        })
        .inc_by(e.request_bytes);
        resolved(series.map(|s| &s.response_bytes), || {
            self.response_bytes.get_or_create(&role).clone()
        })
        .inc_by(e.response_bytes);
        self.reflections.inc_by(e.reflections as u64);
        if !e.mcp_tools.is_empty() {
            self.mcp_tool_calls
                .get_or_create(&DecisionLabels {
                    decision: e.decision.as_str(),
                })
                .inc_by(e.mcp_tools.len() as u64);
        }
        if !e.pii.is_empty() {
            self.pii_redacted.inc();
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        if let Some(sample) = self.sampler.get() {
            sample(self);
        }
        self.log_lines_dropped
            .set(i64::try_from(crate::logging::dropped_lines()).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl FleetMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "redis_up",
            "1 while the fleet's Redis answers",
            self.up.clone(),
        );
        registry.register(
            "redis_rtt_seconds",
            "Round trip of the last ping to the fleet's Redis",
            self.rtt_seconds.clone(),
        );
        registry.register(
            "redis_errors",
            "Failed calls and pings to the fleet's Redis since start",
            self.errors.clone(),
        );
        registry.register(
            "fleet_revocations",
            "Entries of the fleet's revocation set held by this instance",
            self.revocations.clone(),
        );
        registry.register(
            "redis_data_losses",
            "Times the fleet's Redis was found to have lost its data (counters started \
             afresh; revocations written back) since start",
            self.data_losses.clone(),
        );
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(false)
    }
}
