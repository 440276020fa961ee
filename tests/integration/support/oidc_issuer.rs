//! A local OIDC issuer over TLS: discovery (`/.well-known/openid-configuration`) and a
//! JWKS the test can rotate, slow down or break, counting every fetch and every request
//! as it arrives; and signing keys (RS256, ES256, EdDSA) to mint tokens shaped like
//! GitHub Actions' or Kubernetes'.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::ca::TestCa;

/// A signing key and its public JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    pub jwk: Value,
    /// The public key as PEM (RSA only): what an attacker would use as an HMAC secret.
    pub public_pem: Option<String>,
}

impl SigningKey {
    pub fn rs256(kid: &str) -> Self {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::EncodePublicKey;
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        let der = key.to_pkcs1_der().unwrap();
        let public = key.to_public_key();
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk: json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            }),
            public_pem: Some(
                public
                    .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
                    .unwrap(),
            ),
        }
    }

    pub fn es256(kid: &str) -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let point = key.public_key_raw();
        assert_eq!(point.len(), 65, "uncompressed P-256 point");
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(&key.serialize_der()),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..]),
            }),
            public_pem: None,
        }
    }

    pub fn eddsa(kid: &str) -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(&key.serialize_der()),
            jwk: json!({
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(key.public_key_raw()),
            }),
            public_pem: None,
        }
    }

    /// A token with these claims, signed with this key (header `kid` = this key's).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    /// The same, with the header's `kid` set to `kid`.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The issuer server; stops when dropped.
pub struct OidcIssuer {
    pub addr: SocketAddr,
    /// `https://NAME`: the `iss` of its tokens.
    pub url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    /// Requests received (discovery and JWKS), counted on arrival: before a stall, and
    /// while broken too.
    requests: Arc<AtomicUsize>,
    broken: Arc<AtomicBool>,
    /// Milliseconds every answer waits before it is sent (a slow issuer).
    stall_ms: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OidcIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OidcIssuer {
    /// Serve `https://name` (a certificate from `ca`) on 127.0.0.1:0 with `keys`.
    pub async fn start(ca: &TestCa, name: &str, keys: &[&SigningKey]) -> Self {
        super::init();
        let url = format!("https://{name}");
        let acceptor = TlsAcceptor::from(ca.server_config(&[name], &[b"http/1.1"]));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let jwks = Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let broken = Arc::new(AtomicBool::new(false));
        let stall_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let state = (jwks.clone(), fetches.clone(), broken.clone(), url.clone());
        let stall = stall_ms.clone();
        let arrived = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let state = state.clone();
                let stall = stall.clone();
                let arrived = arrived.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(move |req| {
                        arrived.fetch_add(1, Ordering::SeqCst);
                        let state = state.clone();
                        let ms = stall.load(Ordering::SeqCst);
                        async move {
                            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                            Ok::<_, std::convert::Infallible>(answer(&state, &req))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            url,
            keys: jwks,
            fetches,
            requests,
            broken,
            stall_ms,
            task,
        }
    }

    /// Make every answer wait this long from now on (zero: answer at once).
    pub fn set_stall(&self, stall: std::time::Duration) {
        self.stall_ms.store(
            u64::try_from(stall.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    /// `name=127.0.0.1:PORT` for `--upstream-resolve`.
    pub fn pin(&self) -> String {
        format!("{}={}", self.url.trim_start_matches("https://"), self.addr)
    }

    /// Publish these keys from now on (a rotation).
    pub fn set_keys(&self, keys: &[&SigningKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// Publish these JWKs as they are (junk keys included).
    pub fn set_jwks(&self, jwks: Vec<Value>) {
        *self.keys.lock().unwrap() = jwks;
    }

    /// Answer 500 to everything (`true`) or serve again.
    pub fn set_broken(&self, broken: bool) {
        self.broken.store(broken, Ordering::SeqCst);
    }

    /// JWKS fetches so far.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Requests received so far (discovery and JWKS), answered or not yet: a fetch that
    /// has begun, though the issuer is slow or broken.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

type State = (
    Arc<Mutex<Vec<Value>>>,
    Arc<AtomicUsize>,
    Arc<AtomicBool>,
    String,
);

fn answer(state: &State, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (keys, fetches, broken, url) = state;
    if broken.load(Ordering::SeqCst) {
        return reply(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "down"}));
    }
    match req.uri().path() {
        "/.well-known/openid-configuration" => reply(
            StatusCode::OK,
            json!({"issuer": url, "jwks_uri": format!("{url}/jwks")}),
        ),
        "/jwks" => {
            fetches.fetch_add(1, Ordering::SeqCst);
            reply(StatusCode::OK, json!({"keys": *keys.lock().unwrap()}))
        }
        _ => reply(StatusCode::NOT_FOUND, json!({})),
    }
}

fn reply(status: StatusCode, doc: Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(doc.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}
