//! `tokenizer sideproxy` configuration: targets and their sealed secrets, the tokenizer
//! to forward through, listeners, the CA directory and passthrough rules.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderValue;

use tokenizer_core::SecretString;
use tokenizer_core::settings::{ConfigError, comma_list};
use tokenizer_net::upstream::UpstreamConfig;
use tokenizer_secret::secret::TokenizerHeader;

/// Everything the sidecar needs.
#[derive(Clone, Debug)]
pub struct SideproxyConfig {
    /// The hosts the sidecar intercepts and the sealed secret for each (`TARGETS`).
    pub targets: Targets,
    /// The tokenizer requests are forwarded through (`PROXY`).
    pub proxy: ProxyUrl,
    /// HTTP/2 with prior knowledge to `PROXY` (`PROXY_HTTP2`).
    pub proxy_http2: bool,
    /// The TLS listener's port (`PORT`), bound on every address of `bind`.
    pub port: u16,
    /// The addresses the TLS and transparent listeners bind (`BIND_ADDRESSES`).
    pub bind: Vec<IpAddr>,
    /// Sent to the tokenizer as `Proxy-Authorization: Bearer …`, for `bearer_auth`
    /// secrets (`TOKENIZER_AUTH`).
    pub tokenizer_auth: Option<SecretString>,
    /// Where the CA lives (`ca.pem`, `ca-key.pem`, generated when missing) and
    /// `bundle.pem` is written (`CA_DIR`).
    pub ca_dir: PathBuf,
    /// The HTTP CONNECT listener for `HTTPS_PROXY` clients, if any
    /// (`HTTPS_PROXY_ADDRESS`).
    pub https_proxy_address: Option<SocketAddr>,
    /// The transparent listener's port (`TRANSPARENT_PORT`), on `BIND_ADDRESSES`.
    pub transparent_port: Option<u16>,
    /// Hosts tunnelled without interception (`PASSTHROUGH`).
    pub passthrough: Passthrough,
    /// Passthrough dials (pins, destination guard, timeouts), and the TLS roots also
    /// trusted for an `https://` tokenizer (`UPSTREAM_*`).
    pub upstream: UpstreamConfig,
    /// How long the tokenizer may take to send response headers (`TOKENIZER_TIMEOUT`).
    pub tokenizer_timeout: Duration,
    /// How long open connections may finish their requests after SIGTERM/SIGINT
    /// (`SHUTDOWN_TIMEOUT`).
    pub drain_timeout: Duration,
    /// How many audit entries `/v1/audit` keeps.
    pub audit_ring_size: usize,
    /// The admin listener (`ADMIN_ADDRESS`).
    pub admin_address: Option<SocketAddr>,
    /// `ADMIN_TOKEN`.
    pub admin_token: Option<SecretString>,
    /// `SEAL_KEY`: lets the admin API seal for the tokenizer.
    pub seal_key: Option<tokenizer_core::SealKey>,
    /// Client headers removed before forwarding (`STRIP_CLIENT_HEADERS`): the sandbox's
    /// dummy credentials.
    pub strip_client_headers: Vec<http::HeaderName>,
    /// How long a client may take to send request headers.
    pub client_header_timeout: Duration,
    /// Client connections at once (0 = no limit).
    pub max_connections: usize,
    /// The sandbox's DNS, answered by the sidecar (`DNS_ADDRESS`); `None`: off.
    pub dns: Option<super::dns::DnsConfig>,
}

/// Target host → the `Proxy-Tokenizer` value (sealed secret, optional `; {params}`).
#[derive(Clone, Debug, Default)]
pub struct Targets(BTreeMap<String, HeaderValue>);

/// Hosts tunnelled without interception in CONNECT mode.
#[derive(Clone, Debug, Default)]
pub struct Passthrough(Vec<HostRule>);

/// `host`, `host:port`, `*.suffix` or `*.suffix:port` (port 443 when absent).
#[derive(Clone, Debug, PartialEq, Eq)]
struct HostRule {
    host: String,
    wildcard: bool,
    port: u16,
}

/// Where the tokenizer listens: `http://host[:port]` or `https://host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyUrl {
    /// `https://`: the sidecar speaks TLS to the tokenizer.
    pub tls: bool,
    /// The tokenizer's host name or IP.
    pub host: String,
    /// The tokenizer's port (80 for `http://`, 443 for `https://` when absent).
    pub port: u16,
}

// === impl Targets ===

impl Targets {
    /// Parse `host=ENVVAR,…`, reading each variable through `env`.
    pub fn parse(list: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let invalid = |detail: String| ConfigError::Invalid {
            name: "TARGETS",
            detail,
        };
        let mut out = BTreeMap::new();
        for entry in comma_list(list) {
            let (host, var) = entry
                .split_once('=')
                .map(|(h, v)| (h.trim(), v.trim()))
                .ok_or_else(|| invalid(format!("{entry:?}: want host=ENVVAR")))?;
            let host = normalize_host(host)
                .ok_or_else(|| invalid(format!("{host:?} is not a host name")))?;
            if var.is_empty() {
                return Err(invalid(format!("{host}: no variable named")));
            }
            let value = env(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| invalid(format!("{host}: ${var} is unset or empty")))?;
            let header = HeaderValue::from_str(&value)
                .map_err(|_| invalid(format!("{host}: ${var} is not a sealed secret")))?;
            let parsed = TokenizerHeader::parse(&header)
                .map_err(|e| invalid(format!("{host}: ${var}: {e}")))?;
            let sealed_len = tokenizer_core::b64::decode_token(parsed.sealed)
                .map_err(|_| invalid(format!("{host}: ${var} is not base64")))?
                .len();
            if sealed_len < tokenizer_core::SEAL_OVERHEAD {
                return Err(invalid(format!("{host}: ${var} is too short to be sealed")));
            }
            if out.insert(host.clone(), header).is_some() {
                return Err(invalid(format!("{host} is listed twice")));
            }
        }
        if out.is_empty() {
            return Err(invalid("no targets: want host=ENVVAR,…".to_owned()));
        }
        Ok(Self(out))
    }

    /// The `Proxy-Tokenizer` value for `host`, if it is a target.
    pub fn get(&self, host: &str) -> Option<&HeaderValue> {
        self.0.get(&normalize_host(host)?)
    }

    /// The target hosts, lowercase and sorted.
    pub fn hosts(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }
}

// === impl Passthrough ===

impl Passthrough {
    /// Parse `PASSTHROUGH`, a comma list of `host`, `host:port`, `*.domain` or
    /// `*.domain:port` (port 443 when absent); empty allows nothing.
    pub fn parse(list: &str) -> Result<Self, ConfigError> {
        Self::parse_named("PASSTHROUGH", list)
    }

    /// [`Passthrough::parse`] of the variable `name` (`DNS_ALLOW` takes the same list).
    pub fn parse_named(name: &'static str, list: &str) -> Result<Self, ConfigError> {
        let rules = comma_list(list)
            .map(|entry| {
                let invalid = || ConfigError::Invalid {
                    name,
                    detail: format!("{entry:?}: want host, host:port or *.domain[:port]"),
                };
                let (host, port) = match entry.rsplit_once(':') {
                    Some((h, p)) => (h, p.parse().map_err(|_| invalid())?),
                    None => (entry, 443),
                };
                let (wildcard, host) = match host.strip_prefix("*.") {
                    Some(rest) => (true, rest),
                    None => (false, host),
                };
                let host = normalize_host(host).ok_or_else(invalid)?;
                Ok(HostRule {
                    host,
                    wildcard,
                    port,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(rules))
    }

    /// Does a rule name `host`, on any port? (What DNS may resolve.)
    pub fn names(&self, host: &str) -> bool {
        let Some(host) = normalize_host(host) else {
            return false;
        };
        self.0.iter().any(|r| {
            if r.wildcard {
                host.ends_with(&format!(".{}", r.host))
            } else {
                host == r.host
            }
        })
    }

    /// May a CONNECT to `host:port` be tunnelled?
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let Some(host) = normalize_host(host) else {
            return false;
        };
        self.0.iter().any(|r| {
            r.port == port
                && if r.wildcard {
                    host.ends_with(&format!(".{}", r.host))
                } else {
                    host == r.host
                }
        })
    }
}

// === impl ProxyUrl ===

impl ProxyUrl {
    /// Parse `PROXY`: `http://host[:port]` or `https://host[:port]`, with no path.
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        let invalid = |detail: &str| ConfigError::Invalid {
            name: "PROXY",
            detail: format!("{url:?}: {detail}"),
        };
        let uri: http::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(invalid("want http:// or https://")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(invalid("a tokenizer URL has no path"));
        }
        Ok(Self {
            tls,
            host: authority.host().to_owned(),
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        })
    }
}

/// Lowercase, no trailing dot, DNS characters only.
fn normalize_host(host: &str) -> Option<String> {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    ok.then_some(host)
}

/// `BIND_ADDRESSES`: IP addresses (IPv6 with or without brackets).
pub fn bind_addresses(list: &str) -> Result<Vec<IpAddr>, ConfigError> {
    let addrs = comma_list(list)
        .map(|a| {
            a.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .map_err(|_| ConfigError::Invalid {
                    name: "BIND_ADDRESSES",
                    detail: format!("{a:?} is not an IP address"),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        return Err(ConfigError::Invalid {
            name: "BIND_ADDRESSES",
            detail: "no address".to_owned(),
        });
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed() -> String {
        tokenizer_core::b64::encode(&[7u8; 60])
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some(sealed()),
            "P" => Some(format!("{}; {{\"dst\":\"x-api-key\"}}", sealed())),
            "EMPTY" => Some(String::new()),
            "JUNK" => Some("not base64!".to_owned()),
            "SHORT" => Some(tokenizer_core::b64::encode(b"tiny")),
            _ => None,
        }
    }

    #[test]
    fn targets_read_their_variables() {
        let t = Targets::parse("API.example.com.=A, b.example.com=P", &env).unwrap();
        assert!(t.get("api.example.com").is_some());
        assert!(t.get("API.EXAMPLE.COM").is_some());
        assert!(
            t.get("b.example.com")
                .unwrap()
                .to_str()
                .unwrap()
                .contains("x-api-key")
        );
        assert!(t.get("c.example.com").is_none());
        assert_eq!(t.hosts().count(), 2);
    }

    #[test]
    fn bad_targets() {
        for bad in [
            "",
            "a.com",
            "a.com=",
            "=A",
            "a.com=UNSET",
            "a.com=EMPTY",
            "a.com=JUNK",
            "a.com=SHORT",
            "a.com=A,a.com=A",
            "bad host=A",
        ] {
            let err = Targets::parse(bad, &env).unwrap_err().to_string();
            assert!(err.starts_with("TARGETS"), "{bad}: {err}");
        }
    }

    #[test]
    fn passthrough_rules() {
        let p = Passthrough::parse("github.com, *.githubusercontent.com, pypi.org:8443").unwrap();
        assert!(p.allows("github.com", 443));
        assert!(!p.allows("github.com", 22));
        assert!(!p.allows("api.github.com", 443));
        assert!(p.allows("raw.githubusercontent.com", 443));
        assert!(!p.allows("githubusercontent.com", 443));
        assert!(p.allows("pypi.org", 8443));
        assert!(!p.allows("pypi.org", 443));
        assert!(Passthrough::parse("a.com:x").is_err());
    }

    #[test]
    fn proxy_urls() {
        assert_eq!(
            ProxyUrl::parse("http://tokenizer.flycast").unwrap(),
            ProxyUrl {
                tls: false,
                host: "tokenizer.flycast".into(),
                port: 80
            }
        );
        assert_eq!(
            ProxyUrl::parse("https://t.example:8443").unwrap().port,
            8443
        );
        assert!(ProxyUrl::parse("https://t.example").unwrap().tls);
        assert!(ProxyUrl::parse("ftp://x").is_err());
        assert!(ProxyUrl::parse("http://x/path").is_err());
    }

    #[test]
    fn bind_address_forms() {
        assert_eq!(bind_addresses("127.0.0.1,::1,[::1]").unwrap().len(), 3);
        assert!(bind_addresses("localhost").is_err());
    }
}
