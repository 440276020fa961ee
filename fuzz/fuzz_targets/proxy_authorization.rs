//! `Proxy-Authorization` candidates: the input is one or more header lines separated by
//! `\n`. Parsing never panics, and a `Bearer x` / `FlyV1 x` line always yields a
//! candidate that `bearer_auth` for `x` accepts.

#![no_main]

use http::header::PROXY_AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tokenizer::auth::{BearerAuth, Candidates};

fuzz_target!(|data: &[u8]| {
    let mut map = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            map.append(PROXY_AUTHORIZATION, value);
        }
    }
    // A second map, as the pipeline passes the CONNECT's headers and the request's.
    let empty = HeaderMap::new();
    let candidates = Candidates::from_headers([&map, &empty]);
    assert_eq!(candidates.digests().count(), candidates.values().count());

    let _ = BearerAuth::for_token("trustno1").authorize(&candidates);
    for value in map.get_all(PROXY_AUTHORIZATION) {
        let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
            continue;
        };
        let Some((scheme, token)) = text.split_once(' ') else {
            continue;
        };
        if scheme == "Bearer" || scheme == "FlyV1" {
            assert!(
                BearerAuth::for_token(token).authorize(&candidates).is_ok(),
                "the candidate of {text:?} is not accepted"
            );
        }
    }
});
