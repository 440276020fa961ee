//! The sidecar's TLS server side: the input is what a client sends. A
//! `rustls::ServerConnection` configured like the sidecar's (certificates forged on
//! demand by `CertCache` from its SNI, ALPN h2 / http/1.1) reads it, and so does
//! `rustls::server::Acceptor`, whose ClientHello is then checked against the CA's name
//! constraints.

#![no_main]

use std::io::{self, Cursor, Read};
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rustls::server::{Acceptor, ServerConfig, ServerConnection};
use tokenizer::ca::{CertCache, CertificateAuthority, name_fits};

/// The sidecar's targets in the seeds (plus `localhost`, where it serves its CA).
const TARGETS: &[&str] = &["api.test", "api.openai.com", "localhost"];

struct Fixture {
    config: Arc<ServerConfig>,
    certs: Arc<CertCache>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let names: Vec<String> = TARGETS.iter().map(|s| (*s).to_owned()).collect();
        let ca = CertificateAuthority::generate(&names).expect("CA generation");
        let certs = Arc::new(CertCache::new(ca, names, 16));
        certs.warm();
        let mut config = ServerConfig::builder_with_provider(tokenizer::upstream::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("default versions")
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Fixture {
            config: Arc::new(config),
            certs,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    server_connection(fixture, data);
    acceptor(fixture, data);
});

/// Feed everything to a server connection, draining what it writes back.
fn server_connection(fixture: &Fixture, data: &[u8]) {
    let Ok(mut conn) = ServerConnection::new(fixture.config.clone()) else {
        return;
    };
    let mut input = Cursor::new(data);
    loop {
        match conn.read_tls(&mut input) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if conn.process_new_packets().is_err() {
            let _ = conn.write_tls(&mut io::sink());
            break;
        }
        let _ = conn.write_tls(&mut io::sink());
        let mut plain = [0u8; 1024];
        let _ = conn.reader().read(&mut plain);
    }
    if let Some(sni) = conn.server_name() {
        let _ = fixture.certs.get(sni);
    }
}

/// The ClientHello through `Acceptor`, then the connection it accepts.
fn acceptor(fixture: &Fixture, data: &[u8]) {
    let mut acceptor = Acceptor::default();
    let mut input = Cursor::new(data);
    let accepted = loop {
        match acceptor.read_tls(&mut input) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => break accepted,
            Ok(None) => {}
            Err(_) => return,
        }
    };
    let hello = accepted.client_hello();
    if let Some(sni) = hello.server_name() {
        let permitted = fixture.certs.ca().permitted();
        let forged = fixture.certs.get(sni).is_some();
        // A name the cache forges for must fit the CA's constraints, or no client
        // would accept the certificate.
        assert!(
            !forged || name_fits(permitted, sni),
            "{sni:?} forged outside {permitted:?}"
        );
    }
    let _ = hello.alpn().map(|protocols| protocols.count());
    let _ = accepted.into_connection(fixture.config.clone());
}
