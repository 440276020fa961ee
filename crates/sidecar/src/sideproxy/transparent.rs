//! Transparent mode (`TRANSPARENT_PORT`): connections the sandbox's firewall redirected
//! here (`tokenizer sideproxy firewall`), whatever address the client dialled.
//!
//! The client chose the destination, so it decides nothing: the original destination
//! (`SO_ORIGINAL_DST`) only tells the port, and a connection is routed by what it says
//! about itself, read without consuming it (`peek`):
//! - TLS: by the ClientHello's SNI. A `TARGETS` host is intercepted exactly as on the TLS
//!   listener (forged certificate, forwarded through the tokenizer); a `PASSTHROUGH` host
//!   is spliced to the SNI name's own resolution, through the destination guard — never
//!   to the original address; anything else is closed.
//! - Plain HTTP to port 80: by `Host`, the same way (targets forwarded, passthrough hosts
//!   served request by request to `Host`:80 — every request judged, see
//!   [`super::passthrough_http`] — anything else 403).
//! - Anything else: closed.
//!
//! Every connection gets an audit line with `"mode":"transparent"`.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::SidecarError;
use super::{Sidecar, forward, tls};
use tokenizer_audit::audit::{Decision, RequestLog};
use tokenizer_http::body::Body;
use tokenizer_net::lifecycle::run_connection;
use tokenizer_net::upstream::{DialError, dial_tcp};

/// How long a client may take to say what it is (first bytes, ClientHello, request head).
const SNIFF_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes read (without consuming them) to find the SNI or the Host.
const SNIFF_LIMIT: usize = 16 * 1024;

/// What a redirected connection turned out to be.
enum Sniffed {
    /// A TLS ClientHello with this SNI (lower case; `None` without one).
    Tls(Option<String>),
    /// An HTTP/1 request head with this Host (without port).
    Http(Option<String>),
    /// Neither, or nothing within the timeout.
    Other,
}

/// Serve one redirected connection.
pub async fn serve(
    side: Arc<Sidecar>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    let port = match original_port(&stream) {
        Ok(port) => port,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "transparent: no original destination");
            return;
        }
    };
    let sniffed = tokio::time::timeout(SNIFF_TIMEOUT, sniff(&stream))
        .await
        .unwrap_or(Sniffed::Other);
    match sniffed {
        Sniffed::Tls(Some(sni)) if side.config.targets.get(&sni).is_some() && port == 443 => {
            tls::serve_transparent(side, stream, peer, stop, sni).await;
        }
        Sniffed::Tls(Some(sni)) if side.config.passthrough.allows(&sni, port) => {
            splice(&side, stream, peer, "TLS", &sni, port).await;
        }
        Sniffed::Tls(sni) => refuse(&side, peer, "TLS", sni.as_deref().unwrap_or(""), port),
        Sniffed::Http(Some(host)) if port == 80 && side.config.targets.get(&host).is_some() => {
            serve_http(side, stream, peer, stop).await;
        }
        Sniffed::Http(Some(host)) if side.config.passthrough.allows(&host, port) => {
            super::passthrough_http::serve(
                side,
                stream,
                peer,
                stop,
                host,
                port,
                Some("transparent"),
            )
            .await;
        }
        Sniffed::Http(host) => {
            refuse(&side, peer, "HTTP", host.as_deref().unwrap_or(""), port);
            let mut stream = stream;
            let _ = tokio::io::AsyncWriteExt::write_all(
                &mut stream,
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 40\r\nConnection: close\r\n\r\n\
                  host not allowed by the sandbox sidecar\n",
            )
            .await;
        }
        Sniffed::Other => refuse(&side, peer, "TCP", "", port),
    }
}

/// The port the client dialled before the firewall redirected it here. A connection that
/// was not redirected (made to this port directly) reports this listener's own port,
/// and is refused: the routing rules below would loop.
fn original_port(stream: &TcpStream) -> std::io::Result<u16> {
    let local = stream.local_addr()?;
    let original = original_destination(stream, local.is_ipv6())?;
    if original == local {
        return Err(std::io::Error::other("not redirected"));
    }
    Ok(original.port())
}

/// `SO_ORIGINAL_DST` (IPv4) / `IP6T_SO_ORIGINAL_DST` (IPv6), as netfilter's NAT recorded
/// it. Hand-written with `libc`: no maintained crate exposes these two socket options.
fn original_destination(stream: &TcpStream, ipv6: bool) -> std::io::Result<SocketAddr> {
    // Both options are number 80, at the IP and IPv6 levels (linux/netfilter_ipv4.h,
    // linux/netfilter_ipv6/ip6_tables.h).
    const ORIGINAL_DST: libc::c_int = 80;
    let fd = stream.as_raw_fd();
    // SAFETY: getsockopt writes at most `len` bytes into `storage`, a zeroed
    // sockaddr_storage that outlives the call; `fd` is an open socket owned by `stream`.
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let level = if ipv6 { libc::SOL_IPV6 } else { libc::SOL_IP };
        let rc = libc::getsockopt(
            fd,
            level,
            ORIGINAL_DST,
            (&raw mut storage).cast(),
            &raw mut len,
        );
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        match libc::c_int::from(storage.ss_family) {
            libc::AF_INET => {
                let sin: libc::sockaddr_in = *(&raw const storage).cast();
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Ok(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
            }
            libc::AF_INET6 => {
                let sin6: libc::sockaddr_in6 = *(&raw const storage).cast();
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Ok(SocketAddr::from((ip, u16::from_be(sin6.sin6_port))))
            }
            _ => Err(std::io::Error::other("unknown address family")),
        }
    }
}

/// Read the connection's first bytes without consuming them until it says what it is.
/// The buffer starts small (most ClientHellos and request heads fit) and doubles only
/// when a client fills it, up to [`SNIFF_LIMIT`].
async fn sniff(stream: &TcpStream) -> Sniffed {
    let mut buf = vec![0u8; 2048];
    let mut seen = 0;
    loop {
        let n = match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return Sniffed::Other,
            Ok(n) => n,
        };
        let head = &buf[..n];
        if head[0] == 0x16 {
            if let Some(sni) = client_hello_sni(head) {
                return Sniffed::Tls(sni);
            }
        } else if looks_like_http(head) {
            if let Some(host) = http_host(head) {
                return Sniffed::Http(host);
            }
        } else {
            return Sniffed::Other;
        }
        if n == buf.len() {
            if n >= SNIFF_LIMIT {
                return Sniffed::Other;
            }
            buf.resize((n * 2).min(SNIFF_LIMIT), 0);
        } else if n == seen {
            // Not all of it has arrived: peek again once more may have (peek does not
            // wait for new bytes while old ones are unread).
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen = n;
    }
}

/// `Some(sni)` once `bytes` hold a whole ClientHello (`Some(None)`: one without SNI);
/// `None` while more is needed.
fn client_hello_sni(bytes: &[u8]) -> Option<Option<String>> {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut reader = bytes;
    while !reader.is_empty() {
        match acceptor.read_tls(&mut reader) {
            Ok(0) | Err(_) => return Some(None),
            Ok(_) => {}
        }
    }
    match acceptor.accept() {
        Ok(Some(accepted)) => Some(
            accepted
                .client_hello()
                .server_name()
                .map(str::to_ascii_lowercase),
        ),
        Ok(None) => None,
        Err(_) => Some(None),
    }
}

fn looks_like_http(bytes: &[u8]) -> bool {
    const METHODS: &[&[u8]] = &[
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"DELETE ",
        b"PATCH ",
        b"OPTIONS ",
    ];
    METHODS
        .iter()
        .any(|m| bytes.starts_with(m) || m.starts_with(bytes))
}

/// `Some(host)` once `bytes` hold a whole request head (`Some(None)`: without a usable
/// Host); `None` while more is needed.
fn http_host(bytes: &[u8]) -> Option<Option<String>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => Some(
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("host"))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .and_then(|h| h.parse::<http::uri::Authority>().ok())
                .map(|a| a.host().to_ascii_lowercase()),
        ),
        Ok(httparse::Status::Partial) => None,
        Err(_) => Some(None),
    }
}

/// Plain HTTP for targets: each request forwarded through the tokenizer by its Host.
async fn serve_http(
    side: Arc<Sidecar>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    let header_timeout = side.config.client_header_timeout;
    let service = service_fn(move |req| {
        let side = side.clone();
        tokenizer_net::lifecycle::boxed_response(
            async move { http_request(&side, peer, req).await },
        )
    });
    let conn = tokenizer_net::lifecycle::http1_builder(header_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    run_connection(conn, &stop, peer).await;
}

async fn http_request(side: &Sidecar, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let mut log = RequestLog::for_request(&side.telemetry, "sideproxy", peer, &req);
    log.set_mode("transparent");
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .map(|a| a.host().to_ascii_lowercase());
    let result = match host {
        Some(host) if side.config.targets.get(&host).is_some() => {
            log.set_host(&host);
            forward::forward(side, &host, req, &mut log).await
        }
        other => Err(SidecarError::NotAllowed(other.unwrap_or_default())),
    };
    log.respond(result)
}

/// A passthrough host: dial the name the client gave (never the address it dialled)
/// through the destination guard, then copy bytes both ways.
async fn splice(
    side: &Sidecar,
    mut client: TcpStream,
    peer: SocketAddr,
    kind: &str,
    host: &str,
    port: u16,
) {
    let mut log = RequestLog::for_stream(&side.telemetry, "sideproxy", peer, kind, host, port);
    log.set_mode("transparent");
    let dial = dial_tcp(&side.resolver, &side.guard, host, port);
    let upstream = match tokio::time::timeout(side.config.upstream.connect_timeout, dial).await {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(e)) => {
            drop(log.respond(Err::<Response<Body>, _>(SidecarError::Passthrough(e))));
            return;
        }
        Err(_) => {
            drop(
                log.respond(Err::<Response<Body>, _>(SidecarError::Passthrough(
                    DialError::Timeout,
                ))),
            );
            return;
        }
    };
    log.set_decision(Decision::Passthrough);
    drop(log.respond(Ok::<_, SidecarError>(Response::new(
        tokenizer_http::body::empty(),
    ))));
    let mut upstream = upstream;
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Neither a target nor a passthrough host: closed, and logged.
fn refuse(side: &Sidecar, peer: SocketAddr, kind: &str, host: &str, port: u16) {
    let mut log = RequestLog::for_stream(&side.telemetry, "sideproxy", peer, kind, host, port);
    log.set_mode("transparent");
    let what = if host.is_empty() {
        format!("{kind} to port {port}")
    } else {
        format!("{host}:{port}")
    };
    tracing::debug!(%peer, destination = %what, "transparent: refused");
    drop(log.respond(Err::<Response<Body>, _>(SidecarError::NotAllowed(what))));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_heads_are_read_for_their_host() {
        assert_eq!(
            http_host(b"GET / HTTP/1.1\r\nHost: API.Example.com:80\r\n\r\n"),
            Some(Some("api.example.com".to_owned()))
        );
        assert_eq!(http_host(b"GET / HTTP/1.1\r\nHost: a"), None);
        assert_eq!(http_host(b"GET / HTTP/1.1\r\n\r\n"), Some(None));
        assert!(looks_like_http(b"GE"));
        assert!(looks_like_http(b"POST /x"));
        assert!(!looks_like_http(b"SSH-2.0-OpenSSH"));
    }

    #[test]
    fn a_partial_client_hello_asks_for_more() {
        // A record header that promises more than is here.
        assert_eq!(
            client_hello_sni(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]),
            None
        );
        // Garbage after the TLS byte is no ClientHello.
        assert_eq!(
            client_hello_sni(&[0x16, 0xff, 0xff, 0x00, 0x01, 0x00]),
            Some(None)
        );
    }
}
