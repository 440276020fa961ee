//! Real servers and clients for the integration tests.

pub mod admin;
pub mod adversary;
pub mod attack;
pub mod binary;
pub mod ca;
pub mod cdp;
pub mod env;
pub mod fleet;
pub mod oidc_issuer;
pub mod poll;
pub mod python;
pub mod raw;
pub mod sidecar;
pub mod tokenizer;
pub mod upstream;

pub use env::{Env, Reply};
pub use poll::{poll_until, wait_until};

use ::tokenizer::auth::BearerAuth;
use ::tokenizer::secret::{OpenKey, Secret, b64};
use serde_json::{Value, json};

/// Once per process: the rustls provider reqwest uses, and a panic hook that records
/// every panic raised in the proxy's own code (`src/`), which [`assert_no_panic`] and the
/// in-process servers' `Drop` turn into test failures: a panic in a request task is
/// caught by the runtime and would otherwise only show as a dropped connection.
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(at) = info.location()
                && at.file().starts_with("src/")
            {
                PROXY_PANICS
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("{at}: {info}"));
            }
            default(info);
        }));
    });
}

/// Panics raised in the proxy's code by in-process servers.
static PROXY_PANICS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Fail if any in-process proxy has panicked.
pub fn assert_no_proxy_panic() {
    let panics = PROXY_PANICS.lock().unwrap_or_else(|p| p.into_inner());
    assert!(panics.is_empty(), "the proxy panicked: {panics:?}");
}

/// Fail if a proxy process's output shows a panic.
pub fn assert_no_panic(what: &str, output: &str) {
    assert!(
        !output.contains("panicked"),
        "{what} panicked; its output:\n{output}"
    );
}

/// `{"bearer_auth":{"digest":…}}` body for `token`.
pub fn bearer(token: &str) -> Value {
    json!({ "digest": b64::encode(BearerAuth::for_token(token).digest.expose()) })
}

/// An inject secret bound to bearer `auth`.
pub fn inject(token: &str, auth: &str) -> Value {
    json!({"inject_processor": {"token": token}, "bearer_auth": bearer(auth)})
}

/// Seal a secret given as JSON with `key`'s seal key.
pub fn seal_for(key: &OpenKey, secret: &Value) -> String {
    Secret::from_json(secret.to_string().as_bytes())
        .expect("valid secret")
        .seal(&key.seal_key())
}

/// Merge extra top-level keys into a secret.
pub fn with(mut secret: Value, extra: Value) -> Value {
    let obj = secret.as_object_mut().unwrap();
    for (k, v) in extra.as_object().unwrap() {
        obj.insert(k.clone(), v.clone());
    }
    secret
}

/// Variables curl reads (proxies, CA bundles, its rc file): cleared, as
/// [`binary::command`] clears the tokenizer's own, so the caller's environment cannot
/// change a test.
pub const CURL_VARS: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_HOME",
];

/// `curl -sS --max-time 20 ARGS` without [`CURL_VARS`]: success, stdout, stderr.
pub async fn curl(args: &[&str]) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new("curl");
    for var in CURL_VARS {
        cmd.env_remove(var);
    }
    let out = cmd
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .await
        .expect("curl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A port on 127.0.0.1 where nothing listens: a socket bound to it, never listening, so
/// connections are refused and no one else can take the port while this is held.
pub struct DeadPort {
    _socket: tokio::net::TcpSocket,
    pub port: u16,
}

impl DeadPort {
    pub fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
        let port = socket.local_addr().unwrap().port();
        Self {
            _socket: socket,
            port,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}
