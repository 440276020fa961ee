//! Header hygiene between client and upstream: hop-by-hop headers (RFC 9110 §7.6.1),
//! everything named `Proxy-*`, and the operator's `FILTERED_HEADERS` never cross.

use http::header::{self, HeaderMap, HeaderName};

const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::EXPECT,
];

/// Strip hop-by-hop headers, those listed in `Connection`, and `Keep-Alive` /
/// `Proxy-*`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&listed) {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
}

/// Everything a request loses before it goes upstream.
pub fn sanitize_request(headers: &mut HeaderMap, filtered: &[HeaderName]) {
    strip_hop_by_hop(headers);
    for name in filtered {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_proxy_headers() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, X-Custom"),
            ("x-custom", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-tokenizer", "s"),
            ("proxy-authorization", "Bearer x"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("fly-src", "x"),
            ("authorization", "Bearer keep"),
        ] {
            h.append(k, v.parse().unwrap());
        }
        sanitize_request(&mut h, &[HeaderName::from_static("fly-src")]);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["authorization"]);
    }
}
