//! Test support for the token-exchange processors: private keys of every supported kind
//! (generated once per test binary: RSA key generation is slow), JWT verification with
//! the public key (`jsonwebtoken`, and the `p521` crate for ES512, which `jsonwebtoken`
//! lacks), and running built steps over a request as the pipeline does.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::request::Parts;
use http_body_util::BodyExt;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rand_core::OsRng;
use rsa::pkcs1::EncodeRsaPrivateKey;
use serde_json::Value;

use super::{ProcessorConfig, Step};
use tokenizer_core::{Params, b64};

/// A private key as a secret holds it, and how to check what it signed.
pub struct TestKey {
    /// The JWS `alg` the key must produce.
    pub alg: &'static str,
    /// The private key, PEM text.
    pub pem: String,
    /// The public key: SPKI PEM for `jsonwebtoken`, or the P-521 point.
    public: Public,
}

enum Public {
    Pem(String),
    P521(p521::PublicKey),
}

impl TestKey {
    /// The base64 of the PEM, as the `private_key` field carries it.
    pub fn b64(&self) -> String {
        b64::encode(self.pem.as_bytes())
    }

    /// Verify `jwt` with the public key; return its header and claims. `exp` must be in
    /// the future; `aud` is left to the caller.
    pub fn verify(&self, jwt: &str) -> (Value, Value) {
        let (header, claims) = decode_parts(jwt);
        assert_eq!(header["alg"], self.alg, "{header}");
        assert_eq!(header["typ"], "JWT", "{header}");
        match &self.public {
            Public::Pem(pem) => {
                use jsonwebtoken::{Algorithm, DecodingKey, Validation};
                let (alg, key) = match self.alg {
                    "RS256" => (Algorithm::RS256, DecodingKey::from_rsa_pem(pem.as_bytes())),
                    "ES256" => (Algorithm::ES256, DecodingKey::from_ec_pem(pem.as_bytes())),
                    "ES384" => (Algorithm::ES384, DecodingKey::from_ec_pem(pem.as_bytes())),
                    "EdDSA" => (Algorithm::EdDSA, DecodingKey::from_ed_pem(pem.as_bytes())),
                    other => panic!("no verifier for {other}"),
                };
                let mut validation = Validation::new(alg);
                validation.validate_aud = false;
                validation.leeway = 0;
                let data = jsonwebtoken::decode::<Value>(jwt, &key.unwrap(), &validation)
                    .unwrap_or_else(|e| panic!("{} JWT does not verify: {e}", self.alg));
                assert_eq!(data.claims, claims);
            }
            Public::P521(public) => {
                use p521::ecdsa::signature::Verifier;
                let (signed, sig) = jwt.rsplit_once('.').unwrap();
                let sig = p521::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap())
                    .expect("ES512 signature is r||s, 132 bytes");
                p521::ecdsa::VerifyingKey::from_affine(*public.as_affine())
                    .unwrap()
                    .verify(signed.as_bytes(), &sig)
                    .expect("ES512 JWT verifies");
                let exp = claims["exp"].as_i64().expect("exp");
                assert!(exp > tokenizer_core::time::now_unix(), "expired: {claims}");
            }
        }
        (header, claims)
    }
}

/// Header and claims of a JWT, unverified.
pub fn decode_parts(jwt: &str) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWS compact serialization: {jwt}");
    let json = |s: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).expect("base64url, no padding"))
            .expect("JSON")
    };
    (json(parts[0]), json(parts[1]))
}

fn rsa_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut OsRng, 2048).expect("RSA keygen"))
}

fn rsa_public_pem() -> String {
    rsa::RsaPublicKey::from(rsa_key())
        .to_public_key_pem(LineEnding::LF)
        .unwrap()
}

/// RSA, PKCS#1 (`RSA PRIVATE KEY`).
pub fn rsa_pkcs1() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey {
        alg: "RS256",
        pem: rsa_key().to_pkcs1_pem(LineEnding::LF).unwrap().to_string(),
        public: Public::Pem(rsa_public_pem()),
    })
}

/// The same RSA key, PKCS#8 (`PRIVATE KEY`).
pub fn rsa_pkcs8() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey {
        alg: "RS256",
        pem: rsa_key().to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        public: Public::Pem(rsa_public_pem()),
    })
}

fn p256_key() -> &'static p256::SecretKey {
    static KEY: OnceLock<p256::SecretKey> = OnceLock::new();
    KEY.get_or_init(|| p256::SecretKey::random(&mut OsRng))
}

/// P-256, PKCS#8.
pub fn p256_pkcs8() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey {
        alg: "ES256",
        pem: p256_key().to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        public: Public::Pem(
            p256_key()
                .public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
        ),
    })
}

/// The same P-256 key, SEC1 (`EC PRIVATE KEY`).
pub fn p256_sec1() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey {
        alg: "ES256",
        pem: p256_key().to_sec1_pem(LineEnding::LF).unwrap().to_string(),
        public: Public::Pem(
            p256_key()
                .public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
        ),
    })
}

/// P-384, PKCS#8.
pub fn p384() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = p384::SecretKey::random(&mut OsRng);
        TestKey {
            alg: "ES384",
            pem: key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            public: Public::Pem(key.public_key().to_public_key_pem(LineEnding::LF).unwrap()),
        }
    })
}

/// P-521, PKCS#8.
pub fn p521() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = p521::SecretKey::random(&mut OsRng);
        TestKey {
            alg: "ES512",
            pem: key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            public: Public::P521(key.public_key()),
        }
    })
}

/// Ed25519, PKCS#8.
pub fn ed25519() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut OsRng, &mut seed);
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        TestKey {
            alg: "EdDSA",
            pem: key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            public: Public::Pem(
                key.verifying_key()
                    .to_public_key_pem(LineEnding::LF)
                    .unwrap(),
            ),
        }
    })
}

/// Every key kind a `jwt_processor` accepts.
pub fn all() -> [&'static TestKey; 7] {
    [
        rsa_pkcs1(),
        rsa_pkcs8(),
        p256_pkcs8(),
        p256_sec1(),
        p384(),
        p521(),
        ed25519(),
    ]
}

/// Params from `(key, value)` pairs.
pub fn params(pairs: &[(&str, &str)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A request head and body, as the pipeline holds them.
pub fn request(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &'static str,
) -> (Parts, Bytes) {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let (parts, ()) = builder.body(()).unwrap().into_parts();
    (parts, Bytes::from_static(body.as_bytes()))
}

/// Build `config` with `params` and run its steps over the request, as the pipeline does
/// (`processor::apply`); the resulting head and body.
pub async fn run(
    config: &ProcessorConfig,
    params: &Params,
    (mut parts, body): (Parts, Bytes),
) -> (Parts, Bytes) {
    let mut steps: Vec<Step> = Vec::new();
    config.build(params, &mut steps).expect("builds");
    let mut ctx = super::StepContext::new(1 << 20, tokenizer_http::body::Budget::new(1 << 30));
    let body = super::apply(
        &steps,
        &mut parts,
        tokenizer_http::body::full(body),
        &mut ctx,
    )
    .await
    .expect("steps run");
    let body = body.collect().await.expect("body").to_bytes();
    (parts, body)
}

/// The build error of `config`, as text.
pub fn build_error(config: &ProcessorConfig) -> String {
    let mut steps = Vec::new();
    match config.build(&Params::new(), &mut steps) {
        Ok(()) => panic!("{} built, expected an error", config.wire_key()),
        Err(e) => e.to_string(),
    }
}

/// `application/x-www-form-urlencoded` pairs, decoded, in order.
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A secret's JSON as far as its processor goes: what the processor tests round-trip
/// (the whole secret model lives in a crate above this one).
#[derive(Debug, PartialEq)]
pub struct WireSecret {
    pub processor: ProcessorConfig,
}

impl WireSecret {
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        serde_json::from_value(value)
            .map(|processor| Self { processor })
            .map_err(|e| e.to_string())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.processor).unwrap()
    }

    pub fn stripped_json(&self) -> String {
        serde_json::to_string(&self.processor.stripped()).unwrap()
    }
}
