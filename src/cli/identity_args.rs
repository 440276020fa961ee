//! Caller identity outside Fly (`serve`): OIDC issuers and the mutual-TLS listener.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::proxy::config::TlsListenerConfig;
use tokenizer_core::settings::{self as config, ConfigError};

/// Caller identity outside Fly: OIDC issuers and the mutual-TLS listener.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Identity (OIDC, mTLS)")]
pub struct IdentityArgs {
    /// Issuers whose workload tokens oidc_auth secrets may accept (comma list of https
    /// URLs, exactly as the tokens' `iss`). Only these are ever contacted.
    #[arg(long, env = "OIDC_ISSUERS")]
    pub oidc_issuers: Option<String>,
    /// The least time between two fetches of an issuer's keys for an unknown `kid`.
    #[arg(long, env = "OIDC_REFRESH_INTERVAL", value_parser = config::parse_duration,
          default_value = "30s")]
    pub oidc_refresh_interval: Duration,
    /// Also listen here with TLS (host:port), for callers that prove who they are with a
    /// client certificate (mtls_auth) or want TLS to the proxy.
    #[arg(long, env = "LISTEN_TLS_ADDRESS")]
    pub listen_tls_address: Option<String>,
    /// The TLS listener's certificate chain (PEM).
    #[arg(long, env = "TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// The TLS listener's private key (PEM).
    #[arg(long, env = "TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// CA (PEM) that client certificates must chain to; the TLS listener then asks for
    /// one (optional: callers without one can use the other auth kinds).
    #[arg(long, env = "CLIENT_CA_FILE")]
    pub client_ca_file: Option<PathBuf>,
}

impl IdentityArgs {
    /// `OIDC_ISSUERS`, each an https:// URL.
    pub fn issuers(&self) -> Result<Vec<String>, ConfigError> {
        config::comma_list(self.oidc_issuers.as_deref().unwrap_or(""))
            .map(|i| {
                if i.starts_with("https://") && i.parse::<http::Uri>().is_ok() {
                    Ok(i.to_owned())
                } else {
                    Err(ConfigError::Invalid {
                        name: "OIDC_ISSUERS",
                        detail: format!("{i:?} is not an https:// URL"),
                    })
                }
            })
            .collect()
    }

    /// The TLS listener, `None` without `LISTEN_TLS_ADDRESS`.
    pub fn tls_listener(&self) -> Result<Option<TlsListenerConfig>, ConfigError> {
        let missing = |name: &'static str| ConfigError::Invalid {
            name,
            detail: "required with LISTEN_TLS_ADDRESS".to_owned(),
        };
        let Some(address) = &self.listen_tls_address else {
            for (name, set) in [
                ("TLS_CERT_FILE", self.tls_cert_file.is_some()),
                ("TLS_KEY_FILE", self.tls_key_file.is_some()),
                ("CLIENT_CA_FILE", self.client_ca_file.is_some()),
            ] {
                if set {
                    return Err(ConfigError::Invalid {
                        name,
                        detail: "needs LISTEN_TLS_ADDRESS".to_owned(),
                    });
                }
            }
            return Ok(None);
        };
        let addresses = config::listen_addrs(address).map_err(|_| ConfigError::Invalid {
            name: "LISTEN_TLS_ADDRESS",
            detail: format!("{address:?} is not host:port or :port"),
        })?;
        Ok(Some(TlsListenerConfig {
            addresses,
            cert_file: self.tls_cert_file.clone().ok_or(missing("TLS_CERT_FILE"))?,
            key_file: self.tls_key_file.clone().ok_or(missing("TLS_KEY_FILE"))?,
            client_ca: self.client_ca_file.clone(),
        }))
    }
}
