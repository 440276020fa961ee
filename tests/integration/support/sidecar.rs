//! The real sidecar, started in-process on 127.0.0.1 with ephemeral ports.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ::tokenizer::cli::SideproxyArgs;
use ::tokenizer::sideproxy::Sidecar;
use clap::Parser;
use serde_json::json;
use tokio::sync::oneshot;

use super::env::Env;
use super::{inject, with};

/// The credential [`SideProxy::in_front_of`] has injected for `api.test`.
pub const REAL_KEY: &str = "real-key";
/// The caller password that credential's secret is bound to, which the sidecar sends.
pub const SIDECAR_AUTH: &str = "proxy-pw";

/// Parses `sideproxy` flags the way the CLI does.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: SideproxyArgs,
}

/// A running sidecar; stops when dropped.
pub struct SideProxy {
    /// The TLS listener.
    pub addr: SocketAddr,
    /// The HTTPS_PROXY listener, when enabled.
    pub proxy_addr: Option<SocketAddr>,
    /// The admin listener, when enabled.
    pub admin_addr: Option<SocketAddr>,
    /// The DNS listener (`--dns-address`), UDP and TCP.
    pub dns_addr: Option<SocketAddr>,
    pub ca_pem: String,
    pub ca_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
    _stop: oneshot::Sender<()>,
}

impl Drop for SideProxy {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            super::assert_no_proxy_panic();
        }
    }
}

impl SideProxy {
    /// `flags` are `sideproxy` flags; `env` holds the variables TARGETS names.
    /// Listens on 127.0.0.1, TLS on an ephemeral port, with a temporary CA_DIR unless
    /// `--ca-dir` is given.
    pub async fn start(flags: &[&str], env: &[(&str, &str)]) -> Self {
        super::init();
        let mut argv: Vec<String> = vec![
            "sideproxy".into(),
            "--port".into(),
            "0".into(),
            "--bind-addresses".into(),
            "127.0.0.1".into(),
        ];
        let dir = if flags.contains(&"--ca-dir") {
            None
        } else {
            let d = tempfile::tempdir().unwrap();
            argv.extend(["--ca-dir".into(), d.path().display().to_string()]);
            Some(d)
        };
        argv.extend(flags.iter().map(|s| (*s).to_owned()));
        let vars: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let config = Cli::try_parse_from(argv)
            .expect("sideproxy flags")
            .args
            .into_config(&|name| vars.get(name).cloned())
            .expect("sideproxy config");
        let ca_dir = config.ca_dir.clone();
        let bound = Sidecar::bind(config).await.expect("sidecar binds");
        let addr = bound.tls_addrs()[0];
        let proxy_addr = bound.proxy_addr();
        let admin_addr = bound.admin_addr();
        let dns_addr = bound.dns_addr();
        let ca_pem = bound.ca_pem();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(bound.run(Box::pin(async {
            let _ = stopped.await;
        })));
        Self {
            addr,
            proxy_addr,
            admin_addr,
            dns_addr,
            ca_pem,
            ca_dir,
            _dir: dir,
            _stop: stop,
        }
    }

    /// A sidecar in front of `env`'s proxy: its only target is `api.test`, with a secret
    /// that injects [`REAL_KEY`] there for callers holding [`SIDECAR_AUTH`] (which the
    /// sidecar sends); an HTTPS_PROXY listener; `pass.test` spliced through, untouched,
    /// to `env`'s upstream. `extra` are more flags.
    pub async fn in_front_of(env: &Env, extra: &[&str]) -> Self {
        let sealed = env.seal(&with(
            inject(REAL_KEY, SIDECAR_AUTH),
            json!({"allowed_hosts": ["api.test"]}),
        ));
        let proxy = env.tk.proxy_url();
        let pass = env.upstream.pin(&["pass.test"]);
        let mut flags = vec![
            "--targets",
            "api.test=API_SEALED",
            "--proxy",
            &proxy,
            "--tokenizer-auth",
            SIDECAR_AUTH,
            "--https-proxy-address",
            "127.0.0.1:0",
            "--passthrough",
            "pass.test",
            "--upstream-resolve",
            &pass,
            "--upstream-allow-cidrs",
            "127.0.0.0/8",
        ];
        flags.extend_from_slice(extra);
        Self::start(&flags, &[("API_SEALED", &sealed)]).await
    }

    /// curl in hosts-file mode: `https://api.test:PORT/PATH` with api.test resolved to
    /// this sidecar, trusting its CA, with a dummy `Authorization`.
    pub async fn curl(&self, path: &str) -> String {
        curl_sidecar(self.addr.port(), &self.ca_path(), path).await
    }

    pub fn ca_path(&self) -> PathBuf {
        self.ca_dir.join("ca.pem")
    }

    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.proxy_addr.expect("HTTPS_PROXY listener"))
    }

    /// `https://HOST:PORT/PATH` on the TLS listener.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.addr.port())
    }

    /// GET `https://api.test:PORT/PATH` from the sidecar, as a client that trusts its CA.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client_for(&["api.test"])
            .get(self.url("api.test", path))
            .send()
            .await
            .unwrap()
    }

    /// A reqwest client that trusts the sidecar's CA and sends `host` to it.
    pub fn client_for(&self, hosts: &[&str]) -> reqwest::Client {
        let cert = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap();
        let mut b = reqwest::Client::builder()
            .add_root_certificate(cert)
            .no_proxy();
        for h in hosts {
            b = b.resolve(h, self.addr);
        }
        b.build().unwrap()
    }
}

/// curl in HTTPS_PROXY mode, as a sandbox would: `url` through the CONNECT proxy at
/// `proxy` (`http://ADDR`), trusting `ca`, with `Authorization: AUTH`: success, stdout,
/// stderr.
pub async fn curl_proxied(proxy: &str, ca: &str, auth: &str, url: &str) -> (bool, String, String) {
    let auth = format!("Authorization: {auth}");
    super::curl(&["-x", proxy, "--cacert", ca, "-H", &auth, url]).await
}

/// curl in hosts-file mode, as a sandbox would: `https://api.test:PORT/PATH` with api.test
/// resolved to a sidecar's TLS listener on 127.0.0.1:PORT, trusting `ca`, with a dummy
/// `Authorization` (the sidecar replaces it). What curl printed; panics if curl failed.
pub async fn curl_sidecar(port: u16, ca: &Path, path: &str) -> String {
    let resolve = format!("api.test:{port}:127.0.0.1");
    let url = format!("https://api.test:{port}{path}");
    let (ok, out, err) = super::curl(&[
        "--resolve",
        &resolve,
        "--cacert",
        &ca.display().to_string(),
        "-H",
        "Authorization: Bearer dummy",
        &url,
    ])
    .await;
    assert!(ok, "curl {url}: {err}");
    out
}
