//! A throwaway certificate authority for upstream TLS, generated per test run.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA whose certificate is written to a temporary PEM file (for UPSTREAM_CA_FILE).
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    pub pem_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "tokenizer test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pem_path = dir.path().join("ca.pem");
        std::fs::write(&pem_path, cert.pem()).unwrap();
        Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
            pem_path,
            _dir: dir,
        }
    }

    /// The certificate's PEM file, as a flag value.
    pub fn pem_file(&self) -> String {
        self.pem_path.display().to_string()
    }

    /// A server leaf for `names` (DNS names or IP literals): (certificate PEM, PKCS#8
    /// key PEM), for servers that read files (redis-server).
    pub fn leaf_pem(&self, names: &[&str]) -> (String, String) {
        let (cert, key) = self.leaf(names);
        (cert.pem(), key.serialize_pem())
    }

    fn leaf(&self, names: &[&str]) -> (rcgen::Certificate, KeyPair) {
        let mut params =
            CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert, key)
    }

    /// A client certificate (client-auth usage) with these URI and DNS SANs: (certificate
    /// PEM, PKCS#8 key PEM).
    pub fn client_leaf_pem(&self, uris: &[&str], dns: &[&str]) -> (String, String) {
        self.client_leaf_pem_until(uris, dns, None)
    }

    /// [`TestCa::client_leaf_pem`], valid until `not_after` when given.
    pub fn client_leaf_pem_until(
        &self,
        uris: &[&str],
        dns: &[&str],
        not_after: Option<std::time::SystemTime>,
    ) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "test client");
        params.subject_alt_names = uris
            .iter()
            .map(|u| rcgen::SanType::URI((*u).try_into().unwrap()))
            .chain(
                dns.iter()
                    .map(|d| rcgen::SanType::DnsName((*d).try_into().unwrap())),
            )
            .collect();
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if let Some(at) = not_after {
            params.not_before =
                (std::time::SystemTime::now() - std::time::Duration::from_secs(3600)).into();
            params.not_after = at.into();
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A server config with a leaf for `names` (DNS names or IP literals).
    pub fn server_config(&self, names: &[&str], alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let (cert, key) = self.leaf(names);
        let chain = vec![cert.der().clone(), self.cert_der.clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config =
            rustls::ServerConfig::builder_with_provider(tokenizer::upstream::tls::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}
