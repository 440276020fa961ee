//! Name resolution for upstream dials, with `UPSTREAM_RESOLVE` pins
//! (`host[:port]=ip[:port]`, like curl's `--resolve`).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};

/// A pin that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad UPSTREAM_RESOLVE entry {0:?}: want host[:port]=ip[:port]")]
pub struct BadPin(pub String);

/// Pinned addresses, keyed by lowercase host and port.
#[derive(Clone, Debug, Default)]
pub struct Resolver {
    pins: HashMap<(String, u16), SocketAddr>,
}

impl Resolver {
    /// Parse a comma list of pins. A pin without a port applies to 443; a target without
    /// a port keeps the request's port.
    pub fn parse(list: &str) -> Result<Self, BadPin> {
        let mut pins = HashMap::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || BadPin(entry.to_owned());
            let (from, to) = entry.split_once('=').ok_or_else(bad)?;
            let (host, port) = split_host_port(from.trim(), 443).ok_or_else(bad)?;
            let (ip, to_port) = split_host_port(to.trim(), port).ok_or_else(bad)?;
            let ip: IpAddr = ip.parse().map_err(|_| bad())?;
            if host.is_empty() {
                return Err(bad());
            }
            pins.insert(
                (host.to_ascii_lowercase(), port),
                SocketAddr::new(ip, to_port),
            );
        }
        Ok(Self { pins })
    }

    /// Addresses for `host:port`: the pin, an IP literal, or DNS.
    pub async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        if let Some(addr) = self.pins.get(&(host.to_ascii_lowercase(), port)) {
            return Ok(vec![*addr]);
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no addresses"));
        }
        Ok(addrs)
    }
}

/// Split `host[:port]` / `[v6][:port]`; `default` when there is no port.
pub fn split_host_port(s: &str, default: u16) -> Option<(&str, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((host, p.parse().ok()?)),
            None if after.is_empty() => Some((host, default)),
            None => None,
        };
    }
    match s.rsplit_once(':') {
        // A bare IPv6 literal has several colons and no port.
        Some((host, _)) if host.contains(':') => Some((s, default)),
        Some((host, p)) => Some((host, p.parse().ok()?)),
        None => Some((s, default)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pins_take_precedence() {
        let r = Resolver::parse("api.test=127.0.0.1:9443, other.test:8443=[::1]:1,x.test=10.0.0.1")
            .unwrap();
        assert_eq!(
            r.resolve("API.test", 443).await.unwrap(),
            ["127.0.0.1:9443".parse().unwrap()]
        );
        assert_eq!(
            r.resolve("other.test", 8443).await.unwrap(),
            ["[::1]:1".parse().unwrap()]
        );
        assert_eq!(
            r.resolve("x.test", 443).await.unwrap(),
            ["10.0.0.1:443".parse().unwrap()]
        );
        assert_eq!(
            r.resolve("[::1]", 5).await.unwrap(),
            ["[::1]:5".parse().unwrap()]
        );
    }

    #[test]
    fn bad_pins() {
        for bad in ["nohost", "a=notanip", "a:x=1.2.3.4", "=1.2.3.4:1"] {
            assert!(Resolver::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("a:1", 9), Some(("a", 1)));
        assert_eq!(split_host_port("a", 9), Some(("a", 9)));
        assert_eq!(split_host_port("[::1]:2", 9), Some(("::1", 2)));
        assert_eq!(split_host_port("[::1]", 9), Some(("::1", 9)));
        assert_eq!(split_host_port("::1", 9), Some(("::1", 9)));
        assert_eq!(split_host_port("a:x", 9), None);
    }
}
