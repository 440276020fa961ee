//! Macaroon decoding: the `fm2_` text form, the raw msgpack form, caveat sets, and
//! `macaroon_auth` over candidates built from the input. Decoded tokens re-encode to
//! themselves; caveats decoded from the input are minted into a genuine token so their
//! checks (patterns included) run too.

#![no_main]

use http::header::PROXY_AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tokenizer::auth::Candidates;
use tokenizer::auth::macaroon::{self, CaveatSet, Macaroon, RequestFacts, Token};

/// The fixed root key the seeds were minted with (`tokenizer macaroon mint`).
const KEY: &[u8] = b"fuzzing-macaroon-root-key-32-byt";
const NOW: i64 = 1_767_225_600;
const FACTS: RequestFacts<'static> = RequestFacts {
    method: "GET",
    path: "/v1/models",
    host: "api.test",
};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        text_forms(text);
    }
    if let Ok(m) = Macaroon::from_bytes(data) {
        round_trip(&m);
    }
    if let Ok(set) = CaveatSet::from_msgpack(data) {
        caveats(set);
    }
    if let Ok(set) = serde_json::from_slice::<CaveatSet>(data) {
        caveats(set);
    }
});

/// `Macaroon::decode`, bundles, and `authorize` with the input as a header line.
fn text_forms(text: &str) {
    if let Ok(m) = Macaroon::decode(text) {
        round_trip(&m);
        assert_eq!(Macaroon::decode(&m.encode()).as_ref(), Ok(&m));
        assert_eq!(Macaroon::decode(&m.to_header()).as_ref(), Ok(&m));
    }
    if let Ok(tokens) = macaroon::parse_tokens(text) {
        // Parts that are not macaroons are kept verbatim, so only a bundle of macaroons
        // is sure to read back the same (and an empty one is just the scheme).
        let joined = macaroon::to_header(&tokens);
        if !tokens.is_empty() && tokens.iter().all(|t| matches!(t, Token::Macaroon(_))) {
            let again = macaroon::parse_tokens(&joined).expect("re-joined bundle parses");
            assert_eq!(again.len(), tokens.len(), "{joined:?}");
        }
    }
    let Ok(value) = HeaderValue::from_str(text) else {
        return;
    };
    let mut map = HeaderMap::new();
    map.append(PROXY_AUTHORIZATION, value);
    let candidates = Candidates::from_headers([&map]);
    let _ = macaroon::authorize(KEY, &candidates, &FACTS, NOW);
}

fn round_trip(m: &Macaroon) {
    let bytes = m.to_bytes();
    let again = Macaroon::from_bytes(&bytes).expect("re-encoded macaroon decodes");
    assert_eq!(&again, m);
    let _ = format!("{m:?}");
    if let Ok(trusted) = m.verify(KEY) {
        let _ = trusted.check(&FACTS, NOW);
    }
    let _ = serde_json::to_string(m.unverified_caveats());
    let mut attenuated = m.clone();
    if attenuated.attenuate(Vec::new()).is_ok() {
        assert_eq!(&attenuated, m, "adding no caveats changed the token");
    }
}

/// A caveat set: msgpack and JSON round trips, then a genuine token carrying it.
fn caveats(set: CaveatSet) {
    let packed = set.to_msgpack();
    let again = CaveatSet::from_msgpack(&packed).expect("re-encoded caveats decode");
    assert_eq!(again, set);
    let json = serde_json::to_string(&set).expect("caveats serialize");
    if let Ok(from_json) = serde_json::from_str::<CaveatSet>(&json) {
        // Same caveats; the bytes may differ (msgpack allows several encodings).
        assert!(from_json.iter().eq(set.iter()), "{json}");
    }
    let _ = set.check(&FACTS, NOW);

    let token = macaroon::mint(KEY, set.iter().cloned().collect());
    let header = token.to_header();
    let Ok(value) = HeaderValue::from_str(&header) else {
        panic!("a minted token is not a header value");
    };
    let mut map = HeaderMap::new();
    map.append(PROXY_AUTHORIZATION, value);
    let candidates = Candidates::from_headers([&map]);
    let verdict = macaroon::authorize(KEY, &candidates, &FACTS, NOW);
    let direct = token.verify(KEY).expect("a minted token verifies");
    assert_eq!(verdict.is_ok(), direct.check(&FACTS, NOW).is_ok());
}
