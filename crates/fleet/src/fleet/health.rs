//! Is Redis answering? A ping a second from a background task; requests never wait on
//! a Redis that is known to be down. Losing and regaining the fleet view is logged once
//! each.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::sync::Notify;

/// The fleet view's health, shared by the monitor, the sync and the request path.
#[derive(Default)]
pub struct Health {
    up: AtomicBool,
    subscribed: AtomicBool,
    /// Round trip of the last successful ping, in microseconds.
    rtt_us: AtomicU64,
    errors: AtomicU64,
    /// Times the fleet's data was found lost (see `revocations`).
    data_losses: AtomicU64,
    /// Woken when Redis comes (back) up.
    came_up: Notify,
}

impl Health {
    /// Did the last ping succeed within the timeout?
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Is the revocation channel subscribed now (and so the fleet's set being followed)?
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    pub(super) fn set_subscribed(&self, on: bool) {
        self.subscribed.store(on, Ordering::Release);
    }

    /// The last round trip to Redis.
    pub fn rtt(&self) -> Duration {
        Duration::from_micros(self.rtt_us.load(Ordering::Relaxed))
    }

    /// Failed Redis calls and pings since start.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Times Redis was found to have lost the fleet's data since start.
    pub fn data_losses(&self) -> u64 {
        self.data_losses.load(Ordering::Relaxed)
    }

    pub(super) fn record_data_loss(&self) {
        self.data_losses.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn record_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) async fn wait_up(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let woken = self.came_up.notified();
            if self.is_up() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, woken).await.is_err() {
                return self.is_up();
            }
        }
    }

    fn up(&self, rtt: Duration) {
        self.rtt_us.store(
            u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if !self.up.swap(true, Ordering::AcqRel) {
            tracing::info!(rtt_ms = rtt.as_secs_f64() * 1000.0, "fleet view (Redis) up");
            self.came_up.notify_waiters();
        }
    }

    fn down(&self, error: &str) {
        self.record_error();
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                error,
                "fleet view (Redis) lost: REDIS_FAILURE applies until it returns"
            );
        }
    }
}

/// Ping every second (and at once); a ping that fails or takes longer than `timeout`
/// marks Redis down.
pub(super) fn spawn_monitor(conn: ConnectionManager, health: Arc<Health>, timeout: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first = true;
        loop {
            tick.tick().await;
            let mut c = conn.clone();
            let started = Instant::now();
            let cmd = redis::cmd("PING");
            let ping = cmd.query_async::<String>(&mut c);
            match tokio::time::timeout(timeout.max(Duration::from_millis(500)), ping).await {
                Ok(Ok(_)) => health.up(started.elapsed()),
                Ok(Err(e)) => {
                    if first {
                        tracing::warn!(error = %e, "fleet view (Redis) not reachable at start");
                    }
                    health.down(&e.to_string());
                }
                Err(_) => health.down("ping timed out"),
            }
            first = false;
        }
    });
}
