//! The fake internet's certificate authority: generated per run, trusted only by the
//! tokenizer (UPSTREAM_CA_FILE), and one leaf for the fake API hosts.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// PEM files in a directory of the run.
pub struct InternetCa {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The servers' leaf followed by the CA.
    pub chain: PathBuf,
    /// The leaf's private key (PKCS#8).
    pub key: PathBuf,
}

impl InternetCa {
    pub fn create(dir: &Path, names: &[&str]) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "tokenizer e2e internet CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(params, ca_key);

        let mut leaf =
            CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        leaf.distinguished_name.push(DnType::CommonName, names[0]);
        leaf.use_authority_key_identifier_extension = true;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();

        let ca = dir.join("internet-ca.pem");
        let chain = dir.join("api-chain.pem");
        let key = dir.join("api-key.pem");
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        std::fs::write(&chain, format!("{}{}", leaf_cert.pem(), ca_cert.pem())).unwrap();
        std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
        Self { ca, chain, key }
    }
}
