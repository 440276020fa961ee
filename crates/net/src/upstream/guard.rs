//! The destination guard: which socket addresses the proxy may dial.
//!
//! Checked on the resolved address of every dial, so a name that resolves to a private
//! address is caught as surely as a literal. Built-in denials cover loopback, RFC 1918,
//! link-local, CGNAT, unique-local, unspecified, multicast, broadcast and reserved
//! ranges, also when embedded in IPv6 (IPv4-mapped, -translated and -compatible, NAT64,
//! 6to4).
//! Operators add denials (`UPSTREAM_DENY_CIDRS`) or exempt ranges from the built-in list
//! (`UPSTREAM_ALLOW_CIDRS`). The tokenizer's own listening sockets are always denied, so
//! a request can never loop back into the proxy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// A dial the guard refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The address is in a denied range.
    #[error("destination {0} is in a denied range")]
    Range(IpAddr),
    /// The address is one of the tokenizer's own listeners.
    #[error("destination {0} is this tokenizer")]
    Loop(SocketAddr),
}

/// Decides whether the proxy may dial a resolved socket address: its own listeners
/// never, operator-denied ranges never, built-in private ranges unless allowed.
#[derive(Clone, Debug, Default)]
pub struct DestinationGuard {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    own: Vec<SocketAddr>,
}

const BUILTIN_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),      // "this network", unspecified
    (Ipv4Addr::new(10, 0, 0, 0), 8),     // RFC 1918
    (Ipv4Addr::new(100, 64, 0, 0), 10),  // CGNAT
    (Ipv4Addr::new(127, 0, 0, 0), 8),    // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16), // link-local (cloud metadata)
    (Ipv4Addr::new(172, 16, 0, 0), 12),  // RFC 1918
    (Ipv4Addr::new(192, 0, 0, 0), 24),   // IETF protocol assignments
    (Ipv4Addr::new(192, 168, 0, 0), 16), // RFC 1918
    (Ipv4Addr::new(198, 18, 0, 0), 15),  // benchmarking
    (Ipv4Addr::new(224, 0, 0, 0), 4),    // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),    // reserved, broadcast
];

const BUILTIN_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::UNSPECIFIED, 128),
    (Ipv6Addr::LOCALHOST, 128),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7), // unique-local (fdaa::/8 included)
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link-local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), // site-local (deprecated)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8), // multicast
];

impl DestinationGuard {
    /// A guard exempting `allow` from the built-in denials, denying `deny` as well, and
    /// refusing the tokenizer's own listening addresses `own`.
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>, own: Vec<SocketAddr>) -> Self {
        Self { allow, deny, own }
    }

    /// Add the tokenizer's own listening addresses (loop prevention).
    pub fn add_own(&mut self, addrs: impl IntoIterator<Item = SocketAddr>) {
        self.own.extend(addrs);
    }

    /// May the proxy dial `addr`?
    pub fn check(&self, addr: SocketAddr) -> Result<(), Denied> {
        let ip = addr.ip();
        let forms = forms(ip);
        if self.own.iter().any(|own| is_own(*own, addr, &forms)) {
            return Err(Denied::Loop(addr));
        }
        if forms
            .iter()
            .any(|f| self.deny.iter().any(|n| n.contains(f)))
        {
            return Err(Denied::Range(ip));
        }
        if forms
            .iter()
            .any(|f| self.allow.iter().any(|n| n.contains(f)))
        {
            return Ok(());
        }
        if forms.iter().any(builtin_denied) {
            return Err(Denied::Range(ip));
        }
        Ok(())
    }
}

fn is_own(own: SocketAddr, addr: SocketAddr, forms: &[IpAddr]) -> bool {
    own.port() == addr.port() && forms.iter().any(|f| *f == own.ip().to_canonical())
}

/// The addresses a listener bound to `addr` answers on: the address itself, or every
/// interface address when it is unspecified (`0.0.0.0`, `::`).
pub fn listener_addrs(addr: SocketAddr) -> Vec<SocketAddr> {
    if !addr.ip().is_unspecified() {
        return vec![addr];
    }
    let mut out: Vec<SocketAddr> = if_addrs::get_if_addrs()
        .map(|ifs| {
            ifs.into_iter()
                .map(|i| SocketAddr::new(i.ip(), addr.port()))
                .collect()
        })
        .unwrap_or_default();
    out.push(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()));
    out.push(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()));
    out
}

/// The address itself plus any IPv4 address embedded in it.
fn forms(ip: IpAddr) -> Vec<IpAddr> {
    let mut out = vec![ip];
    if let IpAddr::V6(v6) = ip
        && let Some(v4) = embedded_v4(v6)
    {
        out.push(IpAddr::V4(v4));
    }
    out
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = v6.segments();
    let o = v6.octets();
    let last32 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match seg {
        // ::ffff:a.b.c.d (mapped)
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(last32),
        // ::ffff:0:a.b.c.d (IPv4-translated, RFC 2765)
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some(last32),
        // ::a.b.c.d (compatible; :: and ::1 are handled as IPv6)
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(last32),
        // 64:ff9b::a.b.c.d and 64:ff9b:1::/48 (NAT64)
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] | [0x64, 0xff9b, 1, ..] => Some(last32),
        // 2002:aabb:ccdd::/48 (6to4)
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

fn builtin_denied(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => BUILTIN_V4.iter().any(|(net, len)| in_v4(*v4, *net, *len)),
        IpAddr::V6(v6) => BUILTIN_V6.iter().any(|(net, len)| in_v6(*v6, *net, *len)),
    }
}

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn denied(g: &DestinationGuard, s: &str) -> bool {
        g.check(sa(s)).is_err()
    }

    #[test]
    fn builtin_ranges_are_denied() {
        let g = DestinationGuard::default();
        for a in [
            "127.0.0.1:443",
            "127.1.2.3:443",
            "10.1.2.3:443",
            "172.16.0.1:443",
            "172.31.255.255:443",
            "192.168.1.1:443",
            "169.254.169.254:80",
            "100.64.0.1:443",
            "0.0.0.0:443",
            "224.0.0.1:443",
            "255.255.255.255:443",
            "[::1]:443",
            "[::]:443",
            "[fe80::1]:443",
            "[fdaa::3]:443",
            "[fc00::1]:443",
            "[ff02::1]:443",
            "[::ffff:127.0.0.1]:443",
            "[::ffff:10.0.0.1]:443",
            "[::ffff:0:127.0.0.1]:443",
            "[::127.0.0.1]:443",
            "[64:ff9b::a9fe:a9fe]:443",
            "[2002:c0a8:0101::1]:443",
        ] {
            assert!(denied(&g, a), "{a} should be denied");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let g = DestinationGuard::default();
        for a in [
            "1.1.1.1:443",
            "172.32.0.1:443",
            "[2606:4700::1111]:443",
            "[::ffff:8.8.8.8]:443",
        ] {
            assert!(!denied(&g, a), "{a} should pass");
        }
    }

    #[test]
    fn allow_exempts_builtin_but_not_operator_denials_or_loops() {
        let g = DestinationGuard::new(
            vec!["127.0.0.0/8".parse().unwrap()],
            vec![
                "127.0.0.9/32".parse().unwrap(),
                "8.8.8.0/24".parse().unwrap(),
            ],
            vec![sa("127.0.0.1:8080")],
        );
        assert!(!denied(&g, "127.0.0.1:9443"));
        assert!(!denied(&g, "[::ffff:127.0.0.1]:9443"));
        assert!(denied(&g, "127.0.0.9:9443"));
        assert!(denied(&g, "8.8.8.8:443"));
        assert!(matches!(
            g.check(sa("127.0.0.1:8080")),
            Err(Denied::Loop(_))
        ));
        assert!(denied(&g, "[::ffff:127.0.0.1]:8080"));
    }

    #[test]
    fn unspecified_listener_covers_loopback_and_interfaces() {
        let own = listener_addrs(sa("0.0.0.0:8080"));
        assert!(own.contains(&sa("127.0.0.1:8080")));
        let g = DestinationGuard::new(vec!["0.0.0.0/0".parse().unwrap()], vec![], own);
        assert!(denied(&g, "127.0.0.1:8080"));
        assert!(!denied(&g, "127.0.0.1:8081"));
        assert!(!denied(&g, "93.184.216.34:8080"));
    }
}
