//! `mtls_auth`: the caller's client certificate, verified on the TLS listener
//! (`LISTEN_TLS_ADDRESS` with `CLIENT_CA_FILE`), must carry a URI SAN matching one of
//! `uris` (SPIFFE IDs, say) or a DNS SAN matching one of `dns`. A request that did not
//! arrive over a TLS connection with a verified client certificate never satisfies it.

use serde::{Deserialize, Serialize};

use super::AuthError;
use super::glob::{DnsGlob, UriGlob};

/// The most patterns in one secret.
const MAX_PATTERNS: usize = 64;

/// `mtls_auth` (not in Go): the caller's verified client certificate must have a URI
/// SAN matching one of `uris` or a DNS SAN matching one of `dns`. At least one pattern,
/// at most 64 in all; unknown keys are refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireMtls")]
pub struct MtlsAuth {
    /// `uris`: patterns for URI SANs (SPIFFE IDs, say), `*` within one `/` segment.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<UriGlob>,
    /// `dns`: patterns for DNS SANs, `*` within one `.` label, case-insensitive.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<DnsGlob>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireMtls {
    #[serde(default)]
    uris: Vec<UriGlob>,
    #[serde(default)]
    dns: Vec<DnsGlob>,
}

impl TryFrom<WireMtls> for MtlsAuth {
    type Error = String;

    fn try_from(w: WireMtls) -> Result<Self, String> {
        if w.uris.is_empty() && w.dns.is_empty() {
            return Err("mtls_auth needs uris or dns patterns".to_owned());
        }
        if w.uris.len() + w.dns.len() > MAX_PATTERNS {
            return Err(format!("mtls_auth: at most {MAX_PATTERNS} patterns"));
        }
        Ok(Self {
            uris: w.uris,
            dns: w.dns,
        })
    }
}

/// The identity a verified client certificate proves: its SANs, for as long as the
/// certificate is valid. The handshake checked the validity once; a keep-alive
/// connection, or a TLS session resumed from a ticket, outlives that check, so every
/// request checks it again ([`ClientCert::valid_at`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientCert {
    /// The URI SANs, as written in the certificate.
    pub uris: Vec<String>,
    /// The DNS SANs, lower case.
    pub dns: Vec<String>,
    /// The certificate's `notBefore`, Unix seconds (`None`: unbounded).
    pub not_before: Option<i64>,
    /// The certificate's `notAfter`, Unix seconds (`None`: unbounded).
    pub not_after: Option<i64>,
}

impl ClientCert {
    /// The SANs of a DER certificate (already verified by the TLS stack); `None` when it
    /// does not parse.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let validity = cert.validity();
        let mut out = Self {
            not_before: Some(validity.not_before.timestamp()),
            not_after: Some(validity.not_after.timestamp()),
            ..Self::default()
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(uri) => out.uris.push((*uri).to_owned()),
                    GeneralName::DNSName(dns) => out.dns.push(dns.to_ascii_lowercase()),
                    _ => {}
                }
            }
        }
        Some(out)
    }

    /// Is the certificate valid at `now` (Unix seconds)?
    pub fn valid_at(&self, now: i64) -> bool {
        self.not_before.is_none_or(|t| now >= t) && self.not_after.is_none_or(|t| now <= t)
    }

    /// For logs: the first URI SAN, else the first DNS SAN.
    pub fn name(&self) -> &str {
        self.uris
            .first()
            .or(self.dns.first())
            .map_or("", String::as_str)
    }
}

impl MtlsAuth {
    /// Does `cert`, valid at `now` (Unix seconds), carry a matching SAN? `None` (no
    /// verified certificate) never does.
    pub fn authorize(&self, cert: Option<&ClientCert>, now: i64) -> Result<(), AuthError> {
        let Some(cert) = cert else {
            return Err(AuthError::NoClientCert);
        };
        if !cert.valid_at(now) {
            return Err(AuthError::ClientCertExpired);
        }
        let uri_ok = cert
            .uris
            .iter()
            .any(|u| self.uris.iter().any(|p| p.0.matches(u)));
        let dns_ok = cert
            .dns
            .iter()
            .any(|d| self.dns.iter().any(|p| p.0.matches(d)));
        if uri_ok || dns_ok {
            Ok(())
        } else {
            Err(AuthError::ClientCertDenied(cert.name().to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(json: &str) -> Result<MtlsAuth, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn matches_uri_or_dns_sans() {
        let a = auth(r#"{"uris":["spiffe://example.org/ns/agents/*"],"dns":["worker.internal"]}"#)
            .unwrap();
        let now = 1_000_000;
        let spiffe = ClientCert {
            uris: vec!["spiffe://example.org/ns/agents/a1".into()],
            ..ClientCert::default()
        };
        assert!(a.authorize(Some(&spiffe), now).is_ok());
        let dns = ClientCert {
            dns: vec!["worker.internal".into()],
            ..ClientCert::default()
        };
        assert!(a.authorize(Some(&dns), now).is_ok());
        let other = ClientCert {
            uris: vec!["spiffe://example.org/ns/other/a1".into()],
            dns: vec!["evil.internal".into()],
            ..ClientCert::default()
        };
        assert!(matches!(
            a.authorize(Some(&other), now),
            Err(AuthError::ClientCertDenied(_))
        ));
        assert_eq!(a.authorize(None, now), Err(AuthError::NoClientCert));
        // Only while the certificate is valid.
        let dated = ClientCert {
            not_before: Some(now - 10),
            not_after: Some(now + 10),
            ..spiffe
        };
        assert!(a.authorize(Some(&dated), now + 10).is_ok());
        assert_eq!(
            a.authorize(Some(&dated), now + 11),
            Err(AuthError::ClientCertExpired)
        );
        assert_eq!(
            a.authorize(Some(&dated), now - 11),
            Err(AuthError::ClientCertExpired)
        );
        assert!(auth("{}").is_err());
        assert!(auth(r#"{"uri":["x"]}"#).is_err());
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"uris":["spiffe://example.org/ns/agents/*"],"dns":["worker.internal"]}"#
        );
    }
}
