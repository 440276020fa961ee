//! A real `redis-server` and a fleet of real `tokenizer serve` processes sharing it.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokenizer::secret::{OpenKey, Secret};

use super::binary::Server;
use super::ca::TestCa;
use super::upstream::Upstream;
use super::{inject, with};

pub const AUTH: &str = "fleet-caller-password-51f3";
pub const ADMIN_TOKEN: &str = "fleet-admin-token-8c2e";

/// A real redis-server on 127.0.0.1 with a password and no persistence; killed when
/// dropped. [`Redis::restart`] brings it back on the same port.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    pub password: String,
    dir: tempfile::TempDir,
    /// TLS only (`rediss://`), with a certificate for 127.0.0.1 from this CA file.
    tls_ca: Option<String>,
}

impl Redis {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A TLS-only server whose certificate `ca` issued.
    pub fn start_tls(ca: &TestCa) -> Self {
        Self::start_with(Some(ca))
    }

    fn start_with(ca: Option<&TestCa>) -> Self {
        let password = format!("redis-pw-{}", &OpenKey::generate().to_hex()[..16]);
        // The port is picked before redis-server binds it: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            let mut redis = Self {
                child: None,
                port: free_port(),
                password: password.clone(),
                dir: tempfile::tempdir().unwrap(),
                tls_ca: ca.map(TestCa::pem_file),
            };
            if let Some(ca) = ca {
                let (cert, key) = ca.leaf_pem(&["127.0.0.1"]);
                std::fs::write(redis.dir.path().join("server.pem"), cert).unwrap();
                std::fs::write(redis.dir.path().join("server.key"), key).unwrap();
            }
            if redis.spawn() {
                return redis;
            }
            last = std::fs::read_to_string(redis.dir.path().join("redis.log")).unwrap_or_default();
        }
        panic!("redis-server did not start on any port:\n{last}");
    }

    /// Start redis-server on `self.port`; whether it answers PING within 10 s.
    fn spawn(&mut self) -> bool {
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        match &self.tls_ca {
            None => cmd.args(["--port", &port]),
            Some(ca) => cmd
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(self.dir.path().join("server.pem"))
                .arg("--tls-key-file")
                .arg(self.dir.path().join("server.key"))
                .args(["--tls-ca-cert-file", ca]),
        };
        let child = cmd
            .args(["--bind", "127.0.0.1"])
            .args(["--requirepass", &self.password])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--logfile", "redis.log"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "the fleet tests need redis-server (Debian package redis-server; \
                     scripts/test installs it): {e}"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.cli(&["PING"]).trim() == "PONG" {
                return true;
            }
            if let Some(c) = self.child.as_mut()
                && c.try_wait().unwrap().is_some()
            {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls_ca.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://:{}@127.0.0.1:{}/0", self.password, self.port)
    }

    /// `redis-cli ARGS` against this server; its standard output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        if let Some(ca) = &self.tls_ca {
            cmd.args(["--tls", "--cacert", ca]);
        }
        let out = cmd
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "--no-auth-warning",
            ])
            .args(["-a", &self.password])
            .args(args)
            .output()
            .expect("redis-cli (package redis-tools) runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "redis-server did not come back on {}",
            self.port
        );
    }

    /// Every key, its type and everything it holds, as text.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for key in self.cli(&["--scan"]).lines().filter(|l| !l.is_empty()) {
            let kind = self.cli(&["TYPE", key]);
            let value = match kind.trim() {
                "string" => self.cli(&["GET", key]),
                "set" => self.cli(&["SMEMBERS", key]),
                "zset" => self.cli(&["ZRANGE", key, "0", "-1", "WITHSCORES"]),
                "hash" => self.cli(&["HGETALL", key]),
                "list" => self.cli(&["LRANGE", key, "0", "-1"]),
                other => format!("<{other}>"),
            };
            out.push_str(&format!("{key} ({}) = {value}\n", kind.trim()));
        }
        out
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port that was free a moment ago (redis-server cannot report the port it bound).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One fake API and a key; instances of `tokenizer serve` made on demand.
pub struct Fleet {
    _ca: TestCa,
    ca_file: String,
    pub upstream: Upstream,
    pub open: OpenKey,
    pub open_hex: String,
}

impl Fleet {
    pub async fn new() -> Self {
        let ca = TestCa::new();
        let upstream = Upstream::start(&ca, &["127.0.0.1"]).await;
        let open = OpenKey::generate();
        let open_hex = open.to_hex().to_string();
        Self {
            ca_file: ca.pem_path.display().to_string(),
            _ca: ca,
            upstream,
            open,
            open_hex,
        }
    }

    /// `tokenizer serve` with this fleet's key and `envs`; an admin listener too.
    pub fn instance(&self, envs: &[(&str, &str)]) -> (Server, SocketAddr) {
        let server = Server::start(
            &self.open_hex,
            &[
                "--upstream-ca-file",
                &self.ca_file,
                "--upstream-allow-cidrs",
                "127.0.0.0/8",
                "--log-format",
                "json",
                "--admin-address",
                "127.0.0.1:0",
            ],
            &[&[("ADMIN_TOKEN", ADMIN_TOKEN)], envs].concat(),
        );
        let admin = server.admin.expect("the admin listener");
        (server, admin)
    }

    pub fn seal(&self, secret: &Value) -> String {
        Secret::from_json(secret.to_string().as_bytes())
            .unwrap()
            .seal(&self.open.seal_key())
    }

    /// The fake API, as clients of the proxy name it (the proxy dials it over TLS).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1/thing", self.upstream.port())
    }
}

/// One request through `server` with `sealed`; (status, body, Retry-After).
pub async fn call(server: &Server, url: &str, sealed: &str) -> (u16, String, Option<String>) {
    call_with(server, url, &[sealed]).await
}

/// One request through `server` with every value of `sealed` (in order) and the fleet's
/// caller password; (status, body, Retry-After).
pub async fn call_with(
    server: &Server,
    url: &str,
    sealed: &[&str],
) -> (u16, String, Option<String>) {
    let mut req = server
        .client()
        .get(url)
        .header("proxy-authorization", format!("Bearer {AUTH}"));
    for s in sealed {
        req = req.header("proxy-tokenizer", *s);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, resp.text().await.unwrap(), retry)
}

pub async fn admin_get(admin: SocketAddr, path: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .get(format!("http://{admin}{path}"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

pub fn secret(token: &str, extra: Value) -> Value {
    with(inject(token, AUTH), extra)
}
