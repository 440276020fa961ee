//! The host state the test must leave exactly as it found it.

use sha2::{Digest, Sha256};

use crate::netns;

/// What the test must leave exactly as it found it on the host.
#[derive(Debug, PartialEq)]
pub struct HostState {
    hosts: String,
    ca_bundle: String,
    ssl_certs: Vec<String>,
    profile_d: Vec<String>,
    links: Vec<String>,
    routes: String,
    /// The host's nftables ruleset (empty without nft).
    firewall: String,
    etc_netns: bool,
}

impl HostState {
    /// Did `/etc/netns` exist?
    pub fn has_etc_netns(&self) -> bool {
        self.etc_netns
    }

    pub fn capture() -> Self {
        let digest = |p: &str| {
            std::fs::read(p)
                .map(|b| hex::encode(Sha256::digest(b)))
                .unwrap_or_else(|e| format!("unreadable: {e}"))
        };
        let names = |p: &str| {
            let mut v: Vec<String> = std::fs::read_dir(p)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        let links = netns::ip(&["-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_owned())
            .collect();
        // Route lifetimes count down: drop them.
        let mut routes = String::new();
        for family in ["-4", "-6"] {
            for line in netns::try_ip(&[family, "route", "show", "table", "all"])
                .unwrap_or_default()
                .lines()
            {
                let kept: Vec<&str> = line
                    .split_whitespace()
                    .scan(false, |skip, w| {
                        let out = if *skip { Some("") } else { Some(w) };
                        *skip = w == "expires";
                        out
                    })
                    .filter(|w| !w.is_empty() && *w != "expires")
                    .collect();
                routes.push_str(&kept.join(" "));
                routes.push('\n');
            }
        }
        let firewall = std::process::Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        Self {
            firewall,
            hosts: std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
            ca_bundle: digest("/etc/ssl/certs/ca-certificates.crt"),
            ssl_certs: names("/etc/ssl/certs"),
            profile_d: names("/etc/profile.d"),
            links,
            routes,
            etc_netns: std::path::Path::new("/etc/netns").exists(),
        }
    }
}
