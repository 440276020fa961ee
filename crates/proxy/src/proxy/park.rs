//! Parking idle keep-alive connections. hyper gives every HTTP/1 connection an 8 KiB read
//! buffer and an 8 KiB write buffer for its whole life, idle or not (the size is fixed
//! inside hyper); 10,000 idle keep-alive clients held 154 MiB that way. A connection that
//! has been idle for [`PARK_AFTER`] — no request in flight, nothing read since its last
//! response ended — is shut down gracefully on hyper's side only: hyper drops its state
//! and buffers, [`ParkIo`] keeps the socket open and hands it back, and the bare socket
//! waits for the client's next bytes. Then a new hyper connection serves it. The client
//! sees one keep-alive connection throughout.
//!
//! Idleness is judged from the outside, in the connection's own task: requests begin
//! when hyper calls the service and end when the response body has been sent (or
//! dropped: the request's audit entry is recorded then too); reads are counted by
//! [`ParkIo`]. hyper is asked to stop only when nothing
//! was read since the last response ended, so its read buffer is empty — except for a
//! client that pipelines a request and stops mid-way through its head for longer than
//! [`PARK_AFTER`]: those bytes are lost and the rest of that request is answered 400.
//! Pipelining is not used by real clients; such a client only disturbs itself.
//!
//! Hand-written: hyper has no API to shrink or release a connection's buffers, and its
//! `into_parts` does not combine with upgrades (CONNECT, WebSocket), which this listener
//! serves.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// How long a connection stays idle in hyper's hands before it is parked.
pub const PARK_AFTER: Duration = Duration::from_millis(250);

/// What one connection's task knows about its activity.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    in_flight: AtomicU32,
    /// Reads that returned data, counted by [`ParkIo`].
    reads: AtomicU64,
    /// `reads` when the last request ended.
    reads_when_idle: AtomicU64,
    /// Milliseconds from `start` to when the last request ended.
    idle_since_ms: AtomicU64,
    /// Set just before hyper is asked to stop: [`ParkIo`] keeps the socket.
    parking: AtomicBool,
}

/// Whether to park now, or when to look again.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Park,
    CheckIn(Duration),
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            in_flight: AtomicU32::new(0),
            reads: AtomicU64::new(0),
            reads_when_idle: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            parking: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// hyper called the service: a request began.
    pub fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A response body was sent or dropped: the request ended (the audit entry's
    /// [`tokenizer_audit::audit::RequestLog`] calls it when it records the request).
    pub fn end(&self) {
        self.reads_when_idle
            .store(self.reads.load(Ordering::Relaxed), Ordering::Relaxed);
        self.idle_since_ms.store(self.now_ms(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Resolves once the connection has been idle for `after`, marked as parking: from
    /// then on hyper's shutdown keeps the socket. Looks again when it could first be
    /// true, and every `after` while requests are in flight.
    pub async fn idle(&self, after: Duration) {
        self.quiet_for(after, true).await;
        self.parking.store(true, Ordering::Relaxed);
    }

    /// Resolves once no request has been in flight for `after` (since the last ended, or
    /// since the start), whatever was read meanwhile: an HTTP/2 connection's pings and
    /// window updates do not keep it alive.
    pub async fn without_requests(&self, after: Duration) {
        self.quiet_for(after, false).await;
    }

    async fn quiet_for(&self, after: Duration, count_reads: bool) {
        let mut wait = after;
        loop {
            tokio::time::sleep(wait).await;
            match self.verdict(after, count_reads) {
                Verdict::Park => break,
                Verdict::CheckIn(d) => wait = d,
            }
        }
    }

    /// Quiet for `after`: nothing in flight and (with `count_reads`) nothing read since.
    fn verdict(&self, after: Duration, count_reads: bool) -> Verdict {
        let after_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        if self.in_flight.load(Ordering::Relaxed) > 0
            || (count_reads
                && self.reads.load(Ordering::Relaxed)
                    != self.reads_when_idle.load(Ordering::Relaxed))
        {
            return Verdict::CheckIn(after);
        }
        let idle = self
            .now_ms()
            .saturating_sub(self.idle_since_ms.load(Ordering::Relaxed));
        if idle >= after_ms {
            Verdict::Park
        } else {
            Verdict::CheckIn(Duration::from_millis(after_ms - idle))
        }
    }
}

impl tokenizer_audit::audit::RequestEnd for Activity {
    fn end(&self) {
        Activity::end(self);
    }
}

/// The client socket as hyper sees it: reads are counted, and once parking, shutting
/// down keeps the socket open and dropping hands it back.
pub struct ParkIo<T> {
    io: Option<T>,
    activity: Arc<Activity>,
    home: Option<oneshot::Sender<T>>,
}

impl<T> ParkIo<T> {
    /// Wrap `io`; when parked, it arrives on the returned receiver.
    pub fn new(io: T, activity: Arc<Activity>) -> (Self, oneshot::Receiver<T>) {
        let (tx, rx) = oneshot::channel();
        let this = Self {
            io: Some(io),
            activity,
            home: Some(tx),
        };
        (this, rx)
    }

    fn io(&mut self) -> io::Result<&mut T> {
        self.io
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "connection parked"))
    }
}

impl<T> Drop for ParkIo<T> {
    fn drop(&mut self) {
        if self.activity.parking.load(Ordering::Relaxed)
            && let (Some(io), Some(home)) = (self.io.take(), self.home.take())
        {
            let _ = home.send(io);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ParkIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let io = self.io()?;
        let polled = Pin::new(io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.reads.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ParkIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.io()?).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.io()?).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.io()?).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.activity.parking.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(self.io()?).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parks_only_after_a_quiet_spell_with_nothing_in_flight_or_read() {
        let a = Activity::new();
        let after = Duration::from_millis(50);
        // A fresh connection counts as idle since its start.
        assert!(matches!(a.verdict(after, true), Verdict::CheckIn(_)));
        std::thread::sleep(after);
        assert_eq!(a.verdict(after, true), Verdict::Park);
        a.begin();
        assert_eq!(a.verdict(after, true), Verdict::CheckIn(after));
        a.end();
        assert!(matches!(a.verdict(after, true), Verdict::CheckIn(_)));
        std::thread::sleep(after);
        assert_eq!(a.verdict(after, true), Verdict::Park);
        // Bytes read since the last response (a pipelined or new request): not idle.
        a.reads.fetch_add(1, Ordering::Relaxed);
        assert_eq!(a.verdict(after, true), Verdict::CheckIn(after));
        // HTTP/2's idleness counts requests only: pings and window updates do not count.
        assert_eq!(a.verdict(after, false), Verdict::Park);
    }
}
