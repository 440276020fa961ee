//! Asking the real resolvers (`DNS_SERVERS`) for an allowed name: the query as the
//! client sent it, over the transport it used (a truncated UDP answer makes the client
//! ask again over TCP), each resolver in turn until one answers within its deadline.
//! An answer is relayed only when it answers that question (same id, a response, the
//! same name and type).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::answer;

/// How long one resolver may take over UDP, and over TCP.
const UDP_DEADLINE: Duration = Duration::from_secs(2);
const TCP_DEADLINE: Duration = Duration::from_secs(4);
/// The largest answer read (UDP datagram, or TCP message).
pub const MAX_MESSAGE: usize = 65_535;

/// The first matching answer of `servers` to `query`.
pub async fn ask(servers: &[SocketAddr], query: &[u8], tcp: bool) -> Option<Vec<u8>> {
    for server in servers {
        let attempt = async {
            if tcp {
                ask_tcp(*server, query).await
            } else {
                ask_udp(*server, query).await
            }
        };
        let deadline = if tcp { TCP_DEADLINE } else { UDP_DEADLINE };
        if let Ok(Some(reply)) = tokio::time::timeout(deadline, attempt).await {
            return Some(reply);
        }
    }
    None
}

async fn ask_udp(server: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.ok()?;
    socket.connect(server).await.ok()?;
    socket.send(query).await.ok()?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    // Datagrams that do not answer this query (stale, spoofed) are skipped until the
    // deadline.
    loop {
        let n = socket.recv(&mut buf).await.ok()?;
        let reply = buf.get(..n)?;
        if answer::answers(reply, query).is_some() {
            return Some(reply.to_vec());
        }
    }
}

async fn ask_tcp(server: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(server).await.ok()?;
    let len = u16::try_from(query.len()).ok()?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await.ok()?;
    let n = usize::from(stream.read_u16().await.ok()?);
    let mut reply = vec![0u8; n];
    stream.read_exact(&mut reply).await.ok()?;
    answer::answers(&reply, query).map(|_| reply)
}
