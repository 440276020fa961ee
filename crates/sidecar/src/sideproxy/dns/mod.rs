//! The sandbox's DNS, answered by the sidecar (`DNS_ADDRESS`), so that names cannot
//! carry data out of a transparent sandbox.

pub mod answer;
pub mod names;
mod server;
mod tables;
mod upstream;

pub use server::DnsServer;

use std::net::SocketAddr;

use super::config::Passthrough;

/// What the DNS listener needs.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// Where it listens, UDP and TCP (`DNS_ADDRESS`).
    pub address: SocketAddr,
    /// The real resolvers allowed names are forwarded to (`DNS_SERVERS`, else
    /// resolv.conf's).
    pub servers: Vec<SocketAddr>,
    /// More names forwarded besides the passthrough hosts (`DNS_ALLOW`).
    pub allow: Passthrough,
    /// Names a client may ask per second (`DNS_RATE`).
    pub rate: u32,
}
