//! Accept loops shared by `serve` and `sideproxy`: every connection runs as a tracked
//! task; on shutdown the listeners stop, open connections are asked to finish their
//! current request (graceful shutdown), and the caller waits for them up to a deadline.
//! `MAX_CONNECTIONS` is kept by [`slots`], which makes room when full.

pub mod slots;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use slots::{InFlight, Slots, track_requests};

/// One open client connection in the gauge, until dropped (after its slot is given
/// back, so the gauge never shows fewer connections than hold slots).
struct OpenConnection(Gauge);

impl OpenConnection {
    fn new(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Shared by all listeners of one process.
#[derive(Clone, Default)]
pub struct Lifecycle {
    /// Cancelled on shutdown: accept loops return, and every connection's child token
    /// asks it to finish its current request and close.
    pub stop: CancellationToken,
    /// Every connection (and CONNECT tunnel) task, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// At most this many client connections at once (`MAX_CONNECTIONS`): a full table
    /// closes an idle connection (or one of the source holding the most) to make room.
    slots: Option<Arc<Slots>>,
    /// Client connections open now (`tokenizer_connections_open`), when counted.
    open: Option<Gauge>,
}

impl Lifecycle {
    /// Allow at most `max` connections at once (0: no limit).
    pub fn with_max_connections(max: usize) -> Self {
        Self {
            slots: (max > 0).then(|| Slots::new(max)),
            ..Self::default()
        }
    }

    /// Count the open client connections in `gauge` (`tokenizer_connections_open`).
    #[must_use]
    pub fn counting(mut self, gauge: Gauge) -> Self {
        self.open = Some(gauge);
        self
    }

    /// The slot table, with a limit.
    pub fn slots(&self) -> Option<&Arc<Slots>> {
        self.slots.as_ref()
    }

    /// Accept until stopped; `handle` serves one connection, which closes gracefully
    /// when the token it is given is cancelled (shutdown, or its slot is taken).
    pub async fn accept<H, F>(&self, listener: TcpListener, handle: H)
    where
        H: Fn(TcpStream, SocketAddr, CancellationToken) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = self.stop.cancelled() => return,
            };
            let stop = self.stop.child_token();
            let admitted = match &self.slots {
                Some(slots) => match slots.admit(peer.ip(), stop.clone()) {
                    Some(admitted) => Some(admitted),
                    None => {
                        tracing::warn!(%peer, "connection refused: MAX_CONNECTIONS reached");
                        continue;
                    }
                },
                None => None,
            };
            let _ = stream.set_nodelay(true);
            let conn = handle(stream, peer, stop);
            let open = self.open.clone().map(OpenConnection::new);
            match admitted {
                Some((slot, state)) => {
                    self.tasks.spawn(slots::scope(state, async move {
                        conn.await;
                        drop(slot);
                        drop(open);
                    }));
                }
                None => {
                    self.tasks.spawn(async move {
                        conn.await;
                        drop(open);
                    });
                }
            }
        }
    }

    /// Stop accepting and wait up to `deadline` for open connections.
    pub async fn drain(&self, deadline: Duration) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown deadline reached with connections still open");
        }
    }
}

/// The HTTP/1 server settings shared by the listeners and CONNECT tunnels.
/// `header_timeout` bounds how long request headers may take to arrive (slowloris).
pub fn http1_builder(header_timeout: Duration) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    builder
}

/// A hyper connection that can be asked to finish its current request and close.
///
/// hyper-util's `server::graceful` has the same trait, but it does not fit here: it is
/// sealed and not implemented for `hyper::server::conn::http1::UpgradeableConnection`
/// (the proxy's HTTP/1 connections, which must keep upgrades for WebSocket), and its
/// `GracefulShutdown` stops every watched connection at once, while here one connection
/// must be closable alone (its `MAX_CONNECTIONS` slot taken, or parked when idle). So
/// this trait covers exactly the two connection types hyper serves us, each by calling
/// hyper's own `graceful_shutdown`.
pub trait GracefulConnection: Future {
    /// Stop reading new requests; the connection resolves once the one in flight is done.
    fn graceful_shutdown(self: Pin<&mut Self>);
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<I, B, S> GracefulConnection for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    Self: Future,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<BoxError>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl<I, S, E, B> GracefulConnection for hyper::server::conn::http2::Connection<I, S, E>
where
    Self: Future,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<BoxError>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http2::Connection::graceful_shutdown(self);
    }
}

impl<I, S, E, B> GracefulConnection
    for hyper_util::server::conn::auto::UpgradeableConnection<'_, I, S, E>
where
    Self: Future,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<BoxError>,
    E: hyper_util::server::conn::auto::HttpServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper_util::server::conn::auto::UpgradeableConnection::graceful_shutdown(self);
    }
}

/// A service's response future, boxed, for `service_fn`. hyper keeps the service's
/// future inline in every connection's state: unboxed, each idle keep-alive connection
/// would be as large as a request in flight (kilobytes, times 10,000 connections).
pub fn boxed_response<F: Future>(
    handled: F,
) -> impl Future<Output = Result<F::Output, std::convert::Infallible>> {
    let handled = Box::pin(handled);
    async move { Ok(handled.await) }
}

/// Drive `conn` to completion, shutting it down gracefully when `stop` fires.
pub async fn run_connection<C, E>(conn: C, stop: &CancellationToken, peer: SocketAddr)
where
    C: GracefulConnection<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    run_connection_until_idle(conn, stop, peer, std::future::pending()).await;
}

/// [`run_connection`], and also shut `conn` down gracefully when `idle` resolves: `true`
/// when that is how it ended, without error (the connection can be parked).
pub async fn run_connection_until_idle<C, E>(
    conn: C,
    stop: &CancellationToken,
    peer: SocketAddr,
    idle: impl Future<Output = ()>,
) -> bool
where
    C: GracefulConnection<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::pin!(conn);
    let (result, idled) = tokio::select! {
        biased;
        r = conn.as_mut() => (r, false),
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            (conn.as_mut().await, false)
        }
        () = idle => {
            conn.as_mut().graceful_shutdown();
            (conn.as_mut().await, true)
        }
    };
    match result {
        Ok(()) => idled,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "client connection ended with an error");
            false
        }
    }
}

/// A client must finish its TLS handshake within this time.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server side of a client's TLS handshake, within [`TLS_HANDSHAKE_TIMEOUT`]; a
/// failed or slow handshake is logged (debug) and gives `None`.
pub async fn accept_tls<IO>(
    acceptor: &tokio_rustls::TlsAcceptor,
    io: IO,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<IO>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}
