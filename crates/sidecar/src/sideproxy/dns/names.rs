//! Which names the sandbox may resolve, and how: a target (`TARGETS`) is answered by the
//! sidecar with its own address; a passthrough host (`PASSTHROUGH`) or a name of
//! `DNS_ALLOW` is forwarded to the real resolvers; every other name is refused and never
//! leaves the sidecar, so a name cannot carry data out (`<base32 of a file>.attacker.example`).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::super::config::Passthrough;

/// What to do with a question for a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A target: answered here with the sidecar's address.
    Local,
    /// A passthrough or allowed name: asked of the real resolvers.
    Forward,
    /// Anything else: REFUSED, never forwarded.
    Refuse,
}

/// The names the sandbox may resolve.
#[derive(Clone, Debug)]
pub struct NameRules {
    targets: BTreeSet<String>,
    passthrough: Passthrough,
    allow: Passthrough,
    /// The A answer for a target.
    pub v4: Option<Ipv4Addr>,
    /// The AAAA answer for a target.
    pub v6: Option<Ipv6Addr>,
}

impl NameRules {
    /// Rules from the target hosts, the passthrough and allow lists, and the addresses
    /// targets resolve to: the TLS listener's (`BIND_ADDRESSES`), or in transparent
    /// mode the DNS address, which the firewall redirects (an unspecified address
    /// stands for loopback; the first of each family is answered).
    pub fn new<'a>(
        targets: impl IntoIterator<Item = &'a String>,
        passthrough: Passthrough,
        allow: Passthrough,
        bind: &[IpAddr],
    ) -> Self {
        let v4 = bind.iter().find_map(|ip| match ip {
            IpAddr::V4(a) if a.is_unspecified() => Some(Ipv4Addr::LOCALHOST),
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        });
        let v6 = bind.iter().find_map(|ip| match ip {
            IpAddr::V6(a) if a.is_unspecified() => Some(Ipv6Addr::LOCALHOST),
            IpAddr::V6(a) => Some(*a),
            IpAddr::V4(_) => None,
        });
        Self {
            targets: targets
                .into_iter()
                .map(|t| t.to_ascii_lowercase())
                .collect(),
            passthrough,
            allow,
            v4: v4.or(bind.is_empty().then_some(Ipv4Addr::LOCALHOST)),
            v6,
        }
    }

    /// The verdict for `name` (as asked: any case, with or without the final dot).
    pub fn verdict(&self, name: &str) -> Verdict {
        let name = normalize(name);
        if name.is_empty() {
            return Verdict::Refuse;
        }
        if self.targets.contains(&name) {
            Verdict::Local
        } else if self.passthrough.names(&name) || self.allow.names(&name) {
            Verdict::Forward
        } else {
            Verdict::Refuse
        }
    }
}

/// Lower case, without the root's final dot.
pub fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> NameRules {
        let targets = ["api.openai.com".to_owned(), "api.github.com".to_owned()];
        NameRules::new(
            &targets,
            Passthrough::parse("pypi.org,*.pythonhosted.org:443").unwrap(),
            Passthrough::parse("internal.example,*.corp.example").unwrap(),
            &["0.0.0.0".parse().unwrap(), "::".parse().unwrap()],
        )
    }

    #[test]
    fn targets_are_local_allowed_names_forwarded_the_rest_refused() {
        let r = rules();
        for (name, want) in [
            ("api.openai.com", Verdict::Local),
            ("API.OpenAI.com.", Verdict::Local),
            ("pypi.org", Verdict::Forward),
            ("files.pythonhosted.org", Verdict::Forward),
            ("internal.example.", Verdict::Forward),
            ("a.b.corp.example", Verdict::Forward),
            // A subdomain of a target or of an exact passthrough host is another name.
            ("exfil.api.openai.com", Verdict::Refuse),
            ("x.pypi.org", Verdict::Refuse),
            ("pythonhosted.org", Verdict::Refuse),
            ("corp.example", Verdict::Refuse),
            ("mgzwc3lt.attacker.example", Verdict::Refuse),
            ("", Verdict::Refuse),
            (".", Verdict::Refuse),
            ("evilpypi.org", Verdict::Refuse),
        ] {
            assert_eq!(r.verdict(name), want, "{name}");
        }
    }

    #[test]
    fn target_addresses_come_from_the_bind_addresses() {
        let r = rules();
        assert_eq!(r.v4, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(r.v6, Some(Ipv6Addr::LOCALHOST));
        let only4 = NameRules::new(
            &[],
            Passthrough::default(),
            Passthrough::default(),
            &["10.0.0.5".parse().unwrap()],
        );
        assert_eq!(only4.v4, Some("10.0.0.5".parse().unwrap()));
        assert_eq!(only4.v6, None);
    }
}
