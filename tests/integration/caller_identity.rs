//! A caller's proven identity holds only while its proof is valid, and no made-up proof
//! costs anyone else: an OIDC token with a made-up `kid` fetches the issuer's keys at most
//! once per refresh interval and stalls nobody whose key is known, grows no cache, and a
//! time claim that is not a number is refused; a key listed after many others is found;
//! a client certificate stops identifying its holder when it expires, on a kept
//! connection and a resumed session too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::support::attack::REAL;
use crate::support::ca::TestCa;
use crate::support::oidc_issuer::{OidcIssuer, SigningKey, now};
use crate::support::{Env, Reply, poll_until};

// === OIDC ===

/// The proxy with `issuer` allowed (refresh interval 2 s), an admin listener.
async fn oidc_env(ca: TestCa, issuer: &OidcIssuer) -> Env {
    Env::builder()
        .ca(ca)
        .names(&["api.test"])
        .pins(&[&issuer.pin()])
        .flags(&[
            "--oidc-issuers",
            &issuer.url,
            "--oidc-refresh-interval",
            "2s",
        ])
        .admin()
        .start()
        .await
}

fn oidc_secret(issuer: &str) -> Value {
    json!({
        "inject_processor": {"token": REAL},
        "oidc_auth": {"issuer": issuer, "audience": "tokenizer", "claims": {"repository": "acme/app"}},
    })
}

fn oidc_claims(iss: &str, jti: &str) -> Value {
    let now = now();
    json!({"iss": iss, "aud": "tokenizer", "sub": "repo:acme/app", "repository": "acme/app",
           "jti": jti, "iat": now, "nbf": now - 5, "exp": now + 300})
}

async fn oidc_call(e: &Env, sealed: &str, jwt: &str) -> Reply {
    e.get(
        "/v1/x",
        &[sealed],
        &[("proxy-authorization", &format!("Bearer {jwt}"))],
    )
    .await
}

/// Second outside attack (issue 22), finding 8: a made-up `kid` waits for the issuer's
/// slow key fetch alone; a token whose key is known is verified at once meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_kid_stalls_nobody_whose_key_is_known() {
    let ca = TestCa::new();
    let key = SigningKey::es256("known-1");
    let issuer = OidcIssuer::start(&ca, "issuer.test", &[&key]).await;
    let e = Arc::new(oidc_env(ca, &issuer).await);
    let sealed = e.seal(&oidc_secret(&issuer.url));
    let first = key.sign(&oidc_claims(&issuer.url, "first"));
    assert_eq!(oidc_call(&e, &sealed, &first).await.status, 200);
    // The issuer turns slow, and made-up kids ask for keys until one may fetch them: once
    // the refresh interval (2 s) since the first fetch has passed. Until then each is
    // refused at once, without a fetch; the one that fetches stalls in it.
    issuer.set_stall(Duration::from_secs(4));
    let fetches = issuer.fetches();
    let asked = issuer.requests();
    let attacker = SigningKey::es256("attacker");
    let stalled = poll_until(Duration::from_secs(10), || async {
        let made_up = attacker.sign_as("no-such-kid", &oidc_claims(&issuer.url, "evil"));
        let task = {
            let (e, sealed) = (e.clone(), sealed.clone());
            tokio::spawn(async move { oidc_call(&e, &sealed, &made_up).await })
        };
        poll_until(Duration::from_secs(5), || async {
            task.is_finished() || issuer.requests() > asked
        })
        .await
        .expect("a made-up kid was neither refused at once nor fetching the keys");
        if issuer.requests() > asked {
            return Some(task);
        }
        let refused = task.await.unwrap();
        assert_eq!(refused.status, 407, "{}", refused.body);
        None
    })
    .await
    .expect("no made-up kid fetched the keys within 10 s of the first fetch");
    // A new token (not in the cache of verified tokens) with a known kid: at once.
    let started = Instant::now();
    let fresh = key.sign(&oidc_claims(&issuer.url, "fresh"));
    assert_eq!(oidc_call(&e, &sealed, &fresh).await.status, 200);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "waited {took:?} behind another's fetch"
    );
    let refused = stalled.await.unwrap();
    assert_eq!(refused.status, 407, "{}", refused.body);
    assert!(
        refused.body.contains("unknown signing key"),
        "{}",
        refused.body
    );
    assert!(
        issuer.fetches() > fetches,
        "the made-up kid fetched the keys"
    );
    // The fetch brought the same keys: the verified token stays cached (no new check).
    issuer.set_stall(Duration::ZERO);
    let hits =
        e.tk.metric("tokenizer_oidc_verified_cache_hits_total")
            .await;
    assert_eq!(oidc_call(&e, &sealed, &first).await.status, 200);
    let after =
        e.tk.metric("tokenizer_oidc_verified_cache_hits_total")
            .await;
    assert_eq!(
        after,
        hits + 1.0,
        "an identical key set invalidated the cache"
    );
    // More made-up kids fetch at most once per interval, and wait for nothing more.
    let fetches = issuer.fetches();
    let started = Instant::now();
    for i in 0..5 {
        let jwt = attacker.sign_as(&format!("kid-{i}"), &oidc_claims(&issuer.url, "x"));
        assert_eq!(oidc_call(&e, &sealed, &jwt).await.status, 407);
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        issuer.fetches() <= fetches + 1,
        "{} fetches",
        issuer.fetches() - fetches
    );
}

/// Second outside attack (issue 22), finding 12: time claims must be numbers, and a key
/// after a hundred others in the JWKS is found.
#[tokio::test(flavor = "multi_thread")]
async fn a_string_nbf_is_refused_and_a_key_after_many_is_found() {
    let ca = TestCa::new();
    let key = SigningKey::es256("real-after-junk");
    let issuer = OidcIssuer::start(&ca, "issuer.test", &[&key]).await;
    // 100 usable keys of no use to anyone, then the real one.
    let mut jwks: Vec<Value> = (0..100)
        .map(|i| SigningKey::es256(&format!("junk-{i}")).jwk)
        .collect();
    jwks.push(key.jwk.clone());
    issuer.set_jwks(jwks);
    let e = oidc_env(ca, &issuer).await;
    let sealed = e.seal(&oidc_secret(&issuer.url));
    let ok = key.sign(&oidc_claims(&issuer.url, "ok"));
    assert_eq!(oidc_call(&e, &sealed, &ok).await.status, 200);
    for (name, value, why) in [
        (
            "nbf",
            json!((now() + 3600).to_string()),
            "nbf is not a number",
        ),
        ("nbf", json!(now() as f64 + 3600.5), "not yet valid"),
        ("iat", json!("yesterday"), "iat is not a number"),
    ] {
        let mut claims = oidc_claims(&issuer.url, name);
        claims[name] = value;
        let got = oidc_call(&e, &sealed, &key.sign(&claims)).await;
        assert_eq!(got.status, 407, "{name}: {}", got.body);
        assert!(got.body.contains(why), "{name}: {}", got.body);
    }
}

/// Second outside attack (issue 22), the class (shared state a request can create, size
/// or name): the cache of verified OIDC tokens and the key fetches.
#[tokio::test(flavor = "multi_thread")]
async fn made_up_tokens_grow_no_oidc_cache_and_fetch_at_most_once_per_interval() {
    let ca = TestCa::new();
    let key = SigningKey::es256("k1");
    let issuer = OidcIssuer::start(&ca, "issuer.test", &[&key]).await;
    let e = oidc_env(ca, &issuer).await;
    let sealed = e.seal(&oidc_secret(&issuer.url));
    let attacker = SigningKey::es256("k1");
    let hits =
        e.tk.metric("tokenizer_oidc_verified_cache_hits_total")
            .await;
    for i in 0..30 {
        // The right kid, the wrong key: never verified, never cached.
        let forged = attacker.sign(&oidc_claims(&issuer.url, &format!("f{i}")));
        assert_eq!(oidc_call(&e, &sealed, &forged).await.status, 407);
    }
    assert!(issuer.fetches() <= 1, "{} fetches", issuer.fetches());
    assert_eq!(
        e.tk.metric("tokenizer_oidc_verified_cache_hits_total")
            .await,
        hits
    );
    let good = key.sign(&oidc_claims(&issuer.url, "good"));
    assert_eq!(oidc_call(&e, &sealed, &good).await.status, 200);
}

// === mTLS: an identity ends with its certificate ===

/// A rustls client presenting `cert` (PEM cert, key), trusting `ca`, keeping sessions
/// for resumption.
fn mtls_client(ca: &TestCa, cert: &(String, String)) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der.clone()).unwrap();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.0.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(cert.1.as_bytes()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(tokenizer::upstream::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

/// One connection to the TLS listener: whether it resumed a session, and a sender.
async fn mtls_connect(
    config: &Arc<rustls::ClientConfig>,
    listener: SocketAddr,
) -> Option<(bool, hyper::client::conn::http1::SendRequest<String>)> {
    let tcp = tokio::net::TcpStream::connect(listener).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .ok()?;
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some((resumed, sender))
}

/// `GET url` in absolute form with `sealed`; the status (None: the connection failed).
async fn mtls_get(
    sender: &mut hyper::client::conn::http1::SendRequest<String>,
    url: &str,
    sealed: &str,
) -> Option<u16> {
    let req = http::Request::get(url)
        .header(
            "host",
            url.trim_start_matches("http://").split('/').next().unwrap(),
        )
        .header("proxy-tokenizer", sealed)
        .body(String::new())
        .unwrap();
    sender.ready().await.ok()?;
    let resp = sender.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Some(status)
}

/// Second outside attack (issue 22), finding 9: an mTLS identity ends with its
/// certificate, on a connection kept open and on a resumed TLS session too.
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_client_certificate_is_refused_on_kept_and_resumed_connections() {
    let setup = crate::mtls::Setup::start().await;
    let (ca, client_ca) = (&setup.ca, &setup.client_ca);
    let listener = setup.server.tls.expect("the TLS listener");
    let agent = "spiffe://example.org/ns/agents/short-lived";
    let sealed =
        setup.seal(&json!({"inject_processor": {"token": REAL}, "mtls_auth": {"uris": [agent]}}));
    let url = format!("http://127.0.0.1:{}/v1/thing", setup.upstream.port());
    // A certificate that expires in 4 seconds.
    let expiry = SystemTime::now() + Duration::from_secs(4);
    let short = client_ca.client_leaf_pem_until(&[agent], &[], Some(expiry));
    let config = mtls_client(ca, &short);
    let (resumed, mut kept) = mtls_connect(&config, listener)
        .await
        .expect("a full handshake");
    assert!(!resumed);
    assert_eq!(mtls_get(&mut kept, &url, &sealed).await, Some(200));
    // A second connection resumes the session: served while the certificate is valid.
    let (resumed, mut second) = mtls_connect(&config, listener).await.expect("resumption");
    assert!(resumed, "the client did not resume");
    assert_eq!(mtls_get(&mut second, &url, &sealed).await, Some(200));
    // The kept connection is served until the certificate expires (its `notAfter` is in
    // whole seconds, so up to a second before `expiry`), and refused from then on.
    loop {
        match mtls_get(&mut kept, &url, &sealed).await {
            Some(200) => {}
            Some(407) => break,
            other => panic!("the kept connection got {other:?}"),
        }
        assert!(
            SystemTime::now() < expiry + Duration::from_secs(5),
            "the kept connection is still served 5 s after the certificate expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        SystemTime::now() + Duration::from_secs(2) > expiry,
        "refused more than 2 s before the certificate expired"
    );
    // Expired: the kept connection, a resumed one and a fresh handshake all fail.
    let (resumed, mut third) = mtls_connect(&config, listener).await.expect("resumption");
    assert!(resumed);
    assert_eq!(mtls_get(&mut third, &url, &sealed).await, Some(407));
    let fresh = mtls_client(ca, &short);
    match mtls_connect(&fresh, listener).await {
        None => {}
        Some((_, mut s)) => assert_ne!(mtls_get(&mut s, &url, &sealed).await, Some(200)),
    }
    crate::support::assert_no_panic("serve", &setup.server.stderr_text());
}
