//! The TLS listener (`LISTEN_TLS_ADDRESS`): the same proxy over TLS, for callers outside a
//! private network, and the only way to satisfy `mtls_auth`. With `CLIENT_CA_FILE` the
//! handshake asks for a client certificate chaining to that CA (optional, so callers
//! using other auth kinds need none); a verified certificate's SANs travel with every
//! request of the connection.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::Proxy;
use super::listener::serve_io;
use crate::proxy::config::TlsListenerConfig;
use tokenizer_net::lifecycle::Lifecycle;
use tokenizer_secret::auth::ClientCert;

/// Why the TLS listener cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsListenerError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{name} {path}: {detail}")]
    File {
        /// The setting naming the file: `TLS_CERT_FILE`, `TLS_KEY_FILE` or `CLIENT_CA_FILE`.
        name: &'static str,
        /// The file, as displayed.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// rustls refused the configuration (for example, a key that does not match the
    /// certificate).
    #[error("TLS listener: {0}")]
    Config(String),
}

/// The listener's rustls configuration.
pub fn acceptor(config: &TlsListenerConfig) -> Result<TlsAcceptor, TlsListenerError> {
    let file_err =
        |name: &'static str, path: &std::path::Path, detail: String| TlsListenerError::File {
            name,
            path: path.display().to_string(),
            detail,
        };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert_file)
        .and_then(Iterator::collect)
        .map_err(|e| file_err("TLS_CERT_FILE", &config.cert_file, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_err(
            "TLS_CERT_FILE",
            &config.cert_file,
            "no certificate".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key_file)
        .map_err(|e| file_err("TLS_KEY_FILE", &config.key_file, e.to_string()))?;
    let provider = tokenizer_net::upstream::tls::provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsListenerError::Config(e.to_string()))?;
    let builder = match &config.client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect)
                .map_err(|e| file_err("CLIENT_CA_FILE", path, e.to_string()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(file_err(
                    "CLIENT_CA_FILE",
                    path,
                    "no CA certificate".to_owned(),
                ));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsListenerError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut server = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsListenerError::Config(e.to_string()))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Accept TLS connections on `listener` until `lifecycle` stops.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    proxy: Arc<Proxy>,
    lifecycle: &Lifecycle,
) {
    lifecycle
        .accept(listener, move |stream, peer, stop| {
            connection(proxy.clone(), acceptor.clone(), stream, peer, stop)
        })
        .await;
}

async fn connection(
    proxy: Arc<Proxy>,
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    let Some(tls) = tokenizer_net::lifecycle::accept_tls(&acceptor, stream, peer).await else {
        return;
    };
    // rustls verified the chain (to CLIENT_CA_FILE, for client authentication) before
    // the handshake completed; only the leaf's names are read here.
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| ClientCert::from_der(leaf))
        .map(Arc::new);
    serve_io(proxy, tls, peer, cert, stop).await;
}
