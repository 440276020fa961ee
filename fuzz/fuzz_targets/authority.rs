//! Where a request goes: `classify` on CONNECT, absolute-form and origin-form requests
//! built from the input, the tunnel's Host pinning, `host:port` splitting, resolver pins,
//! the sidecar's passthrough rules and tokenizer URL, and path normalization and globs.
//!
//! Input: a mode byte, then text; the text's first line is the authority / URI / path,
//! the second line a Host, a glob or a host to check against it.

#![no_main]

use http::uri::Authority;
use http::{Method, Request, header};
use libfuzzer_sys::fuzz_target;
use tokenizer::policy::paths::{PathGlob, normalize};
use tokenizer::proxy::target::{Kind, Target, classify, same_authority};
use tokenizer::sideproxy::config::{Passthrough, ProxyUrl};
use tokenizer::upstream::resolve::{Resolver, split_host_port};

const HOSTNAMES: &[&str] = &["tokenizer.internal", "[::1]", "10.0.0.1"];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (first, second) = text.split_once('\n').unwrap_or((text, ""));
    match mode % 4 {
        0 => request(Method::CONNECT, first, None),
        1 => request(Method::GET, first, None),
        2 => request(Method::GET, "/", Some(first)),
        _ => request(Method::POST, first, Some(second)),
    }
    authority(first, second);
    paths(first, second);
    let _ = split_host_port(first, 443);
    let _ = Resolver::parse(first);
    if let Ok(rules) = Passthrough::parse(first)
        && let Some((host, port)) = split_host_port(second, 443)
    {
        let _ = rules.allows(host, port);
    }
    let _ = ProxyUrl::parse(first);
});

/// Classify a request whose target is `uri` (and Host `host`); check what it yields.
fn request(method: Method, uri: &str, host: Option<&str>) {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(host) = host {
        builder = builder.header(header::HOST, host);
    }
    let Ok(req) = builder.body(()) else {
        return;
    };
    let (parts, ()) = req.into_parts();
    let names: Vec<String> = HOSTNAMES.iter().map(|s| (*s).to_owned()).collect();
    for hostnames in [&[][..], &names[..]] {
        match classify(&parts, hostnames) {
            Ok(Kind::Connect(target)) => {
                assert_eq!(target.port, 443);
                check_target(&target);
            }
            Ok(Kind::Forward(target)) => check_target(&target),
            Err(_) => {}
        }
    }
}

/// An accepted target can be dialled: it has a Host header and an upstream URI.
fn check_target(target: &Target) {
    assert!(!target.host.is_empty());
    assert!(target.host_header().is_ok(), "{target:?}: no Host header");
    let uri = target
        .upstream_uri("/")
        .unwrap_or_else(|e| panic!("{target:?}: no upstream URI: {e}"));
    assert_eq!(uri.port_u16(), Some(target.port));
}

/// Tunnel Host pinning: an authority always names itself.
fn authority(first: &str, second: &str) {
    let Ok(authority) = first.parse::<Authority>() else {
        return;
    };
    let _ = same_authority(&authority, second);
    // A Host with userinfo is refused outright.
    if !authority.host().is_empty() && !authority.as_str().contains('@') {
        assert!(
            same_authority(&authority, authority.as_str()),
            "{authority} does not name itself"
        );
    }
    let _ = Target::from_authority(&authority);
}

/// Normalization is idempotent, and globs match what they are given without panicking.
fn paths(first: &str, second: &str) {
    if let Ok(normalized) = normalize(first) {
        assert!(normalized.starts_with('/'));
        assert_eq!(
            normalize(&normalized).as_deref(),
            Ok(normalized.as_str()),
            "normalizing {first:?} twice differs"
        );
        if let Ok(glob) = PathGlob::new(second) {
            let _ = glob.matches(&normalized);
        }
    }
    if let Ok(glob) = PathGlob::new(first) {
        let _ = glob.matches(second);
    }
}
