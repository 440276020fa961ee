//! The real proxy, started in-process on 127.0.0.1:0.

use std::net::SocketAddr;

use ::tokenizer::admin::{self, AdminState};
use ::tokenizer::cli::ServeArgs;
use ::tokenizer::proxy::{self, Proxy};
use ::tokenizer::secret::{OpenKey, OpenKeys, SealKey, Secret};
use clap::Parser;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::ca::TestCa;

/// What the destination guard exempts in most tests: where the test upstreams live.
pub const LOOPBACK: &str = "127.0.0.0/8,::1/128";

/// `serve` flags that trust `ca` upstream and, with `loopback`, exempt loopback from the
/// destination guard; then `extra`, with the reflection guard off unless `extra` sets it.
pub fn trusting(ca: &TestCa, loopback: bool, extra: Vec<String>) -> Vec<String> {
    let mut args = vec!["--upstream-ca-file".to_owned(), ca.pem_file()];
    if loopback {
        args.extend(["--upstream-allow-cidrs".to_owned(), LOOPBACK.to_owned()]);
    }
    if !extra.iter().any(|a| a.starts_with("--reflection-guard")) {
        args.push("--reflection-guard=false".to_owned());
    }
    args.extend(extra);
    args
}

/// A running tokenizer; stops when dropped.
pub struct Tokenizer {
    pub addr: SocketAddr,
    /// The admin listener, when `--admin-address` was given.
    pub admin_addr: Option<SocketAddr>,
    pub seal_key: SealKey,
    pub open_key: OpenKey,
    _stop: oneshot::Sender<()>,
}

impl Drop for Tokenizer {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            super::assert_no_proxy_panic();
        }
    }
}

impl Tokenizer {
    /// Trusts `ca` upstream and exempts loopback from the destination guard (the test
    /// upstreams live there); `extra` are more `serve` flags. The reflection guard is off
    /// unless `extra` turns it on: most tests read the injected credential back from an
    /// echo upstream, which is exactly what the guard masks.
    pub async fn start(ca: &TestCa, extra: &[&str]) -> Self {
        let extra = extra.iter().map(|s| (*s).to_owned()).collect();
        Self::start_raw(trusting(ca, true, extra)).await
    }

    /// Only the key and listen address are set; `args` are everything else (the
    /// reflection guard stays on unless they turn it off).
    pub async fn start_raw(args: Vec<String>) -> Self {
        super::init();
        let open_key = OpenKey::generate();
        let mut all = vec![
            "serve".to_owned(),
            "--open-key".to_owned(),
            open_key.to_hex().to_string(),
            "--listen-address".to_owned(),
            "127.0.0.1:0".to_owned(),
        ];
        all.extend(args);
        let config = ServeArgs::try_parse_from(all)
            .expect("serve flags")
            .into_config()
            .expect("serve config");
        let listener = TcpListener::bind(config.listen[0]).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin = match config.admin_address {
            Some(a) => Some(TcpListener::bind(a).await.unwrap()),
            None => None,
        };
        let admin_addr = admin.as_ref().map(|l| l.local_addr().unwrap());
        let admin_token = config.admin_token.clone();
        let own: Vec<_> = std::iter::once(addr).chain(admin_addr).collect();
        let proxy = Proxy::new(config, &own).expect("proxy");
        if let Some(listener) = admin {
            let state = AdminState {
                role: "serve",
                telemetry: proxy.telemetry().clone(),
                seal_key: Some(open_key.seal_key()),
                admin_token: admin_token.map(std::sync::Arc::new),
                stopping: tokio_util::sync::CancellationToken::new(),
                fleet: None,
            };
            tokio::spawn(admin::serve(
                listener,
                state,
                Box::pin(std::future::pending()),
            ));
        }
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(proxy::serve(
            listener,
            proxy,
            Box::pin(async {
                let _ = stopped.await;
            }),
            std::time::Duration::from_secs(1),
        ));
        Self {
            addr,
            admin_addr,
            seal_key: open_key.seal_key(),
            open_key,
            _stop: stop,
        }
    }

    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The keys that open what this proxy's seal key sealed.
    pub fn open_keys(&self) -> OpenKeys {
        OpenKeys::new(self.open_key.clone(), Vec::new())
    }

    /// The admin listener's `/metrics` value of `name` (a gauge or counter without
    /// labels); needs `--admin-address`.
    pub async fn metric(&self, name: &str) -> f64 {
        let addr = self.admin_addr.expect("started with --admin-address");
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in {text}"))
    }

    /// Seal a secret given as JSON for this tokenizer.
    pub fn seal(&self, secret: &Value) -> String {
        Secret::from_json(secret.to_string().as_bytes())
            .expect("valid secret")
            .seal(&self.seal_key)
    }

    /// Seal raw JSON text without checking it (for bad-secret tests).
    pub fn seal_raw(&self, json: &str) -> String {
        self.seal_key.seal_base64(json.as_bytes())
    }

    /// A reqwest client that sends every request through this proxy (absolute-form for
    /// `http://` URLs).
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(self.proxy_url()).unwrap())
            .build()
            .unwrap()
    }
}
