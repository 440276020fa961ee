//! The rustls client configuration for upstream connections.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

/// Trust anchors could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// `UPSTREAM_CA_FILE` could not be read or parsed as PEM.
    #[error("cannot read UPSTREAM_CA_FILE {path}: {source}")]
    CaFile {
        /// The file, as displayed.
        path: String,
        /// The read or PEM parse error.
        source: rustls::pki_types::pem::Error,
    },
    /// `UPSTREAM_CA_FILE` (the path shown) parsed but has no certificate rustls accepts.
    #[error("UPSTREAM_CA_FILE {0} holds no usable certificate")]
    EmptyCaFile(String),
    /// rustls rejected the client configuration (protocol versions).
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider used everywhere (ring), chosen explicitly so the process never
/// depends on a global default.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// System roots (falling back to the Mozilla bundle when the system has none) plus the
/// certificates in `extra_ca`. ALPN offers HTTP/1.1.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = extra_ca {
        let shown = path.display().to_string();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect)
            .map_err(|source| TlsConfigError::CaFile {
                path: shown.clone(),
                source,
            })?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(TlsConfigError::EmptyCaFile(shown));
        }
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
