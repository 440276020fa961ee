//! `Proxy-Tokenizer: <sealed>[; <params>]`: the header parser, opening the sealed part
//! with a fixed key, and building the opened secret's processors with the params.
//!
//! The seeds hold secrets sealed to [`OPEN_KEY`]'s seal key, so mutating the params part
//! reaches the processors' `fmt`/`dst`/`placeholder` handling.

#![no_main]

use std::sync::OnceLock;

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use tokenizer::secret::{OpenKey, OpenKeys, Secret, TokenizerHeader, sealed_digest};

/// The Go test vector's key (seal key `a29dcbaa…8f67`); the seeds are sealed to it.
const OPEN_KEY: &str = "0d88a36d5c41d5c3d97b929fdebf0bea57e5fb4616da88121ba972431a161cab";

fn keys() -> &'static OpenKeys {
    static KEYS: OnceLock<OpenKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = OpenKey::from_hex(OPEN_KEY).expect("the fixed key is valid hex");
        OpenKeys::new(key, vec![OpenKey::generate()])
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let Ok(header) = TokenizerHeader::parse(&value) else {
        return;
    };
    assert!(!header.sealed.is_empty());
    assert_eq!(header.sealed, header.sealed.trim());
    let _ = sealed_digest(header.sealed);
    let Ok(secret) = Secret::open(keys(), header.sealed) else {
        return;
    };
    let mut steps = Vec::new();
    let _ = secret.processor.build(&header.params, &mut steps);
    let _ = secret.stripped_json();
});
