//! `tokenizer sideproxy firewall`: the nftables ruleset that makes the sandbox's network
//! namespace bypass-proof (transparent mode).
//!
//! For every UID but the sidecar's, in one table of its own (`inet tokenizer_sandbox`,
//! IPv4 and IPv6):
//! - TCP to ports 80 and 443 is redirected to the sidecar's `TRANSPARENT_PORT`, whatever
//!   address it was for;
//! - DNS (UDP and TCP 53) may reach only the resolvers of `/etc/resolv.conf` (or
//!   `DNS_SERVERS`) — or, when the sidecar answers DNS (`DNS_ADDRESS`), only the
//!   sidecar's DNS address: no other resolver, not even one on loopback;
//! - loopback anything else, `ALLOW_CIDRS` what the operator opens;
//! - every other new outbound connection or datagram is rejected (TCP with a reset,
//!   the rest, QUIC's UDP 443 included, with ICMP administratively-prohibited).
//!
//! The script creates the table, deletes it and defines it again: `nft -f` runs a file
//! as one transaction, so loading it twice, or over an older version, swaps the rules
//! atomically and never leaves a moment without them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use ipnet::IpNet;

/// The table the rules live in (the operator's own tables are never touched).
pub const TABLE: &str = "tokenizer_sandbox";

/// Ports whose TCP connections are redirected to the sidecar.
const REDIRECTED_PORTS: [u16; 2] = [80, 443];

/// What the ruleset is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firewall {
    /// The sidecar's transparent listener (`TRANSPARENT_PORT`).
    pub transparent_port: u16,
    /// The UID the rules do not apply to: the sidecar's own connections.
    pub sidecar_uid: u32,
    /// Resolvers DNS may reach.
    pub dns_servers: Vec<IpAddr>,
    /// The sidecar's DNS listener (`DNS_ADDRESS`): with it, the only place DNS may go.
    pub dns_address: Option<std::net::SocketAddr>,
    /// Destinations opened on purpose (`ALLOW_CIDRS`).
    pub allow: Vec<IpNet>,
}

/// `nft` could not load the ruleset.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// `nft` could not be started or fed the ruleset.
    #[error("cannot run `nft` (install nftables): {0}")]
    Spawn(std::io::Error),
    /// `nft` ran and rejected the ruleset.
    #[error("`nft -f -` failed ({status}): {stderr}")]
    Refused {
        /// `nft`'s exit status.
        status: String,
        /// What `nft` printed on stderr, trimmed.
        stderr: String,
    },
}

impl Firewall {
    /// The nftables script (`nft -f -`).
    pub fn ruleset(&self) -> String {
        let uid = self.sidecar_uid;
        let ports = REDIRECTED_PORTS.map(|p| p.to_string()).join(", ");
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# `tokenizer sideproxy firewall`: the sandbox's outbound traffic, for every UID\n\
             # but the sidecar's ({uid}). Loading it again replaces it atomically.\n\
             table inet {TABLE}\n\
             delete table inet {TABLE}\n\
             table inet {TABLE} {{\n\
             \tchain to_sidecar {{\n\
             \t\ttype nat hook output priority -100; policy accept;\n\
             \t\tmeta skuid {uid} return\n\
             {dns_targets}\
             \t\tfib daddr type local return\n\
             \t\tmeta l4proto tcp th dport {{ {ports} }} redirect to :{port}\n\
             \t}}\n\
             \n\
             \tchain egress {{\n\
             \t\ttype filter hook output priority 0; policy drop;\n\
             \t\tmeta skuid {uid} accept\n\
             {dns_only}\
             \t\toifname \"lo\" accept\n\
             \t\tfib daddr type local accept\n\
             \t\tct state established,related accept\n\
             \t\ticmpv6 type {{ nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, \
             mld-listener-report, mld2-listener-report }} accept",
            port = self.transparent_port,
            dns_only = self.dns_only(),
            dns_targets = self.dns_targets(&ports),
        );
        let (dns4, dns6): (Vec<IpAddr>, Vec<IpAddr>) =
            self.dns_servers.iter().partition(|a| a.is_ipv4());
        for (family, list) in [("ip", dns4), ("ip6", dns6)] {
            if !list.is_empty() {
                let _ = writeln!(
                    out,
                    "\t\tmeta l4proto {{ tcp, udp }} th dport 53 {family} daddr {{ {} }} accept",
                    join(&list)
                );
            }
        }
        let (allow4, allow6): (Vec<IpNet>, Vec<IpNet>) =
            self.allow.iter().partition(|n| matches!(n, IpNet::V4(_)));
        for (family, list) in [("ip", allow4), ("ip6", allow6)] {
            if !list.is_empty() {
                let _ = writeln!(out, "\t\t{family} daddr {{ {} }} accept", join(&list));
            }
        }
        out.push_str(
            "\t\tmeta l4proto tcp reject with tcp reset\n\
             \t\treject with icmpx admin-prohibited\n\
             \t}\n\
             }\n",
        );
        out
    }

    /// With `DNS_ADDRESS`: the sidecar answers targets with that address, so its TCP
    /// 80/443 go to the transparent listener (other local addresses are left alone).
    fn dns_targets(&self, ports: &str) -> String {
        let Some(addr) = self.dns_address else {
            return String::new();
        };
        let family = if addr.is_ipv4() { "ip" } else { "ip6" };
        format!(
            "\t\t{family} daddr {} meta l4proto tcp th dport {{ {ports} }} redirect to :{}\n",
            addr.ip(),
            self.transparent_port
        )
    }

    /// With `DNS_ADDRESS`: DNS (port 53, UDP and TCP) to its address and port only,
    /// placed before loopback is accepted, so no other local resolver answers either.
    fn dns_only(&self) -> String {
        let Some(addr) = self.dns_address else {
            return String::new();
        };
        let family = if addr.is_ipv4() { "ip" } else { "ip6" };
        let mut out = String::new();
        if addr.port() == 53 {
            let _ = writeln!(
                out,
                "\t\tmeta l4proto {{ tcp, udp }} th dport 53 {family} daddr {} accept",
                addr.ip()
            );
        }
        out.push_str("\t\tmeta l4proto tcp th dport 53 reject with tcp reset\n");
        out.push_str("\t\tmeta l4proto udp th dport 53 reject with icmpx admin-prohibited\n");
        out
    }

    /// Load the ruleset with `nft -f -`.
    pub fn apply(&self) -> Result<(), ApplyError> {
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(ApplyError::Spawn)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(self.ruleset().as_bytes())
                .map_err(ApplyError::Spawn)?;
        }
        let out = child.wait_with_output().map_err(ApplyError::Spawn)?;
        if out.status.success() {
            return Ok(());
        }
        Err(ApplyError::Refused {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// The `nameserver` addresses of a resolv.conf (an IPv6 zone, `%eth0`, is dropped: nft
/// matches the address alone).
pub fn resolvers(resolv_conf: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in resolv_conf.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = words.next() else { continue };
        let addr = addr.split('%').next().unwrap_or(addr);
        if let Ok(ip) = addr.parse::<IpAddr>()
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_are_read() {
        let conf = "# comment\nsearch example.internal\nnameserver 10.0.0.2\n\
                    nameserver fe80::1%eth0\nnameserver 10.0.0.2\nnameserver bogus\n\
                    options ndots:5\n";
        assert_eq!(
            resolvers(conf),
            vec![
                "10.0.0.2".parse::<IpAddr>().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn the_ruleset_names_every_family_and_exemption() {
        let fw = Firewall {
            transparent_port: 15001,
            sidecar_uid: 10001,
            dns_servers: vec!["10.0.0.2".parse().unwrap(), "fdaa::3".parse().unwrap()],
            dns_address: None,
            allow: vec![
                "192.0.2.0/24".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
        };
        let rules = fw.ruleset();
        for line in [
            "delete table inet tokenizer_sandbox",
            "meta skuid 10001 return",
            "meta skuid 10001 accept",
            "meta l4proto tcp th dport { 80, 443 } redirect to :15001",
            "meta l4proto { tcp, udp } th dport 53 ip daddr { 10.0.0.2 } accept",
            "meta l4proto { tcp, udp } th dport 53 ip6 daddr { fdaa::3 } accept",
            "ip daddr { 192.0.2.0/24 } accept",
            "ip6 daddr { 2001:db8::/32 } accept",
            "reject with icmpx admin-prohibited",
        ] {
            assert!(
                rules.lines().any(|l| l.trim() == line),
                "no {line:?} in\n{rules}"
            );
        }
        // Without resolvers or CIDRs, no empty sets (nft rejects `{ }`).
        let bare = Firewall {
            dns_servers: Vec::new(),
            allow: Vec::new(),
            ..fw.clone()
        };
        assert!(!bare.ruleset().contains("{  }"));
        assert!(!bare.ruleset().contains("dport 53"));
    }

    #[test]
    fn with_the_sidecars_dns_the_agent_reaches_no_other_resolver() {
        let fw = Firewall {
            transparent_port: 15001,
            sidecar_uid: 10001,
            dns_servers: Vec::new(),
            dns_address: Some("127.0.0.53:53".parse().unwrap()),
            allow: Vec::new(),
        };
        let rules = fw.ruleset();
        let lines: Vec<&str> = rules.lines().map(str::trim).collect();
        let at = |l: &str| {
            lines
                .iter()
                .position(|x| *x == l)
                .unwrap_or_else(|| panic!("no {l:?} in\n{rules}"))
        };
        let sidecar = at("meta skuid 10001 accept");
        let only = at("meta l4proto { tcp, udp } th dport 53 ip daddr 127.0.0.53 accept");
        let tcp = at("meta l4proto tcp th dport 53 reject with tcp reset");
        let udp = at("meta l4proto udp th dport 53 reject with icmpx admin-prohibited");
        let lo = at("oifname \"lo\" accept");
        assert!(
            sidecar < only && only < tcp && tcp < udp && udp < lo,
            "{rules}"
        );
    }
}
