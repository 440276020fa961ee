//! The DNS listener: UDP and TCP on `DNS_ADDRESS`. Each question is rate-limited per
//! client, then answered here (a target), refused (audited once per name per interval)
//! or asked of the real resolvers (cached). Work is bounded: forwarded questions in
//! flight, TCP connections, message sizes and idle time; the tables are in
//! [`super::tables`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use super::answer::{self, Handling, Question};
use super::names::NameRules;
use super::tables::{AnswerCache, AuditOnce, AuditVerdict, ClientRates};
use super::{DnsConfig, upstream};
use crate::sideproxy::SidecarError;
use tokenizer_audit::audit::Telemetry;
use tokenizer_audit::audit::request_log::RequestLog;
use tokenizer_http::body::Body;

/// Forwarded questions in flight at once; more get SERVFAIL.
const MAX_IN_FLIGHT: usize = 256;
/// TCP connections at once; more are closed.
const MAX_TCP: usize = 64;
/// The largest query taken (UDP datagram or TCP message); larger ones are dropped.
const MAX_QUERY: usize = 4096;
/// How long a TCP connection may sit idle between messages.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Messages per TCP connection.
const MAX_TCP_MESSAGES: usize = 100;

/// A bound DNS listener.
pub struct DnsServer {
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
    state: Arc<DnsState>,
}

struct DnsState {
    rules: NameRules,
    servers: Vec<SocketAddr>,
    rates: ClientRates,
    audit: AuditOnce,
    cache: AnswerCache,
    in_flight: Arc<Semaphore>,
    tcp_slots: Arc<Semaphore>,
    telemetry: Arc<Telemetry>,
}

impl DnsServer {
    /// Bind UDP and TCP on the configured address.
    pub async fn bind(
        config: &DnsConfig,
        rules: NameRules,
        telemetry: Arc<Telemetry>,
    ) -> std::io::Result<Self> {
        let (udp, tcp) = bind_both(config.address).await?;
        Ok(Self {
            udp: Arc::new(udp),
            tcp,
            state: Arc::new(DnsState {
                rules,
                servers: config.servers.clone(),
                rates: ClientRates::new(config.rate),
                audit: AuditOnce::new(Instant::now()),
                cache: AnswerCache::new(),
                in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
                tcp_slots: Arc::new(Semaphore::new(MAX_TCP)),
                telemetry,
            }),
        })
    }

    /// Where it listens (UDP and TCP).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.udp.local_addr().ok()
    }

    /// Answer until the task is dropped.
    pub async fn run(self) {
        let udp = tokio::spawn(serve_udp(self.udp, self.state.clone()));
        serve_tcp(self.tcp, self.state).await;
        udp.abort();
    }
}

/// UDP and TCP on the same address. With port 0, the port the system gives UDP may be
/// taken for TCP: then another is tried (a few times).
async fn bind_both(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let attempts = if addr.port() == 0 { 16 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(addr).await?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::AddrInUse)))
}

async fn serve_udp(socket: Arc<UdpSocket>, state: Arc<DnsState>) {
    let mut buf = vec![0u8; MAX_QUERY + 1];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Some(packet) = buf.get(..n).filter(|_| n <= MAX_QUERY) else {
            continue;
        };
        let packet = packet.to_vec();
        let (socket, state) = (socket.clone(), state.clone());
        match decide(&state, &packet, peer) {
            Step::Reply(bytes) => {
                let _ = socket.send_to(&bytes, peer).await;
            }
            Step::Drop => {}
            Step::Ask(permit) => {
                tokio::spawn(async move {
                    let reply = forward(&state, &packet, false).await;
                    drop(permit);
                    if let Some(reply) = reply {
                        let _ = socket.send_to(&reply, peer).await;
                    }
                });
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, state: Arc<DnsState>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let Ok(slot) = state.tcp_slots.clone().try_acquire_owned() else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            tcp_connection(stream, peer, &state).await;
            drop(slot);
        });
    }
}

/// Length-prefixed messages, one answer each, until the client stops, idles, sends too
/// much or too many.
async fn tcp_connection(mut stream: TcpStream, peer: SocketAddr, state: &DnsState) {
    for _ in 0..MAX_TCP_MESSAGES {
        let Ok(Ok(len)) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await else {
            return;
        };
        let len = usize::from(len);
        if len == 0 || len > MAX_QUERY {
            return;
        }
        let mut packet = vec![0u8; len];
        if !matches!(
            tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut packet)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let reply = match decide(state, &packet, peer) {
            Step::Reply(bytes) => Some(bytes),
            Step::Drop => None,
            Step::Ask(permit) => {
                let reply = forward(state, &packet, true).await;
                drop(permit);
                reply
            }
        };
        let Some(reply) = reply else { return };
        let Ok(n) = u16::try_from(reply.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&n.to_be_bytes());
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

/// What to do next with a query.
enum Step {
    Reply(Vec<u8>),
    Drop,
    /// Ask the real resolvers, holding an in-flight slot.
    Ask(tokio::sync::OwnedSemaphorePermit),
}

fn decide(state: &DnsState, packet: &[u8], peer: SocketAddr) -> Step {
    let now = Instant::now();
    let handling = answer::handle(packet, &state.rules);
    if matches!(handling, Handling::Drop) {
        return Step::Drop;
    }
    if !state.rates.allow(peer.ip(), now) {
        // Over its rate: refused, whatever the name (and not audited: a flood would
        // fill the log).
        return match answer::refused(packet) {
            Some(bytes) => Step::Reply(bytes),
            None => Step::Drop,
        };
    }
    match handling {
        Handling::Drop => Step::Drop,
        Handling::Local(bytes) => Step::Reply(bytes),
        Handling::Refused(bytes, question) => {
            audit(state, peer, &question, now);
            Step::Reply(bytes)
        }
        Handling::Forward(_) => {
            if let Some(cached) = answer::cache_key(packet).and_then(|k| state.cache.get(&k, now)) {
                return Step::Reply(with_id(cached, packet));
            }
            match state.in_flight.clone().try_acquire_owned() {
                Ok(permit) => Step::Ask(permit),
                Err(_) => answer::servfail(packet).map_or(Step::Drop, Step::Reply),
            }
        }
    }
}

/// The real resolvers' answer (cached), or SERVFAIL when none answered.
async fn forward(state: &DnsState, packet: &[u8], tcp: bool) -> Option<Vec<u8>> {
    match upstream::ask(&state.servers, packet, tcp).await {
        Some(reply) => {
            if let (Some(key), Some(msg)) =
                (answer::cache_key(packet), answer::answers(&reply, packet))
            {
                state
                    .cache
                    .put(key, reply.clone(), answer::cache_ttl(&msg), Instant::now());
            }
            Some(reply)
        }
        None => answer::servfail(packet),
    }
}

/// A cached answer under this query's id.
fn with_id(mut answer: Vec<u8>, query: &[u8]) -> Vec<u8> {
    if let (Some(id), Some(slot)) = (query.get(..2), answer.get_mut(..2)) {
        slot.copy_from_slice(id);
    }
    answer
}

/// One audit line per refused name per interval.
fn audit(state: &DnsState, peer: SocketAddr, question: &Question, now: Instant) {
    let name: String = question.name.chars().take(253).collect();
    let AuditVerdict::Log { suppressed } = state.audit.check(&name, now) else {
        return;
    };
    if suppressed > 0 {
        tracing::warn!(
            suppressed,
            "dns: more refused names in the last interval than the audit keeps; not logged"
        );
    }
    let qtype = hickory_proto::rr::RecordType::from(question.qtype).to_string();
    let log = RequestLog::for_dns(&state.telemetry, "sideproxy", peer, &qtype, &name);
    drop(log.respond(Err::<Response<Body>, _>(SidecarError::DnsRefused)));
}
