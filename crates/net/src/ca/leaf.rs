//! Forging a leaf certificate for one host from the CA.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crypto_box::aead::rand_core::RngCore;
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

use super::{CaError, CertificateAuthority};

/// How long a forged leaf is valid.
pub const LEAF_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// A forged certificate and when it stops being valid.
pub struct Leaf {
    pub key: Arc<CertifiedKey>,
    pub not_after: SystemTime,
}

impl CertificateAuthority {
    /// A certificate for `name` (backdated an hour for clock skew), chained to the CA.
    pub fn forge(&self, name: &str) -> Result<Leaf, CaError> {
        let mut params = CertificateParams::new(vec![name.to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.serial_number = Some(random_serial());
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + LEAF_LIFETIME;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = crate::upstream::tls::provider()
            .key_provider
            .load_private_key(der)
            .map_err(|e| CaError::Invalid {
                path: name.into(),
                detail: e.to_string(),
            })?;
        let chain = vec![cert.der().clone(), self.cert_der.clone()];
        Ok(Leaf {
            key: Arc::new(CertifiedKey::new(chain, signing)),
            not_after: SystemTime::now() + LEAF_LIFETIME,
        })
    }
}

/// A random positive 128-bit serial.
pub fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    crypto_box::aead::OsRng.fill_bytes(&mut bytes);
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}
