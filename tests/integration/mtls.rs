//! `mtls_auth` (issue 18): the real binary with a TLS listener that asks for client
//! certificates (`LISTEN_TLS_ADDRESS`, `TLS_CERT_FILE`, `TLS_KEY_FILE`, `CLIENT_CA_FILE`),
//! and curl as an HTTPS-proxy client presenting SPIFFE-style certificates.

use std::path::Path;

use serde_json::json;
use tokenizer::secret::{OpenKey, Secret};

use crate::support::admin::Admin;
use crate::support::binary::Server;
use crate::support::ca::TestCa;
use crate::support::curl;
use crate::support::upstream::{Echo, Upstream};

const TOKEN: &str = "mtls-injected-credential-3b8e";
const AGENT: &str = "spiffe://example.org/ns/agents/a1";

pub(crate) struct Setup {
    _dir: tempfile::TempDir,
    pub(crate) server: Server,
    pub(crate) upstream: Upstream,
    open: OpenKey,
    /// The proxy's and the upstream's CA.
    pub(crate) ca: TestCa,
    /// The CA client certificates chain to.
    pub(crate) client_ca: TestCa,
    dir: std::path::PathBuf,
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

impl Setup {
    pub(crate) async fn start() -> Self {
        let ca = TestCa::new();
        let client_ca = TestCa::new();
        let upstream = Upstream::start(&ca, &["127.0.0.1"]).await;
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = ca.leaf_pem(&["127.0.0.1"]);
        let cert_file = write(dir.path(), "server.pem", &cert);
        let key_file = write(dir.path(), "server.key", &key);
        let open = OpenKey::generate();
        let server = Server::start(
            &open.to_hex(),
            &[
                "--upstream-ca-file",
                &ca.pem_file(),
                "--upstream-allow-cidrs",
                "127.0.0.0/8",
                "--listen-tls-address",
                "127.0.0.1:0",
                "--tls-cert-file",
                &cert_file,
                "--tls-key-file",
                &key_file,
                "--client-ca-file",
                &client_ca.pem_file(),
                "--admin-address",
                "127.0.0.1:0",
            ],
            &[],
        );
        Self {
            dir: dir.path().to_owned(),
            _dir: dir,
            server,
            upstream,
            open,
            ca,
            client_ca,
        }
    }

    pub(crate) fn seal(&self, secret: &serde_json::Value) -> String {
        Secret::from_json(secret.to_string().as_bytes())
            .unwrap()
            .seal(&self.open.seal_key())
    }

    /// A client certificate from `ca` with these SANs, as (cert file, key file).
    fn client_cert(
        &self,
        ca: &TestCa,
        name: &str,
        uris: &[&str],
        dns: &[&str],
    ) -> (String, String) {
        let (cert, key) = ca.client_leaf_pem(uris, dns);
        (
            write(&self.dir, &format!("{name}.pem"), &cert),
            write(&self.dir, &format!("{name}.key"), &key),
        )
    }

    /// curl through the TLS listener (as an HTTPS proxy), with `cert` if given; (ok,
    /// status line or curl's error, body).
    async fn call(&self, sealed: &str, cert: Option<&(String, String)>) -> (bool, String) {
        let tls = self.server.tls.expect("the TLS listener");
        let proxy = format!("https://{tls}");
        let ca = self.ca.pem_file();
        let url = format!("http://127.0.0.1:{}/v1/thing", self.upstream.port());
        let header = format!("Proxy-Tokenizer: {sealed}");
        let mut args = vec![
            "--proxy",
            &proxy,
            "--proxy-cacert",
            &ca,
            "-H",
            &header,
            "-w",
            "\n%{http_code}",
        ];
        if let Some((c, k)) = cert {
            args.extend(["--proxy-cert", c, "--proxy-key", k]);
        }
        args.push(&url);
        let (ok, out, err) = curl(&args).await;
        (ok, if ok { out } else { err })
    }
}

/// The status code curl printed last, and the body before it.
fn split(out: &str) -> (u16, &str) {
    let (body, code) = out.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spiffe_certificate_opens_its_secret_and_nothing_else_does() {
    let s = Setup::start().await;
    let sealed = s.seal(&json!({
        "inject_processor": {"token": TOKEN},
        "mtls_auth": {"uris": ["spiffe://example.org/ns/agents/*"]},
    }));
    let agent = s.client_cert(&s.client_ca, "agent", &[AGENT], &[]);
    let (ok, out) = s.call(&sealed, Some(&agent)).await;
    assert!(ok, "{out}");
    let (status, body) = split(&out);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        Echo::parse(body).header("authorization").unwrap(),
        format!("Bearer {TOKEN}")
    );
    let seen = s.upstream.received().len();

    // Another workload of the same CA.
    let other = s.client_cert(
        &s.client_ca,
        "other",
        &["spiffe://example.org/ns/other/a1"],
        &[],
    );
    let (ok, out) = s.call(&sealed, Some(&other)).await;
    assert!(ok, "{out}");
    let (status, body) = split(&out);
    assert_eq!(status, 407, "{body}");
    assert!(
        body.contains("spiffe://example.org/ns/other/a1 not allowed"),
        "{body}"
    );
    // Deeper under the allowed prefix: `*` is one segment.
    let deeper = s.client_cert(
        &s.client_ca,
        "deeper",
        &["spiffe://example.org/ns/agents/a1/sub"],
        &[],
    );
    assert_eq!(split(&s.call(&sealed, Some(&deeper)).await.1).0, 407);
    // The right SPIFFE ID from another CA: the handshake fails, nothing is sent.
    let forged = s.client_cert(&s.ca, "forged", &[AGENT], &[]);
    let (ok, err) = s.call(&sealed, Some(&forged)).await;
    assert!(!ok, "a certificate from another CA was accepted: {err}");
    // No certificate: the listener lets the caller in, the secret does not.
    let (ok, out) = s.call(&sealed, None).await;
    assert!(ok, "{out}");
    let (status, body) = split(&out);
    assert_eq!(status, 407, "{body}");
    assert!(body.contains("no verified client certificate"), "{body}");
    // The plain-HTTP listener can never satisfy mtls_auth.
    let (ok, out, _) = curl(&[
        "--proxy",
        &s.server.proxy_url(),
        "-H",
        &format!("Proxy-Tokenizer: {sealed}"),
        "-w",
        "\n%{http_code}",
        &format!("http://127.0.0.1:{}/v1/thing", s.upstream.port()),
    ])
    .await;
    assert!(ok);
    assert_eq!(split(&out).0, 407, "{out}");
    assert_eq!(
        s.upstream.received().len(),
        seen,
        "a refused request went upstream"
    );

    // The audit line names the certificate.
    let admin = Admin::new(s.server.admin.unwrap());
    let entries = admin.audit("status=200", 1).await;
    assert_eq!(entries[0]["identity"], format!("mtls {AGENT}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dns_name_and_other_auth_kinds_over_tls() {
    let s = Setup::start().await;
    let by_dns = s.seal(&json!({
        "inject_processor": {"token": TOKEN},
        "mtls_auth": {"dns": ["worker.internal"]},
    }));
    let worker = s.client_cert(&s.client_ca, "worker", &[], &["Worker.Internal"]);
    let (ok, out) = s.call(&by_dns, Some(&worker)).await;
    assert!(ok, "{out}");
    assert_eq!(split(&out).0, 200, "{out}");
    // A secret of another kind works over the TLS listener without a certificate.
    let open = s.seal(&json!({"inject_processor": {"token": TOKEN}, "no_auth": {}}));
    let (ok, out) = s.call(&open, None).await;
    assert!(ok, "{out}");
    assert_eq!(split(&out).0, 200, "{out}");
}

#[test]
fn the_tls_listener_needs_its_files() {
    let hex = OpenKey::generate().to_hex().to_string();
    for (args, want) in [
        (vec!["--listen-tls-address", "127.0.0.1:0"], "TLS_CERT_FILE"),
        (
            vec!["--client-ca-file", "/dev/null"],
            "needs LISTEN_TLS_ADDRESS",
        ),
        (
            vec![
                "--listen-tls-address",
                "127.0.0.1:0",
                "--tls-cert-file",
                "/nonexistent.pem",
                "--tls-key-file",
                "/nonexistent.key",
            ],
            "TLS_CERT_FILE /nonexistent.pem",
        ),
    ] {
        let mut all = vec!["serve", "--open-key", &hex];
        all.extend(args);
        let out = crate::support::binary::run(&all);
        assert_eq!(out.code(), Some(2), "{all:?}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{all:?}: {}", out.stderr);
    }
}

#[test]
fn seal_flags_make_mtls_auth() {
    let hex = OpenKey::generate().to_hex().to_string();
    let out = crate::support::binary::run(&[
        "seal",
        "--open-key",
        &hex,
        "--host",
        "api.test",
        "--mtls-uri",
        "spiffe://example.org/ns/agents/*",
        "--mtls-dns",
        "worker.internal",
        "credential-123",
    ])
    .ok();
    let doc = crate::support::binary::unseal(&hex, out.stdout.trim(), false);
    assert_eq!(
        doc["mtls_auth"],
        json!({"uris": ["spiffe://example.org/ns/agents/*"], "dns": ["worker.internal"]})
    );
}
