//! Connection slots (`MAX_CONNECTIONS`): a full table makes room instead of locking
//! newcomers out.
//!
//! A client that opens many connections and keeps them alive with a cheap request now
//! and then would otherwise hold every slot. When every slot is taken, an accepted
//! connection gets one by closing another:
//!
//! 1. the connection that has been idle longest (no request in flight; a connection that
//!    never sent one is idle since it was accepted) — its client reconnects when it next
//!    needs to, as after any keep-alive timeout;
//! 2. if every connection is busy, the oldest connection of the source (an IPv4 address,
//!    an IPv6 /64) holding the most slots, when it holds more than the newcomer's source
//!    would: it finishes its request in flight, then closes;
//! 3. otherwise (the newcomer's own source holds the most) the newcomer is closed.
//!
//! Idleness is known only for connections whose listener tracks requests
//! ([`track_requests`], [`InFlight`]): the proxy's listeners do, and an untracked
//! connection is always busy. Connections asked to close keep their slot until they
//! have; at most `MAX_CONNECTIONS` more than the limit can be closing at once.
//!
//! Hand-written: a semaphore (what this replaces) only counts, and a connection pool
//! crate manages outgoing connections, not accepted ones.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio_util::sync::CancellationToken;

/// Milliseconds are counted from here.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX)
}

tokio::task_local! {
    /// The state of the connection a task serves (set by the accept loop).
    static CONNECTION: Arc<ConnState>;
}

/// What the slot table knows of one connection's activity.
#[derive(Debug)]
pub struct ConnState {
    /// Requests are counted ([`track_requests`]): without it, never idle.
    tracked: AtomicBool,
    in_flight: AtomicU32,
    /// When the last request ended (or the connection was accepted), in ms.
    idle_since: AtomicU64,
}

impl ConnState {
    fn new() -> Self {
        Self {
            tracked: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(now_ms()),
        }
    }

    /// Since when it has been idle, if it is.
    fn idle_since(&self) -> Option<u64> {
        (self.tracked.load(Ordering::Relaxed) && self.in_flight.load(Ordering::Relaxed) == 0)
            .then(|| self.idle_since.load(Ordering::Relaxed))
    }
}

/// Run `conn` as the task of a connection with `state`.
pub(super) async fn scope<F: Future>(state: Arc<ConnState>, conn: F) -> F::Output {
    CONNECTION.scope(state, conn).await
}

/// Declare that this connection's listener counts its requests with [`InFlight`], so
/// the connection can be judged idle. Call from the connection's task.
pub fn track_requests() {
    let _ = CONNECTION.try_with(|c| c.tracked.store(true, Ordering::Relaxed));
}

/// One request of the current connection in flight, until this is dropped (with the
/// response body: see [`InFlight::attach`]).
pub struct InFlight(Option<Arc<ConnState>>);

impl InFlight {
    /// A request began on the connection this task serves.
    pub fn begin() -> Self {
        let state = CONNECTION.try_with(Clone::clone).ok();
        if let Some(s) = &state {
            s.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        Self(state)
    }

    /// Keep the request in flight until `response`'s body has been sent or dropped.
    pub fn attach<B>(
        self,
        response: http::Response<B>,
    ) -> http::Response<tokenizer_http::body::Body>
    where
        B: HttpBody<Data = bytes::Bytes> + Send + Sync + 'static,
        B::Error: Into<tokenizer_http::body::BoxError>,
    {
        response.map(|body| {
            tokenizer_http::body::boxed(Tracked {
                body,
                _in_flight: self,
            })
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            s.idle_since.store(now_ms(), Ordering::Relaxed);
            s.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that holds its request's [`InFlight`].
    struct Tracked<B> {
        #[pin]
        body: B,
        _in_flight: InFlight,
    }
}

impl<B: HttpBody> HttpBody for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Where connections come from, for fairness: an IPv4 address, or an IPv6 /64 (what
/// one host is usually given).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Source(u128);

impl Source {
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(u128::from(u32::from(v4))),
                None => Self(u128::from(v6) & !((1u128 << 64) - 1)),
            },
        }
    }
}

/// The slot table of one process.
pub struct Slots {
    max: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    conns: HashMap<u64, Entry>,
    per_source: HashMap<Source, usize>,
    next: u64,
    /// Entries asked to close, still open.
    closing: usize,
    /// Connections closed to make room, since start.
    evicted: u64,
}

struct Entry {
    source: Source,
    state: Arc<ConnState>,
    stop: CancellationToken,
    closing: bool,
}

/// A connection's hold on a slot; released when dropped.
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self.slots.lock();
        if let Some(gone) = table.conns.remove(&self.id) {
            if gone.closing {
                table.closing -= 1;
            }
            if let Some(n) = table.per_source.get_mut(&gone.source) {
                *n -= 1;
                if *n == 0 {
                    table.per_source.remove(&gone.source);
                }
            }
        }
    }
}

impl Slots {
    /// A table of `max` slots (at least 1).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            table: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a connection from `peer` that closes when `stop` is cancelled; `None`
    /// when no room can be made (the newcomer is closed). Also returns the connection's
    /// state, to run its task in ([`scope`]).
    pub(super) fn admit(
        self: &Arc<Self>,
        peer: IpAddr,
        stop: CancellationToken,
    ) -> Option<(Slot, Arc<ConnState>)> {
        let source = Source::of(peer);
        let mut table = self.lock();
        if table.conns.len() - table.closing >= self.max {
            if table.conns.len() >= 2 * self.max {
                return None;
            }
            let victim = table.longest_idle().or_else(|| table.hog(source))?;
            if let Some(entry) = table.conns.get_mut(&victim) {
                entry.closing = true;
                entry.stop.cancel();
            }
            table.closing += 1;
            table.evicted += 1;
            tracing::debug!("MAX_CONNECTIONS reached: closing a connection to make room");
        }
        table.next += 1;
        let id = table.next;
        let state = Arc::new(ConnState::new());
        table.conns.insert(
            id,
            Entry {
                source,
                state: state.clone(),
                stop,
                closing: false,
            },
        );
        *table.per_source.entry(source).or_default() += 1;
        drop(table);
        Some((
            Slot {
                slots: self.clone(),
                id,
            },
            state,
        ))
    }

    /// Connections closed to make room, since start.
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }

    /// Connections holding a slot now (closing ones included).
    pub fn len(&self) -> usize {
        self.lock().conns.len()
    }

    /// No connection holds a slot.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Table {
    /// The open connection idle the longest.
    fn longest_idle(&self) -> Option<u64> {
        self.conns
            .iter()
            .filter(|(_, e)| !e.closing)
            .filter_map(|(id, e)| e.state.idle_since().map(|since| (since, *id)))
            .min()
            .map(|(_, id)| id)
    }

    /// The oldest open connection of the source holding the most slots, if it holds
    /// more than `newcomer`'s source would with the newcomer.
    fn hog(&self, newcomer: Source) -> Option<u64> {
        let mine = self.per_source.get(&newcomer).copied().unwrap_or(0) + 1;
        let (&big, &held) = self.per_source.iter().max_by_key(|(_, n)| **n)?;
        if held <= mine {
            return None;
        }
        self.conns
            .iter()
            .filter(|(_, e)| e.source == big && !e.closing)
            .map(|(id, _)| *id)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sources_are_addresses_and_ipv6_prefixes() {
        assert_eq!(
            Source::of(ip("10.0.0.1")),
            Source::of(ip("::ffff:10.0.0.1"))
        );
        assert_ne!(Source::of(ip("10.0.0.1")), Source::of(ip("10.0.0.2")));
        assert_eq!(
            Source::of(ip("2001:db8:1:2::1")),
            Source::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            Source::of(ip("2001:db8:1:2::1")),
            Source::of(ip("2001:db8:1:3::1"))
        );
    }

    #[tokio::test]
    async fn a_full_table_closes_the_longest_idle_connection() {
        let slots = Slots::new(2);
        let (a_stop, b_stop) = (CancellationToken::new(), CancellationToken::new());
        let (a, a_state) = slots.admit(ip("10.0.0.1"), a_stop.clone()).unwrap();
        let (b, b_state) = slots.admit(ip("10.0.0.1"), b_stop.clone()).unwrap();
        for s in [&a_state, &b_state] {
            s.tracked.store(true, Ordering::Relaxed);
        }
        // b is busy, a idle: a newcomer from elsewhere takes a's slot.
        b_state.in_flight.store(1, Ordering::Relaxed);
        let c = slots
            .admit(ip("10.0.0.9"), CancellationToken::new())
            .unwrap();
        assert!(a_stop.is_cancelled());
        assert!(!b_stop.is_cancelled());
        assert_eq!(slots.evicted(), 1);
        drop(a);
        assert_eq!(slots.len(), 2);
        drop((b, c));
        assert!(slots.is_empty());
    }

    #[tokio::test]
    async fn when_all_are_busy_the_source_holding_most_gives_way() {
        let slots = Slots::new(3);
        let mut held = Vec::new();
        for _ in 0..3 {
            let stop = CancellationToken::new();
            let (slot, state) = slots.admit(ip("10.0.0.66"), stop.clone()).unwrap();
            state.tracked.store(true, Ordering::Relaxed);
            state.in_flight.store(1, Ordering::Relaxed);
            held.push((slot, stop));
        }
        // A newcomer from another source: the hog's oldest is asked to close.
        let newcomer = slots.admit(ip("10.0.0.7"), CancellationToken::new());
        assert!(newcomer.is_some());
        assert!(held[0].1.is_cancelled());
        assert!(!held[1].1.is_cancelled());
        // The hog's own newcomer gets nothing more while it holds the most.
        assert!(
            slots
                .admit(ip("10.0.0.66"), CancellationToken::new())
                .is_none()
        );
        // Untracked connections are never taken for idle.
        let slots = Slots::new(1);
        let stop = CancellationToken::new();
        let _held = slots.admit(ip("10.0.0.1"), stop.clone()).unwrap();
        assert!(
            slots
                .admit(ip("10.0.0.1"), CancellationToken::new())
                .is_none()
        );
        assert!(!stop.is_cancelled());
    }
}
