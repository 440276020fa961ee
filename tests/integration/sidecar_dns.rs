//! The sandbox's DNS answered by the sidecar (issue 27), over real UDP and TCP sockets,
//! with a stand-in upstream resolver that records every question it gets: targets
//! resolve to the sidecar, passthrough and `DNS_ALLOW` names are forwarded (and cached),
//! every other name is refused, never forwarded, and audited once per interval; a client
//! over its rate is refused; garbage is dropped and the listener keeps serving.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::support::sidecar::SideProxy;
use crate::support::{Env, poll_until};

/// A resolver that answers every A question with 192.0.2.7 and records the names.
struct FakeResolver {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<String>>>,
}

impl FakeResolver {
    async fn start() -> Self {
        let (udp, tcp) = bind_both().await;
        let addr = udp.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                if let Some(reply) = Self::answer(&buf[..n], &log) {
                    let _ = udp.send_to(&reply, peer).await;
                }
            }
        });
        let log = asked.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = tcp.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let Ok(n) = s.read_u16().await else { return };
                    let mut q = vec![0u8; usize::from(n)];
                    if s.read_exact(&mut q).await.is_err() {
                        return;
                    }
                    if let Some(reply) = Self::answer(&q, &log) {
                        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                        framed.extend(reply);
                        let _ = s.write_all(&framed).await;
                    }
                });
            }
        });
        Self { addr, asked }
    }

    fn answer(query: &[u8], log: &Mutex<Vec<String>>) -> Option<Vec<u8>> {
        let q = Message::from_vec(query).ok()?;
        let question = q.queries.first()?.clone();
        log.lock()
            .unwrap()
            .push(question.name().to_ascii().to_lowercase());
        let mut reply = Message::response(q.metadata.id, q.metadata.op_code);
        reply.metadata.recursion_desired = q.metadata.recursion_desired;
        reply.add_query(question.clone());
        if question.query_type() == RecordType::A {
            reply.add_answer(Record::from_rdata(
                question.name().clone(),
                120,
                RData::A(A("192.0.2.7".parse().unwrap())),
            ));
        }
        reply.to_vec().ok()
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

/// A UDP socket and a TCP listener on one free port: the port the kernel gave the UDP
/// socket may be held by a TCP socket of another test, so a few ports are tried.
async fn bind_both() -> (UdpSocket, TcpListener) {
    for _ in 0..64 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP");
}

fn query(name: &str, qtype: RecordType, id: u16) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.to_vec().unwrap()
}

async fn udp(server: SocketAddr, packet: &[u8]) -> Option<Message> {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(packet, server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), s.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    Message::from_vec(&buf[..n]).ok()
}

async fn tcp(server: SocketAddr, packet: &[u8]) -> Option<Message> {
    let mut s = TcpStream::connect(server).await.unwrap();
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(packet);
    s.write_all(&framed).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read_u16())
        .await
        .ok()?
        .ok()?;
    let mut reply = vec![0u8; usize::from(n)];
    s.read_exact(&mut reply).await.ok()?;
    Message::from_vec(&reply).ok()
}

struct Setup {
    _env: Env,
    side: SideProxy,
    resolver: FakeResolver,
}

impl Setup {
    fn dns(&self) -> SocketAddr {
        self.side.dns_addr.expect("dns listener")
    }
}

async fn setup(extra: &[&str]) -> Setup {
    let env = Env::builder().names(&["api.test"]).start().await;
    let resolver = FakeResolver::start().await;
    let servers = resolver.addr.to_string();
    let proxy = env.tk.proxy_url();
    let mut flags = vec![
        "--targets",
        "api.test=API_SEALED",
        "--proxy",
        &proxy,
        "--passthrough",
        "pypi.org,*.pythonhosted.org",
        "--dns-address",
        "127.0.0.1:0",
        "--dns-servers",
        &servers,
        "--dns-allow",
        "internal.example,*.corp.example",
        "--admin-address",
        "127.0.0.1:0",
    ];
    flags.extend_from_slice(extra);
    let sealed = env.seal(
        &serde_json::json!({"inject_processor": {"token": "real-key-1234"},
        "no_auth": {}, "allowed_hosts": ["api.test"]}),
    );
    let side = SideProxy::start(&flags, &[("API_SEALED", &sealed)]).await;
    Setup {
        _env: env,
        side,
        resolver,
    }
}

fn a_records(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn targets_resolve_to_the_sidecar_and_allowed_names_to_the_real_resolver() {
    let s = setup(&[]).await;
    let m = udp(s.dns(), &query("API.test.", RecordType::A, 7))
        .await
        .unwrap();
    assert_eq!(m.metadata.id, 7);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&m), ["127.0.0.1"]);
    // Over TCP too; a type the sidecar has no record of: the name exists, no answer.
    let m = tcp(s.dns(), &query("api.test.", RecordType::TXT, 8))
        .await
        .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert!(s.resolver.asked().is_empty(), "targets are never forwarded");

    for (name, proto_tcp) in [
        ("pypi.org.", false),
        ("files.pythonhosted.org.", true),
        ("internal.example.", false),
        ("a.b.corp.example.", true),
    ] {
        let q = query(name, RecordType::A, 9);
        let m = if proto_tcp {
            tcp(s.dns(), &q).await
        } else {
            udp(s.dns(), &q).await
        }
        .unwrap();
        assert_eq!(m.metadata.message_type, MessageType::Response, "{name}");
        assert_eq!(a_records(&m), ["192.0.2.7"], "{name}");
    }
    assert_eq!(s.resolver.asked().len(), 4);
    // A second question for the same name is answered from the cache, under its own id.
    let m = udp(s.dns(), &query("pypi.org.", RecordType::A, 99))
        .await
        .unwrap();
    assert_eq!(m.metadata.id, 99);
    assert_eq!(a_records(&m), ["192.0.2.7"]);
    assert_eq!(s.resolver.asked().len(), 4, "cached");
}

#[tokio::test]
async fn every_other_name_is_refused_never_forwarded_and_audited_once() {
    let s = setup(&[]).await;
    let exfil = "mzxw6ytboi2dknzxgq3tq.attacker.test.";
    for (name, qtype) in [
        (exfil, RecordType::A),
        (exfil, RecordType::TXT),
        ("x.api.test.", RecordType::A),
        ("evil.pypi.org.", RecordType::A),
        ("corp.example.", RecordType::AAAA),
    ] {
        for transport_tcp in [false, true] {
            let q = query(name, qtype, 3);
            let m = if transport_tcp {
                tcp(s.dns(), &q).await
            } else {
                udp(s.dns(), &q).await
            }
            .unwrap_or_else(|| panic!("{name}: no answer"));
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::Refused,
                "{name} {qtype}"
            );
            assert!(m.answers.is_empty());
        }
    }
    assert!(s.resolver.asked().is_empty(), "{:?}", s.resolver.asked());
    // One audit line per name, however often it was asked.
    let admin = crate::support::admin::Admin::new(s.side.admin_addr.unwrap());
    let entries = admin.audit("", 4).await;
    let dns: Vec<&serde_json::Value> = entries.iter().filter(|e| e["mode"] == "dns").collect();
    let exfil_lines = dns
        .iter()
        .filter(|e| e["host"] == "mzxw6ytboi2dknzxgq3tq.attacker.test")
        .count();
    assert_eq!(exfil_lines, 1, "{dns:#?}");
    assert!(
        dns.iter()
            .all(|e| e["decision"] == "denied" && e["method"] == "DNS")
    );
    assert_eq!(dns.len(), 4, "one line per distinct name: {dns:#?}");
}

#[tokio::test]
async fn a_flood_is_rate_limited_and_garbage_is_dropped() {
    let s = setup(&["--dns-rate", "20"]).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Garbage, a response and an empty datagram: no answer, and the listener goes on.
    for junk in [
        &b"\xff\xff\xff"[..],
        &[0u8; 12][..],
        &[][..],
        &[0x41; 600][..],
    ] {
        sock.send_to(junk, s.dns()).await.unwrap();
    }
    let mut refused = 0;
    for i in 0..200u16 {
        let name = format!("n{i}.flood.attacker.test.");
        let m = udp(s.dns(), &query(&name, RecordType::A, i)).await.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        refused += 1;
    }
    assert_eq!(refused, 200);
    // The rate applies to any name: a target right after the flood is refused too, and
    // answered again once the bucket refills.
    let m = udp(s.dns(), &query("api.test.", RecordType::A, 1))
        .await
        .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    let answered = poll_until(Duration::from_secs(5), || async {
        let m = udp(s.dns(), &query("api.test.", RecordType::A, 2)).await?;
        (m.metadata.response_code == ResponseCode::NoError).then_some(())
    })
    .await;
    assert!(answered.is_some());
    assert!(s.resolver.asked().is_empty());
    // A TCP message longer than any query closes the connection without an answer.
    let mut c = TcpStream::connect(s.dns()).await.unwrap();
    c.write_all(&60_000u16.to_be_bytes()).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(3), c.read(&mut byte)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
}

#[test]
fn a_resolv_conf_naming_only_the_sidecar_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("resolv.conf");
    std::fs::write(&conf, "nameserver 127.0.0.53\n").unwrap();
    let out = crate::support::binary::run_cmd(
        {
            let mut c = crate::support::binary::command();
            c.args(["sideproxy", "--targets", "api.test=X", "--dns-address", "127.0.0.53:53"])
                .env("X", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==")
                .env("RESOLV_CONF", &conf);
            c
        },
        b"",
    );
    let stderr = &out.stderr;
    assert_eq!(out.code(), Some(2), "{stderr}");
    assert!(stderr.contains("DNS_SERVERS"), "{stderr}");
}
