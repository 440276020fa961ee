//! Where a token derived from an exchange may be sent.

use super::Exchange;
use crate::policy::HostRules;
use crate::secret::Secret;

/// Where a derived token may be sent. A GitHub installation token: only the token URL's
/// host (`api.github.com`, or the Enterprise host), as in Go. An OAuth access token:
/// the parent's hosts when it has any; otherwise (the parent was only pinned to its
/// token URL's host) never "anywhere", but the token URL's site (`site`) and its
/// subdomains (`login.example.com` → `*.example.com`), or the host itself when it is an
/// IP address or has no registrable domain.
pub fn derived_hosts(kind: Exchange, secret: &Secret) -> HostRules {
    if kind == Exchange::OAuth && !secret.hosts.is_unrestricted() {
        return secret.hosts.clone();
    }
    // An exchange secret always names a token host (its default URL when unset).
    let host = secret.processor.exchange_host().unwrap_or_default();
    if kind == Exchange::GitHubApp {
        // As Go does: an installation token is only good at its API host.
        return HostRules {
            allowed_hosts: Some(vec![host]),
            allowed_host_pattern: None,
        };
    }
    let is_ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok();
    let site = if is_ip { None } else { site(&host) };
    let pattern = match site {
        Some(domain) => format!(
            r"^(?i)(?:[a-z0-9-]+\.)*{}(?::[0-9]+)?$",
            regex::escape(domain)
        ),
        None => format!(r"^(?i){}(?::[0-9]+)?$", regex::escape(&host)),
    };
    HostRules {
        allowed_hosts: None,
        // The pattern is built from an escaped host name: it always compiles.
        allowed_host_pattern: crate::policy::HostPattern::new(&pattern).ok(),
    }
}

/// Private-section suffixes of the Public Suffix List that one company uses for its own
/// API hosts only, where no tenant runs a server that sees requests: a token from
/// `oauth2.googleapis.com` is meant for `www.googleapis.com` and the other Google APIs.
const SINGLE_OPERATOR_SUFFIXES: &[&str] = &["googleapis.com"];

/// The site a derived token stays on: the registrable domain of `host` under the whole
/// Public Suffix List, its private section included — that section lists the names a
/// hosting company hands out to its customers (`fly.dev`, `herokuapp.com`,
/// `github.io`…), so `auth-myco.fly.dev` is a site of its own and `evil.fly.dev` is
/// another. Suffixes in [`SINGLE_OPERATOR_SUFFIXES`] count as registrable domains.
/// `None` when the host is itself a public suffix (or a single label such as
/// `localhost`).
pub(super) fn site(host: &str) -> Option<&str> {
    let host = host.trim_end_matches('.');
    let mut starts: Vec<usize> = host.match_indices('.').map(|(i, _)| i + 1).collect();
    starts.reverse();
    starts.push(0);
    // Candidates from the last label to the whole name: the first that is not a public
    // suffix is the registrable domain.
    starts.into_iter().map(|at| &host[at..]).find(|candidate| {
        let lower = candidate.to_ascii_lowercase();
        SINGLE_OPERATOR_SUFFIXES.contains(&lower.as_str())
            || psl::suffix(lower.as_bytes()).is_none_or(|s| s.as_bytes() != lower.as_bytes())
    })
}
