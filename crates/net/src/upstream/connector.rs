//! The dialer behind the pooled client: resolve (pins first), check every address with
//! the destination guard, connect with a timeout, then TLS with SNI = the host.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use pin_project_lite::pin_project;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::guard::{Denied, DestinationGuard};
use super::resolve::Resolver;

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The URI has no usable host.
    #[error("bad upstream host")]
    BadHost,
    /// DNS failed.
    #[error("resolving upstream host: {0}")]
    Resolve(io::Error),
    /// The guard refused one of the resolved addresses.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// TCP connect failed on every address.
    #[error("connecting upstream: {0}")]
    Connect(io::Error),
    /// The TLS handshake failed (untrusted or wrong certificate, protocol error).
    #[error("upstream TLS handshake: {0}")]
    Tls(io::Error),
    /// Connect or handshake took longer than the connect timeout.
    #[error("upstream connect timed out")]
    Timeout,
}

/// Dials upstreams; cheap to clone.
#[derive(Clone)]
pub struct Connector {
    inner: Arc<Inner>,
}

struct Inner {
    tls: TlsConnector,
    resolver: Resolver,
    guard: DestinationGuard,
    connect_timeout: Duration,
    opened: Counter,
    open: Gauge,
}

pin_project! {
    /// A TLS connection to an upstream.
    pub struct UpstreamStream {
        #[pin]
        tls: TlsStream<TcpStream>,
        open: Gauge,
    }

    impl PinnedDrop for UpstreamStream {
        fn drop(this: Pin<&mut Self>) {
            this.open.dec();
        }
    }
}

// === impl Connector ===

impl Connector {
    /// `opened` counts connections made, `open` those not yet closed.
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        resolver: Resolver,
        guard: DestinationGuard,
        connect_timeout: Duration,
        (opened, open): (Counter, Gauge),
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                tls: TlsConnector::from(tls),
                resolver,
                guard,
                connect_timeout,
                opened,
                open,
            }),
        }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<UpstreamStream>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, DialError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { inner.dial(&uri).await.map(TokioIo::new) })
    }
}

// === impl Inner ===

impl Inner {
    async fn dial(&self, uri: &Uri) -> Result<UpstreamStream, DialError> {
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or(DialError::BadHost)?;
        let port = uri.port_u16().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_owned()).map_err(|_| DialError::BadHost)?;
        let connect = async {
            let tcp = dial_tcp(&self.resolver, &self.guard, host, port).await?;
            self.tls.connect(name, tcp).await.map_err(DialError::Tls)
        };
        let tls = super::pool::within(self.connect_timeout, connect).await?;
        self.opened.inc();
        self.open.inc();
        Ok(UpstreamStream {
            tls,
            open: self.open.clone(),
        })
    }
}

/// Resolve `host` (pins first), refuse it if any address is denied by `guard`, and
/// connect to the first address that answers.
pub async fn dial_tcp(
    resolver: &Resolver,
    guard: &DestinationGuard,
    host: &str,
    port: u16,
) -> Result<TcpStream, DialError> {
    let addrs = resolver
        .resolve(host, port)
        .await
        .map_err(DialError::Resolve)?;
    // A name that resolves to any denied address is refused outright.
    for addr in &addrs {
        guard.check(*addr)?;
    }
    let tcp = connect_any(&addrs).await.map_err(DialError::Connect)?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

async fn connect_any(addrs: &[std::net::SocketAddr]) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no addresses");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

// === impl UpstreamStream ===

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().tls.poll_read(cx, buf)
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().tls.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().tls.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().tls.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().tls.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }
}
