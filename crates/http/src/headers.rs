//! Header hygiene between a client and the next hop: hop-by-hop headers (RFC 9110
//! §7.6.1), everything named `Proxy-*`, and the operator's `FILTERED_HEADERS` never
//! cross. A protocol upgrade (WebSocket) keeps `Connection: upgrade` and `Upgrade`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::EXPECT,
];

/// Is this an HTTP/1.1 upgrade request or response (`Connection: upgrade` plus
/// `Upgrade`)?
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Is the request's framing one the proxy forwards faithfully: no `Transfer-Encoding`,
/// or only `chunked`? hyper undoes chunking alone, so a `gzip, chunked` body would go
/// upstream as a plain body still gzipped, with its coding stripped.
pub fn plain_or_chunked(headers: &HeaderMap) -> bool {
    headers.get_all(header::TRANSFER_ENCODING).iter().all(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .all(|t| t.trim().eq_ignore_ascii_case("chunked"))
        })
    })
}

/// Strip hop-by-hop headers, those listed in `Connection`, `Keep-Alive` and `Proxy-*`.
/// With `keep_upgrade`, `Upgrade` survives and `Connection: upgrade` is restored.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let upgrade = keep_upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    // One pass over the names finds what goes (most messages carry few or none of
    // these), instead of a hashed removal per name that could be there.
    let mut doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            HOP_BY_HOP.contains(k) || k.as_str() == "keep-alive" || k.as_str().starts_with("proxy-")
        })
        .cloned()
        .collect();
    doomed.extend(
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok()),
    );
    for name in doomed {
        headers.remove(name);
    }
    if let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
}

/// Everything a request loses before it goes upstream.
pub fn sanitize_request(headers: &mut HeaderMap, filtered: &[HeaderName], keep_upgrade: bool) {
    strip_hop_by_hop(headers, keep_upgrade);
    for name in filtered {
        headers.remove(name);
    }
}

/// Does the message declare a content coding other than `identity` (in any of its
/// `Content-Encoding` lines, comma lists included; a value that is not text counts as
/// one)? A body with one cannot be read as it stands.
pub fn has_content_coding(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .any(|v| {
            v.to_str().map_or(true, |v| {
                v.split(',')
                    .map(str::trim)
                    .any(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"))
            })
        })
}

/// The declared body length (`Content-Length`), if it is one number.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_chunked_transfer_coding_passes() {
        assert!(plain_or_chunked(&map(&[])));
        assert!(plain_or_chunked(&map(&[("transfer-encoding", "chunked")])));
        assert!(plain_or_chunked(&map(&[("transfer-encoding", "Chunked")])));
        assert!(!plain_or_chunked(&map(&[(
            "transfer-encoding",
            "gzip, chunked"
        )])));
        assert!(!plain_or_chunked(&map(&[
            ("transfer-encoding", "gzip"),
            ("transfer-encoding", "chunked")
        ])));
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn strips_hop_by_hop_and_proxy_headers() {
        let mut h = map(&[
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
        ]);
        sanitize_request(&mut h, &[HeaderName::from_static("fly-src")], false);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["authorization"]);
    }

    #[test]
    fn upgrades_keep_their_two_headers() {
        let mut h = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ]);
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["sec-websocket-key"], "k");
        let mut plain = map(&[("connection", "upgrade"), ("upgrade", "websocket")]);
        strip_hop_by_hop(&mut plain, false);
        assert!(plain.is_empty());
        assert!(!is_upgrade(&map(&[("upgrade", "websocket")])));
    }
}
