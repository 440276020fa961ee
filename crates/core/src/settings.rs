//! Settings parsed once at start-up: sizes, durations, booleans (Go's spellings),
//! CIDR and header-name lists, listen addresses, the open keys. A bad value is a clear
//! one-line message (`NAME: "value": what is wanted`) and exit status 2, before any port
//! is bound.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;

use crate::{KeyError, OpenKey, OpenKeys};

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither `OPEN_KEY` nor `OPEN_KEY_FILE`.
    #[error("missing OPEN_KEY (or OPEN_KEY_FILE)")]
    MissingOpenKey,
    /// Both `OPEN_KEY` and `OPEN_KEY_FILE`.
    #[error("set only one of OPEN_KEY and OPEN_KEY_FILE")]
    TwoOpenKeys,
    /// A file a setting names cannot be read.
    #[error("cannot read {name} {path}: {source}")]
    ReadFile {
        /// The setting.
        name: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key setting that is not a key (its value is never quoted).
    #[error("{name}: {source}")]
    Key {
        /// The setting.
        name: &'static str,
        /// Why.
        source: KeyError,
    },
    /// Any other bad value: the setting, then the value and what is wanted.
    #[error("{name}: {detail}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// The value and what is wanted.
        detail: String,
    },
}

/// `ADMIN_TOKEN`: unset leaves the admin API open (documented); set, it must not be
/// empty — an empty token would silently open `/v1/audit` and `/v1/stats`.
pub fn admin_token(token: Option<String>) -> Result<Option<crate::SecretString>, ConfigError> {
    match token {
        Some(t) if t.trim().is_empty() => Err(ConfigError::Invalid {
            name: "ADMIN_TOKEN",
            detail: "is empty: give a token, or unset it".to_owned(),
        }),
        other => Ok(other.map(crate::SecretString::new)),
    }
}

/// Build the open keys from `OPEN_KEY` / `OPEN_KEY_FILE` and `PREVIOUS_OPEN_KEYS`.
pub fn open_keys(
    open_key: Option<&str>,
    open_key_file: Option<&std::path::Path>,
    previous: Option<&str>,
) -> Result<OpenKeys, ConfigError> {
    let current = match (open_key, open_key_file) {
        (Some(_), Some(_)) => return Err(ConfigError::TwoOpenKeys),
        (Some(hex), None) => OpenKey::from_hex(hex).map_err(|source| ConfigError::Key {
            name: "OPEN_KEY",
            source,
        })?,
        (None, Some(path)) => {
            let text =
                zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
                    ConfigError::ReadFile {
                        name: "OPEN_KEY_FILE",
                        path: path.to_owned(),
                        source,
                    }
                })?);
            OpenKey::from_hex(&text).map_err(|source| ConfigError::Key {
                name: "OPEN_KEY_FILE",
                source,
            })?
        }
        (None, None) => return Err(ConfigError::MissingOpenKey),
    };
    let previous = comma_list(previous.unwrap_or(""))
        .map(|hex| {
            OpenKey::from_hex(hex).map_err(|source| ConfigError::Key {
                name: "PREVIOUS_OPEN_KEYS",
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(OpenKeys::new(current, previous))
}

/// Non-empty, trimmed items of a comma list.
/// The non-empty, trimmed items of a comma list.
pub fn comma_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|i| !i.is_empty())
}

/// `LISTEN_ADDRESS`: `host:port`, or `:port` for every interface (IPv6 and IPv4).
pub fn listen_addrs(s: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    let invalid = |detail: String| ConfigError::Invalid {
        name: "LISTEN_ADDRESS",
        detail,
    };
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| invalid(format!("bad port in {s:?}")))?;
        return Ok(vec![
            SocketAddr::from(([0u16; 8], port)),
            SocketAddr::from(([0u8; 4], port)),
        ]);
    }
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|_| {
            invalid(format!(
                "{s:?}: want host:port, :port (every interface) or [ipv6]:port"
            ))
        })?
        .collect();
    if addrs.is_empty() {
        return Err(invalid(format!("{s:?} resolves to nothing")));
    }
    Ok(addrs)
}

/// A comma list of header names.
pub fn header_names(name: &'static str, s: &str) -> Result<Vec<HeaderName>, ConfigError> {
    comma_list(s)
        .map(|h| {
            HeaderName::from_bytes(h.as_bytes()).map_err(|_| ConfigError::Invalid {
                name,
                detail: format!("{h:?} is not a header name"),
            })
        })
        .collect()
}

/// A comma list of CIDRs; a bare address is a single-host network.
pub fn cidrs(name: &'static str, s: &str) -> Result<Vec<IpNet>, ConfigError> {
    comma_list(s)
        .map(|c| {
            c.parse::<IpNet>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| ConfigError::Invalid {
                    name,
                    detail: format!("{c:?} is not a CIDR"),
                })
        })
        .collect()
}

/// Go's `strconv.ParseBool`: `1 t T TRUE true True` / `0 f F FALSE false False`.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" | "" => Ok(false),
        other => Err(format!("{other:?} is not a boolean (use true or false)")),
    }
}

/// Go's `strconv.ParseBool` as the Go tokenizer uses it for `DEBUG`: true for
/// `1 t T TRUE true True`, false for anything else.
pub fn go_bool(s: &str) -> bool {
    parse_bool(s).unwrap_or(false)
}

/// A byte size: `1048576`, `512KiB`, `10MiB`, `1GiB` (also `K`, `KB`, `M`, `MB`, `G`,
/// `GB`, all binary multiples).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 10MiB"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{s:?}: unknown unit (use KiB, MiB or GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A duration, the one grammar of every flag that takes one: plain seconds (`30`), or
/// `humantime`'s (`500ms`, `30s`, `2m`, `1h30m`, `7d`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| format!("{s:?} is too large"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration such as 30s, 500ms or 1h30m ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("42"), Ok(42));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("1TB").is_err());
    }

    #[test]
    fn bools_follow_go() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Ok(true));
        }
        assert_eq!(parse_bool("false"), Ok(false));
        assert!(parse_bool("yes").is_err());
    }

    #[test]
    fn listen_forms() {
        assert_eq!(listen_addrs(":8080").unwrap().len(), 2);
        assert_eq!(
            listen_addrs("127.0.0.1:0").unwrap(),
            ["127.0.0.1:0".parse().unwrap()]
        );
        assert!(listen_addrs(":http").is_err());
    }

    #[test]
    fn cidr_lists() {
        let c = cidrs("X", "10.0.0.0/8, 192.0.2.1,::1/128").unwrap();
        assert_eq!(c.len(), 3);
        assert!(cidrs("X", "nope").is_err());
    }

    #[test]
    fn keys_need_exactly_one_source() {
        assert!(matches!(
            open_keys(None, None, None),
            Err(ConfigError::MissingOpenKey)
        ));
        let bad = open_keys(Some("abcd"), None, None).unwrap_err().to_string();
        assert!(bad.contains("OPEN_KEY") && !bad.contains("abcd"), "{bad}");
    }
}
