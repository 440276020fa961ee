//! The sidecar's local certificate authority: loaded from `CA_DIR` or generated there,
//! constrained by critical DNS name constraints to the target hosts (and `localhost`),
//! so that even a stolen CA key cannot mint a certificate any client would accept for
//! another site.

mod cache;
mod constraints;
mod files;
mod leaf;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, GeneralSubtree, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, NameConstraints,
};
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

pub use cache::CertCache;
pub use constraints::name_fits;

/// How long a generated CA is valid.
const CA_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// A CA closer than this to expiry is replaced at start-up.
const CA_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why the CA could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Creating `CA_DIR`, or reading or writing a file in it, failed.
    #[error("{path}: {source}")]
    Io {
        /// The directory or file (`ca.pem`, `ca-key.pem`) concerned.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A CA file exists but is unusable: bad PEM, a key from another pair, not a CA.
    #[error("{path}: {detail}")]
    Invalid {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// One file of the certificate/key pair exists (first) and the other is missing
    /// (second); the CA is neither loaded nor overwritten.
    #[error("{0} exists but {1} does not; remove it or restore the pair")]
    HalfPair(PathBuf, PathBuf),
    /// rcgen could not generate the key or sign the CA certificate.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// A target host is not a plain DNS name, so it cannot be a name constraint.
    #[error("{0:?} is not a DNS name the CA can be constrained to")]
    BadName(String),
}

/// What [`CertificateAuthority::load_or_generate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// The existing CA in `CA_DIR` was valid and covered every name, so it was reused.
    Loaded,
    /// There was no CA in `CA_DIR`; a new one was generated and written there.
    Generated,
    /// Replaced: expired, about to expire, or its constraints no longer cover the names.
    Regenerated,
}

impl std::fmt::Display for Provenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Loaded => "loaded",
            Self::Generated => "generated",
            Self::Regenerated => "regenerated",
        })
    }
}

/// A CA that can forge leaf certificates.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    permitted: Vec<String>,
}

impl CertificateAuthority {
    /// Load `dir/ca.pem` and `dir/ca-key.pem`; generate them when both are missing, and
    /// replace them when the CA is (nearly) expired or its name constraints do not cover
    /// every name in `names`.
    pub fn load_or_generate(dir: &Path, names: &[String]) -> Result<(Self, Provenance), CaError> {
        let names = constraint_names(names)?;
        let paths = files::CaFiles::new(dir);
        let provenance = match paths.read()? {
            None => Provenance::Generated,
            Some((cert_pem, key_pem)) => {
                let loaded = Self::from_pem(&cert_pem, &key_pem, &paths)?;
                let fits = names.iter().all(|n| name_fits(&loaded.permitted, n));
                let fresh = constraints::valid_for(&loaded.cert_der, CA_RENEW_BEFORE);
                if fits && fresh {
                    return Ok((loaded, Provenance::Loaded));
                }
                Provenance::Regenerated
            }
        };
        let ca = Self::generate(&names)?;
        paths.write(&ca.cert_pem, &ca.issuer.key().serialize_pem())?;
        Ok((ca, provenance))
    }

    /// A new CA permitted to sign for `names` (and their subdomains) only.
    pub fn generate(names: &[String]) -> Result<Self, CaError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(DnType::CommonName, "tokenizer sideproxy local CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "tokenizer");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: names.iter().cloned().map(GeneralSubtree::DnsName).collect(),
            excluded_subtrees: Vec::new(),
        });
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + CA_LIFETIME;
        params.serial_number = Some(leaf::random_serial());
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
            permitted: names.to_vec(),
        })
    }

    fn from_pem(cert_pem: &str, key_pem: &str, paths: &files::CaFiles) -> Result<Self, CaError> {
        let invalid = |path: &Path, detail: String| CaError::Invalid {
            path: path.to_owned(),
            detail,
        };
        let key =
            KeyPair::from_pem(key_pem).map_err(|e| invalid(&paths.key, format!("bad key: {e}")))?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| invalid(&paths.cert, format!("bad certificate: {e}")))?;
        let permitted =
            constraints::permitted_dns(&cert_der).map_err(|e| invalid(&paths.cert, e))?;
        // A key from another pair would sign certificates no client accepts.
        if !constraints::key_matches(&cert_der, key.public_key_raw()) {
            return Err(invalid(
                &paths.key,
                format!("does not belong to {}", paths.cert.display()),
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|e| invalid(&paths.cert, format!("not a usable CA: {e}")))?;
        Ok(Self {
            issuer,
            cert_pem: cert_pem.to_owned(),
            cert_der,
            permitted,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The DNS names the CA may sign for.
    pub fn permitted(&self) -> &[String] {
        &self.permitted
    }
}

use rustls::pki_types::pem::PemObject;

/// The sorted, lowercased names to constrain the CA to: the targets plus `localhost`.
fn constraint_names(names: &[String]) -> Result<Vec<String>, CaError> {
    let mut out: Vec<String> = names
        .iter()
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
        .chain(["localhost".to_owned()])
        .collect();
    for n in &out {
        let ok = !n.is_empty()
            && n.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !ok {
            return Err(CaError::BadName(n.clone()));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests;
