//! Reading a CA's DNS name constraints and validity, and the RFC 5280 matching rule.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Does `name` fall under one of the permitted subtrees? A constraint `example.com`
/// permits `example.com` and every name below it (`api.example.com`).
pub fn name_fits(permitted: &[String], name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    permitted.iter().any(|p| {
        let p = p.trim_start_matches('.').to_ascii_lowercase();
        name == p || name.ends_with(&format!(".{p}"))
    })
}

/// The permitted DNS subtrees of a CA certificate. A CA without name constraints is
/// refused: it could sign for any site.
pub fn permitted_dns(der: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("bad certificate: {e}"))?;
    let constraints = cert
        .name_constraints()
        .map_err(|e| format!("bad name constraints: {e}"))?
        .ok_or("the CA has no name constraints")?;
    if !constraints.critical {
        return Err("the CA's name constraints are not critical".to_owned());
    }
    let permitted = constraints
        .value
        .permitted_subtrees
        .as_ref()
        .ok_or("the CA's name constraints permit nothing")?;
    Ok(permitted
        .iter()
        .filter_map(|s| match &s.base {
            GeneralName::DNSName(n) => Some(n.to_ascii_lowercase()),
            _ => None,
        })
        .collect())
}

/// Is `public_key` (the raw subjectPublicKey bits) the certificate's public key?
pub fn key_matches(der: &CertificateDer<'_>, public_key: &[u8]) -> bool {
    X509Certificate::from_der(der)
        .is_ok_and(|(_, cert)| &*cert.public_key().subject_public_key.data == public_key)
}

/// Is the certificate valid now and for at least `margin` more?
pub fn valid_for(der: &CertificateDer<'_>, margin: Duration) -> bool {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let validity = cert.validity();
    validity.not_before.timestamp() <= now
        && validity.not_after.timestamp() > now + margin.as_secs() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtree_matching() {
        let p = vec!["api.openai.com".to_owned(), "localhost".to_owned()];
        assert!(name_fits(&p, "api.openai.com"));
        assert!(name_fits(&p, "API.openai.com."));
        assert!(name_fits(&p, "eu.api.openai.com"));
        assert!(!name_fits(&p, "openai.com"));
        assert!(!name_fits(&p, "evilapi.openai.com"));
        assert!(!name_fits(&p, "example.com"));
    }
}
