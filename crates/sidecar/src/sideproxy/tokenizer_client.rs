//! The sidecar's pooled client to the tokenizer: every connection goes to `PROXY`
//! (plain or TLS), and requests are written in absolute form (`GET http://host/path`),
//! as an HTTP proxy expects.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::config::ProxyUrl;
use tokenizer_http::body::Body;
use tokenizer_net::upstream::DialError;
use tokenizer_net::upstream::pool;

/// Idle connections to the tokenizer are closed after this long: under the tokenizer's
/// idle limit (`CLIENT_HEADER_TIMEOUT`, 30 s by default), so the sidecar never reuses a
/// connection the tokenizer has just closed.
const IDLE: Duration = Duration::from_secs(20);
/// Idle connections kept to the tokenizer (the pool has one host).
const MAX_IDLE: usize = 256;

/// Why the tokenizer could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// Connection refused, DNS failure, TLS failure, or the connection broke.
    #[error("tokenizer unreachable: {0}")]
    Unreachable(String),
    /// No response headers within `TOKENIZER_TIMEOUT`, or no connection within
    /// `UPSTREAM_CONNECT_TIMEOUT`.
    #[error("tokenizer timed out")]
    Timeout,
}

/// Pooled keep-alive connections to the tokenizer.
#[derive(Clone)]
pub struct TokenizerClient {
    client: Client<ProxyConnector, Body>,
    /// HTTP/2 with prior knowledge to a plain `http://` tokenizer: every request but an
    /// upgrade shares one multiplexed connection.
    h2: Option<Client<ProxyConnector, Body>>,
    timeout: Duration,
}

impl TokenizerClient {
    /// A client to `proxy`: responses must start within `timeout` (`TOKENIZER_TIMEOUT`),
    /// connections within `connect_timeout` (`UPSTREAM_CONNECT_TIMEOUT`); with `http2`
    /// (`PROXY_HTTP2`, plain `http://` only), HTTP/2 with prior knowledge for everything
    /// but upgrades.
    pub fn new(
        proxy: &ProxyUrl,
        tls: Arc<rustls::ClientConfig>,
        timeout: Duration,
        http2: bool,
        connect_timeout: Duration,
    ) -> Self {
        let connector = ProxyConnector {
            target: Arc::new(proxy.clone()),
            tls: proxy.tls.then(|| TlsConnector::from(tls)),
            connect_timeout,
        };
        let h2 = (http2 && !proxy.tls).then(|| {
            Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .pool_idle_timeout(IDLE)
                .http2_only(true)
                .set_host(false)
                .build(connector.clone())
        });
        Self {
            client: pool::pooled(connector, IDLE, MAX_IDLE),
            h2,
            timeout,
        }
    }

    /// Send `req` (URI `http://<target host>/…`) through the tokenizer.
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>, TokenizerError> {
        let client = match &self.h2 {
            Some(h2) if !tokenizer_http::headers::is_upgrade(req.headers()) => h2,
            _ => &self.client,
        };
        match tokio::time::timeout(self.timeout, client.request(req)).await {
            Err(_) => Err(TokenizerError::Timeout),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(classify(&e)),
        }
    }
}

fn classify(err: &hyper_util::client::legacy::Error) -> TokenizerError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut detail = err.to_string();
    while let Some(e) = source {
        if let Some(DialError::Timeout) = e.downcast_ref::<DialError>() {
            return TokenizerError::Timeout;
        }
        detail = e.to_string();
        source = e.source();
    }
    TokenizerError::Unreachable(detail)
}

/// Dials `PROXY` whatever the request URI says.
#[derive(Clone)]
struct ProxyConnector {
    target: Arc<ProxyUrl>,
    tls: Option<TlsConnector>,
    connect_timeout: Duration,
}

impl tower_service::Service<Uri> for ProxyConnector {
    type Response = TokioIo<ProxyStream>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            pool::within(this.connect_timeout, this.dial())
                .await
                .map(TokioIo::new)
                .map_err(Into::into)
        })
    }
}

impl ProxyConnector {
    async fn dial(&self) -> Result<ProxyStream, DialError> {
        let host = self
            .target
            .host
            .trim_start_matches('[')
            .trim_end_matches(']');
        let tcp = TcpStream::connect((host, self.target.port))
            .await
            .map_err(DialError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(ProxyStream(Box::new(tcp)));
        };
        let name = ServerName::try_from(host.to_owned()).map_err(|_| DialError::BadHost)?;
        let tls = tls.connect(name, tcp).await.map_err(DialError::Tls)?;
        Ok(ProxyStream(Box::new(tls)))
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A plain or TLS connection to the tokenizer.
struct ProxyStream(Box<dyn Io>);

impl Connection for ProxyStream {
    fn connected(&self) -> Connected {
        // "Proxied": the client writes absolute-form request targets.
        Connected::new().proxy(true)
    }
}

impl AsyncRead for ProxyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ProxyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}
