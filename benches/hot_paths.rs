//! Micro-benchmarks of the per-request hot paths (`cargo bench --bench hot_paths`):
//!
//! - `open_secret`: base64 decode + crypto_box_seal open (X25519, XSalsa20-Poly1305) +
//!   JSON parse of one sealed `inject_processor` secret; and the unseal cache's hit path.
//! - `header_pipeline`: what the proxy does per `Proxy-Tokenizer` line before forwarding:
//!   parse the header, open the secret, authorize the caller's bearer token, check the
//!   host, build the inject step; plus building the reflection guard for the credential.
//! - `forge_leaf`: the sidecar forging a leaf certificate for an SNI name from its CA.
//!
//! The load benchmark (`bench/run`) measures the same paths end to end.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};

use tokenizer::auth::{AuthConfig, AuthInput, BearerAuth, Candidates};
use tokenizer::ca::CertificateAuthority;
use tokenizer::processor::Step;
use tokenizer::reflection::Guard;
use tokenizer::secret::{CacheLimits, OpenKey, OpenKeys, Secret, SecretCache, TokenizerHeader};

const API_KEY: &str = "sk-bench-0123456789abcdef0123456789abcdef01234567";
const CALLER: &str = "caller-password";

/// A fresh key pair and one sealed secret: inject `Authorization: Bearer <API_KEY>`,
/// bearer auth with `CALLER`, for api.test only.
fn sealed() -> (OpenKeys, String) {
    let key = OpenKey::generate();
    let sealed = seal_inject(&key, r#","dst":"Authorization","fmt":"Bearer %s""#);
    (OpenKeys::new(key, Vec::new()), sealed)
}

/// An `inject_processor` secret for `key` with `extra` inside the processor object.
fn seal_inject(key: &OpenKey, extra: &str) -> String {
    let BearerAuth { digest } = BearerAuth::for_token(CALLER);
    let json = format!(
        r#"{{"inject_processor":{{"token":"{API_KEY}"{extra}}},
            "bearer_auth":{{"digest":"{}"}},"allowed_hosts":["api.test"]}}"#,
        tokenizer::secret::b64::encode(digest.expose())
    );
    let secret = Secret::from_json(json.as_bytes()).expect("valid secret");
    secret.seal(&key.seal_key())
}

fn open_secret(c: &mut Criterion) {
    let (keys, sealed) = sealed();
    let mut group = c.benchmark_group("open_secret");
    group.bench_function("decrypt_and_parse", |b| {
        b.iter(|| Secret::open(&keys, black_box(&sealed)).expect("opens"))
    });
    let cache = SecretCache::new(
        keys.clone(),
        CacheLimits {
            entries: 1024,
            bytes: 64 << 20,
            guard: true,
        },
    );
    cache.open(&sealed).expect("opens");
    group.bench_function("cache_hit", |b| {
        b.iter(|| {
            let sealed = black_box(&sealed);
            cache.open(sealed).expect("opens")
        })
    });
    group.finish();
}

/// Parse, open, authorize, check the host and build the steps for one header line.
fn one_header(keys: &OpenKeys, value: &HeaderValue, headers: &HeaderMap) -> Vec<Step> {
    let header = TokenizerHeader::parse(value).expect("parses");
    let secret = Secret::open(keys, header.sealed).expect("opens");
    let candidates = Candidates::from_headers([headers]);
    let input = AuthInput {
        candidates: &candidates,
        flysrc: None,
        request: Some(("GET", "/v1/things")),
        now: 1_800_000_000,
        oidc: &tokenizer::auth::VerifiedTokens::default(),
        cert: None,
    };
    assert!(matches!(secret.auth, AuthConfig::Bearer(_)));
    secret
        .auth
        .authorize(&input, "api.test")
        .expect("authorized");
    secret.hosts.check("api.test").expect("host allowed");
    let mut steps = Vec::with_capacity(1);
    secret
        .processor
        .build(&header.params, &mut steps)
        .expect("builds");
    steps
}

fn header_pipeline(c: &mut Criterion) {
    let (keys, sealed) = sealed();
    let value = HeaderValue::from_str(&sealed).expect("header value");
    // A secret without dst/fmt, so the request's params choose them.
    let open_ended = seal_inject(keys.current(), "");
    let with_params = HeaderValue::from_str(&format!(
        r#"{open_ended}; {{"dst":"X-Api-Key","fmt":"%s"}}"#
    ))
    .expect("header value");
    let mut headers = HeaderMap::new();
    headers.insert("proxy-tokenizer", value.clone());
    headers.insert(
        "proxy-authorization",
        HeaderValue::from_str(&format!("Bearer {CALLER}")).expect("header value"),
    );
    let mut group = c.benchmark_group("header_pipeline");
    group.bench_function("parse_open_auth_inject", |b| {
        b.iter(|| one_header(&keys, black_box(&value), &headers))
    });
    group.bench_function("parse_open_auth_inject_with_params", |b| {
        b.iter(|| one_header(&keys, black_box(&with_params), &headers))
    });
    let secret = Secret::open(&keys, &sealed).expect("opens");
    let mut guarded = Vec::new();
    secret.processor.guard_values(&mut guarded);
    group.bench_function("reflection_guard_build", |b| {
        b.iter(|| {
            Guard::new(black_box(&guarded))
                .expect("guardable")
                .expect("something to guard")
        })
    });
    group.finish();
}

fn forge_leaf(c: &mut Criterion) {
    let ca = CertificateAuthority::generate(&["api.test".to_owned()]).expect("CA");
    let mut group = c.benchmark_group("forge_leaf");
    group.bench_function("p256_leaf", |b| {
        b.iter(|| ca.forge(black_box("api.test")).expect("forged"))
    });
    group.finish();
}

criterion_group!(benches, open_secret, header_pipeline, forge_leaf);
criterion_main!(benches);
