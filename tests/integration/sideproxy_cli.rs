//! `tokenizer sideproxy` as a real process: start-up errors (exit status, one-line
//! message, no secret printed), a run through a real `tokenizer serve` child with curl in
//! hosts-file and HTTPS_PROXY modes, `sideproxy env`, CA persistence across runs, and
//! resilience against unknown SNI and non-TLS bytes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ::tokenizer::secret::OpenKey;
use serde_json::{Value, json};

use crate::support::binary::{self, Server, Stopped};
use crate::support::ca::TestCa;
use crate::support::sidecar::{curl_proxied, curl_sidecar};
use crate::support::upstream::{Echo, Upstream};
use crate::support::{CURL_VARS, curl, inject, seal_for, wait_until, with};

/// The caller password the sealed secrets are bound to (`TOKENIZER_AUTH`).
const PROXY_PW: &str = "proxy-pw";
/// The credential the tokenizer injects.
const REAL_KEY: &str = "real-key";

/// `tokenizer sideproxy ARGS` with a clean environment plus `envs`.
fn sideproxy(args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = binary::command();
    for var in CURL_VARS {
        cmd.env_remove(var);
    }
    cmd.arg("sideproxy").args(args).envs(envs.iter().copied());
    cmd
}

/// An inject secret (`REAL_KEY`, bound to `PROXY_PW`) allowed for `host`, sealed for `key`.
fn sealed_for(key: &OpenKey, host: &str) -> String {
    seal_for(
        key,
        &with(inject(REAL_KEY, PROXY_PW), json!({"allowed_hosts": [host]})),
    )
}

// === start-up errors ===

/// How a one-shot run ended and what it printed.
struct Quick {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Run `cmd`, which must exit within five seconds.
fn run_quick(mut cmd: Command) -> Quick {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start tokenizer");
    let Some(status) = wait_until(Duration::from_secs(5), || child.try_wait().unwrap()) else {
        let _ = child.kill();
        let _ = child.wait();
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        panic!("still running after 5 s ({cmd:?}); stderr:\n{err}");
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Quick {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// `quick` failed with `code` and one stderr line `tokenizer: …` containing every one of
/// `needles`, and printed none of `secrets`.
fn assert_fails(what: &str, quick: &Quick, code: i32, needles: &[&str], secrets: &[&str]) {
    let all = format!("{}{}", quick.stdout, quick.stderr);
    assert_eq!(
        quick.code,
        Some(code),
        "{what}: exit status; stdout: {}\nstderr: {}",
        quick.stdout,
        quick.stderr
    );
    let lines: Vec<&str> = quick.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: want one stderr line:\n{all}");
    assert!(
        lines[0].starts_with("tokenizer: "),
        "{what}: {}",
        quick.stderr
    );
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{what}: message does not mention {needle:?}: {}",
            lines[0]
        );
    }
    for secret in secrets {
        assert!(
            !all.contains(secret),
            "{what}: printed a secret value ({secret:?}):\n{all}"
        );
    }
}

/// A start-up error case: what, the variables that cause it, what the message must say.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);

#[test]
fn config_errors_exit_2_with_one_line_naming_the_problem() {
    let key = OpenKey::generate();
    let good = sealed_for(&key, "api.test");
    let junk = "this*is*not*base64*SECRET-junk-value";
    let auth = "SECRET-tokenizer-auth-value";
    let secrets = [good.as_str(), junk, auth];
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().display().to_string();
    // Everything valid except the variable under test; PORT 0 in case one got as far as
    // binding (it must not: config errors come first).
    let base: Vec<(&str, &str)> = vec![
        ("GOOD_SEALED", &good),
        ("EMPTY_SEALED", ""),
        ("JUNK_SEALED", junk),
        ("TOKENIZER_AUTH", auth),
        ("PORT", "0"),
        ("BIND_ADDRESSES", "127.0.0.1"),
        ("CA_DIR", &ca_dir),
        ("PROXY", "http://127.0.0.1:9"),
    ];
    let cases: &[Case] = &[
        ("no TARGETS", &[], &["TARGETS", "required"]),
        (
            "unset variable",
            &[("TARGETS", "api.test=UNSET_SEALED")],
            &["TARGETS", "api.test", "$UNSET_SEALED", "unset"],
        ),
        (
            "empty variable",
            &[("TARGETS", "api.test=EMPTY_SEALED")],
            &["TARGETS", "api.test", "$EMPTY_SEALED", "empty"],
        ),
        (
            "not base64",
            &[("TARGETS", "api.test=JUNK_SEALED")],
            &["TARGETS", "api.test", "$JUNK_SEALED", "base64"],
        ),
        (
            "entry without =",
            &[("TARGETS", "api.test")],
            &["TARGETS", "api.test", "host=ENVVAR"],
        ),
        (
            "duplicate host",
            &[("TARGETS", "api.test=GOOD_SEALED,API.test.=GOOD_SEALED")],
            &["TARGETS", "api.test", "twice"],
        ),
        (
            "bad PROXY",
            &[("TARGETS", "api.test=GOOD_SEALED"), ("PROXY", "ftp://x")],
            &["PROXY", "ftp://x"],
        ),
        (
            "bad BIND_ADDRESSES",
            &[
                ("TARGETS", "api.test=GOOD_SEALED"),
                ("BIND_ADDRESSES", "localhost"),
            ],
            &["BIND_ADDRESSES", "localhost"],
        ),
        (
            "bad PASSTHROUGH",
            &[
                ("TARGETS", "api.test=GOOD_SEALED"),
                ("PASSTHROUGH", "a.com:x"),
            ],
            &["PASSTHROUGH", "a.com:x"],
        ),
    ];
    for (what, envs, needles) in cases {
        let mut all = base.clone();
        // Later entries win: the case's variables override the base.
        all.extend_from_slice(envs);
        let started = Instant::now();
        let quick = run_quick(sideproxy(&[], &all));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{what}: took {:?}",
            started.elapsed()
        );
        assert_fails(what, &quick, 2, needles, &secrets);
    }
    // Config errors come before the CA: nothing was written.
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "a config error wrote to CA_DIR"
    );
}

/// Start a sidecar on a CA_DIR holding `files`; it must fail with exit 1.
fn ca_failure(files: &[(&str, &str)]) -> (tempfile::TempDir, Quick, Vec<String>) {
    let key = OpenKey::generate();
    let good = sealed_for(&key, "api.test");
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let ca_dir = dir.path().display().to_string();
    let quick = run_quick(sideproxy(
        &[],
        &[
            ("TARGETS", "api.test=GOOD_SEALED"),
            ("GOOD_SEALED", &good),
            ("TOKENIZER_AUTH", "SECRET-auth-ca"),
            ("PORT", "0"),
            ("BIND_ADDRESSES", "127.0.0.1"),
            ("CA_DIR", &ca_dir),
            ("PROXY", "http://127.0.0.1:9"),
        ],
    ));
    (dir, quick, vec![good, "SECRET-auth-ca".to_owned()])
}

#[test]
fn ca_errors_exit_1_naming_the_ca_file() {
    // Half a pair: the certificate without its key.
    let (dir, quick, secrets) = ca_failure(&[("ca.pem", "-----BEGIN CERTIFICATE-----\n")]);
    let cert = dir.path().join("ca.pem").display().to_string();
    let key = dir.path().join("ca-key.pem").display().to_string();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_fails("half pair", &quick, 1, &["CA", &cert, &key], &secrets);
    assert!(!dir.path().join("ca-key.pem").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ca.pem")).unwrap(),
        "-----BEGIN CERTIFICATE-----\n",
        "a half pair must be left alone"
    );

    // Half a pair the other way round.
    let (dir, quick, _) = ca_failure(&[("ca-key.pem", "garbage key\n")]);
    let key = dir.path().join("ca-key.pem").display().to_string();
    assert_fails("key without cert", &quick, 1, &["CA", &key], &secrets);

    // Garbage in both files: refused, not silently replaced.
    let (dir, quick, _) = ca_failure(&[("ca.pem", "garbage cert\n"), ("ca-key.pem", "garbage\n")]);
    let cert = dir.path().join("ca.pem").display().to_string();
    let key = dir.path().join("ca-key.pem").display().to_string();
    assert_fails("garbage pair", &quick, 1, &["CA"], &secrets);
    assert!(
        quick.stderr.contains(&cert) || quick.stderr.contains(&key),
        "garbage pair: the message names neither CA file: {}",
        quick.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ca.pem")).unwrap(),
        "garbage cert\n"
    );
}

#[test]
fn a_bad_ca_file_is_the_one_named() {
    // A valid key with a garbage certificate: the message names ca.pem.
    let good_key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let (dir, quick, secrets) =
        ca_failure(&[("ca.pem", "garbage cert\n"), ("ca-key.pem", &good_key)]);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let cert = dir.path().join("ca.pem").display().to_string();
    assert_fails("garbage cert", &quick, 1, &["CA", &cert], &secrets);
    assert!(!quick.stderr.contains(&good_key), "{}", quick.stderr);

    // A valid certificate with a garbage key: the message names ca-key.pem, the file at
    // fault, not ca.pem.
    let ca = TestCa::new();
    let (dir, quick, _) = ca_failure(&[("ca.pem", &ca.cert_pem), ("ca-key.pem", "garbage\n")]);
    let key = dir.path().join("ca-key.pem").display().to_string();
    assert_fails("garbage key", &quick, 1, &["CA", &key], &secrets);
}

#[test]
fn env_without_a_ca_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let quick = run_quick(sideproxy(
        &["env"],
        &[
            ("CA_DIR", &dir.path().display().to_string()),
            ("HTTPS_PROXY_ADDRESS", "127.0.0.1:3128"),
        ],
    ));
    let ca = dir.path().join("ca.pem").display().to_string();
    assert_fails("env without CA", &quick, 2, &[&ca, "does not exist"], &[]);
    assert_eq!(quick.stdout, "");
}

// === running sidecars ===

/// A `tokenizer sideproxy` child.
struct Side {
    server: Server,
    /// The TLS listener's port.
    port: u16,
    /// The HTTPS_PROXY listener.
    proxy: SocketAddr,
    ca_dir: PathBuf,
}

impl Side {
    /// Start on kernel-picked loopback ports with `CA_DIR=ca_dir`, `PROXY=proxy` and `envs`
    /// (TARGETS and the variables it names), waiting until it has logged `sideproxy
    /// listening` and both listeners accept.
    fn start(ca_dir: &Path, proxy: &str, envs: &[(&str, &str)]) -> Self {
        Self::try_start(ca_dir, proxy, envs)
            .unwrap_or_else(|e| panic!("tokenizer sideproxy did not start: {e}"))
    }

    /// [`Side::start`]; when the process exits instead, what it wrote to stderr.
    fn try_start(ca_dir: &Path, proxy: &str, envs: &[(&str, &str)]) -> Result<Self, String> {
        let ca_dir_text = ca_dir.display().to_string();
        let mut all = vec![
            ("PORT", "0"),
            ("BIND_ADDRESSES", "127.0.0.1"),
            ("CA_DIR", &ca_dir_text),
            ("PROXY", proxy),
            ("TOKENIZER_AUTH", PROXY_PW),
            ("HTTPS_PROXY_ADDRESS", "127.0.0.1:0"),
            ("LOG_FORMAT", "json"),
        ];
        all.extend_from_slice(envs);
        let server = Server::launch(sideproxy(&[], &all))?;
        assert!(
            server.stderr_text().contains("sideproxy listening"),
            "{}",
            server.stderr_text()
        );
        let proxy = server.https_proxy.expect("an HTTPS_PROXY listener");
        assert!(
            TcpStream::connect_timeout(&proxy, Duration::from_secs(5)).is_ok(),
            "HTTPS_PROXY listener {proxy} does not accept:\n{}",
            server.stderr_text()
        );
        Ok(Self {
            port: server.addr.port(),
            server,
            proxy,
            ca_dir: ca_dir.to_owned(),
        })
    }

    fn ca_path(&self) -> PathBuf {
        self.ca_dir.join("ca.pem")
    }

    /// SIGTERM; the exit must be clean and prompt.
    fn stop(self) -> Stopped {
        let stopped = self.server.stop_within(Duration::from_secs(5));
        assert!(
            stopped.status.success(),
            "sideproxy exit status {} after SIGTERM; stderr:\n{}",
            stopped.status,
            stopped.stderr
        );
        stopped
    }
}

/// Every stderr line as JSON (LOG_FORMAT=json).
fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect()
}

/// The `sideproxy listening` line.
fn listening(stderr: &str) -> Value {
    json_lines(stderr)
        .into_iter()
        .find(|l| l["message"] == "sideproxy listening")
        .unwrap_or_else(|| panic!("no `sideproxy listening` line:\n{stderr}"))
}

/// A TLS upstream for `api.test`, a `tokenizer serve` child pinned to it, and a sidecar
/// child whose only target is `api.test`.
struct Chain {
    _ca: TestCa,
    _upstream: Upstream,
    serve: Server,
    side: Side,
    sealed: String,
    _dir: tempfile::TempDir,
}

async fn chain() -> Chain {
    let ca = TestCa::new();
    let upstream = Upstream::start(&ca, &["api.test"]).await;
    let key = OpenKey::generate();
    let sealed = sealed_for(&key, "api.test");
    let dir = tempfile::tempdir().unwrap();
    let (serve, side) = tokio::task::block_in_place(|| {
        let pin = upstream.pin(&["api.test"]);
        let serve = Server::start_trusting(
            &ca,
            &key.to_hex(),
            &["--log-format", "json", "--upstream-resolve", &pin],
            &[],
        );
        let side = Side::start(
            dir.path(),
            &serve.proxy_url(),
            &[("TARGETS", "api.test=API_SEALED"), ("API_SEALED", &sealed)],
        );
        (serve, side)
    });
    Chain {
        _ca: ca,
        _upstream: upstream,
        serve,
        side,
        sealed,
        _dir: dir,
    }
}

impl Chain {
    /// SIGTERM to both; both must exit 0. Returns (sidecar, serve) stderr.
    fn stop(self) -> (String, String) {
        tokio::task::block_in_place(|| {
            let side = self.side.stop();
            let serve = self.serve.stop_within(Duration::from_secs(5));
            assert!(
                serve.status.success(),
                "serve exit status {} after SIGTERM; stderr:\n{}",
                serve.status,
                serve.stderr
            );
            (side.stderr, serve.stderr)
        })
    }
}

/// Neither process logged the sealed secret, the caller password or the credential.
fn assert_no_secrets(sealed: &str, side: &str, serve: &str) {
    for (who, log) in [("sideproxy", side), ("serve", serve)] {
        for secret in [sealed, PROXY_PW, REAL_KEY] {
            assert!(!log.contains(secret), "{who} logged {secret:?}:\n{log}");
        }
    }
}

/// curl to `https://api.test:PORT/PATH` (hosts-file mode) must see the real credential.
async fn curl_hosts_mode(side: &Side, path: &str) {
    let out = curl_sidecar(side.port, &side.ca_path(), path).await;
    assert_injected(&Echo::parse(&out), path);
}

fn assert_injected(echo: &Echo, path: &str) {
    assert_eq!(
        echo.header_all("authorization"),
        [format!("Bearer {REAL_KEY}")]
    );
    assert_eq!(echo.uri(), path);
    assert_eq!(echo.header("host").as_deref(), Some("api.test"));
    for name in echo.header_names() {
        assert!(!name.starts_with("proxy-"), "{name} reached the upstream");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_run_injects_serves_the_ca_logs_and_stops_cleanly() {
    let c = chain().await;
    let side = &c.side;
    let ca_pem = std::fs::read_to_string(side.ca_path()).unwrap();
    let ca = side.ca_path().display().to_string();

    // Hosts-file mode: the client resolves api.test to the sidecar.
    curl_hosts_mode(side, "/x").await;

    // HTTPS_PROXY mode: CONNECT api.test:443, then TLS to a forged certificate.
    let proxy = format!("http://{}", side.proxy);
    let (ok, out, err) = curl_proxied(&proxy, &ca, "Bearer dummy", "https://api.test/y").await;
    assert!(ok, "curl through HTTPS_PROXY: {err}");
    assert_injected(&Echo::parse(&out), "/y");

    // The CA certificate, on the `localhost` SNI.
    let resolve = format!("localhost:{}:127.0.0.1", side.port);
    let url = format!("https://localhost:{}/ca-cert.pem", side.port);
    let (ok, out, err) = curl(&["-k", "--resolve", &resolve, &url]).await;
    assert!(ok, "curl {url}: {err}");
    assert_eq!(out, ca_pem, "/ca-cert.pem differs from CA_DIR/ca.pem");

    let sealed = c.sealed.clone();
    let (side_log, serve_log) = c.stop();
    assert_no_secrets(&sealed, &side_log, &serve_log);

    // One JSON line per request, by SNI host and path.
    let lines = json_lines(&side_log);
    let requests: Vec<&Value> = lines.iter().filter(|l| l["role"] == "sideproxy").collect();
    for (host, path) in [
        ("api.test", "/x"),
        ("api.test", "/y"),
        ("localhost", "/ca-cert.pem"),
    ] {
        let found: Vec<&&Value> = requests
            .iter()
            .filter(|l| l["method"] == "GET" && l["path"] == path)
            .collect();
        assert_eq!(found.len(), 1, "GET {path}: want one log line:\n{side_log}");
        assert_eq!(found[0]["host"], host, "{}", found[0]);
        assert_eq!(found[0]["status"], 200, "{}", found[0]);
    }
    // The CONNECT that carried /y.
    assert!(
        requests.iter().any(|l| l["method"] == "CONNECT"
            && l["connect_host"] == "api.test:443"
            && l["status"] == 200),
        "no CONNECT line:\n{side_log}"
    );
    assert!(
        lines.iter().any(|l| l["message"] == "stopped"),
        "no graceful stop:\n{side_log}"
    );
    // The tokenizer saw both forwarded requests.
    let served = json_lines(&serve_log);
    for path in ["/x", "/y"] {
        assert!(
            served
                .iter()
                .any(|l| l["role"] == "serve" && l["path"] == path && l["status"] == 200),
            "serve did not log {path}:\n{serve_log}"
        );
    }
}

// === sideproxy env ===

/// The value of `export NAME=…` in `text`.
fn export<'a>(text: &'a str, name: &str) -> &'a str {
    let prefix = format!("export {name}=");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no `export {name}=` in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_lines_let_an_unmodified_curl_through() {
    let c = chain().await;
    let side = &c.side;
    let ca_dir = side.ca_dir.display().to_string();
    let proxy_addr = side.proxy.to_string();
    let out = tokio::task::block_in_place(|| {
        run_quick(sideproxy(
            &["env"],
            &[("CA_DIR", &ca_dir), ("HTTPS_PROXY_ADDRESS", &proxy_addr)],
        ))
    });
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stderr, "");
    let text = &out.stdout;
    let proxy_url = format!("http://{}", side.proxy);
    let bundle = side.ca_dir.join("bundle.pem").display().to_string();
    let ca = side.ca_path().display().to_string();
    for var in ["HTTPS_PROXY", "https_proxy"] {
        assert_eq!(export(text, var), proxy_url, "{text}");
    }
    for var in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
    ] {
        assert_eq!(export(text, var), bundle, "{text}");
    }
    assert_eq!(export(text, "NODE_EXTRA_CA_CERTS"), ca, "{text}");
    assert!(
        text.lines().all(|l| l.starts_with("export ")),
        "not only export lines:\n{text}"
    );
    // The bundle holds the sidecar's CA.
    let ca_pem = std::fs::read_to_string(side.ca_path()).unwrap();
    let bundle_text = std::fs::read_to_string(&bundle).unwrap();
    assert!(
        bundle_text.contains(ca_pem.trim()),
        "bundle.pem lacks ca.pem"
    );

    // Sourced in a shell, the lines are all curl needs: no -x, no --cacert.
    let script = format!(
        "{text}\nexec curl -sS --max-time 10 -H 'Authorization: Bearer dummy' https://api.test/z"
    );
    let mut sh = tokio::process::Command::new("sh");
    for var in CURL_VARS {
        sh.env_remove(var);
    }
    let run = sh.arg("-c").arg(&script).output().await.expect("sh runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert!(run.status.success(), "sourced env + curl failed: {stderr}");
    assert_injected(&Echo::parse(&stdout), "/z");

    let sealed = c.sealed.clone();
    let (side_log, serve_log) = c.stop();
    assert_no_secrets(&sealed, &side_log, &serve_log);
}

// === CA persistence ===

#[test]
fn the_ca_is_reused_until_the_targets_outgrow_it() {
    let key = OpenKey::generate();
    let api = sealed_for(&key, "api.test");
    let other = sealed_for(&key, "api.other");
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("ca.pem");
    let key_file = dir.path().join("ca-key.pem");
    // Nothing answers here; no request is made.
    let proxy = "http://127.0.0.1:9";
    let one = [
        ("TARGETS", "api.test=API_SEALED"),
        ("API_SEALED", api.as_str()),
    ];

    let first = Side::start(dir.path(), proxy, &one).stop();
    assert_eq!(listening(&first.stderr)["ca_provenance"], "generated");
    let pem1 = std::fs::read(&cert).unwrap();
    assert_key_private(&key_file);

    let second = Side::start(dir.path(), proxy, &one).stop();
    assert_eq!(listening(&second.stderr)["ca_provenance"], "loaded");
    assert_eq!(
        std::fs::read(&cert).unwrap(),
        pem1,
        "ca.pem changed on reuse"
    );
    assert_key_private(&key_file);

    let both = [
        ("TARGETS", "api.test=API_SEALED,api.other=OTHER_SEALED"),
        ("API_SEALED", api.as_str()),
        ("OTHER_SEALED", other.as_str()),
    ];
    let third = Side::start(dir.path(), proxy, &both).stop();
    let line = listening(&third.stderr);
    assert_eq!(line["ca_provenance"], "regenerated", "{line}");
    let pem3 = std::fs::read(&cert).unwrap();
    assert_ne!(pem3, pem1, "ca.pem not regenerated for a new host");
    assert_key_private(&key_file);

    for log in [&first.stderr, &second.stderr, &third.stderr] {
        for secret in [api.as_str(), other.as_str(), PROXY_PW] {
            assert!(!log.contains(secret), "logged {secret:?}:\n{log}");
        }
    }
}

fn assert_key_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
}

// === hostile clients ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sni_and_garbage_do_not_stop_it() {
    let mut c = chain().await;
    let port = c.side.port;

    // An SNI that is not a target: the handshake fails.
    let connect = format!("127.0.0.1:{port}");
    let out = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect", &connect, "-servername", "evil.test"])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("openssl runs");
    assert!(
        !out.status.success(),
        "a handshake for evil.test succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("BEGIN CERTIFICATE"),
        "a certificate was served for evil.test"
    );

    // Plain bytes, not TLS: the connection is closed without a crash.
    tokio::task::block_in_place(|| {
        for bytes in [
            &b"GET /x HTTP/1.1\r\nHost: api.test\r\n\r\n"[..],
            &[0u8; 64][..],
            &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01][..],
        ] {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(bytes);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
    });

    assert!(
        c.side.server.exited().is_none(),
        "sideproxy died:\n{}",
        c.side.server.stderr_text()
    );
    curl_hosts_mode(&c.side, "/after").await;

    let sealed = c.sealed.clone();
    let (side_log, serve_log) = c.stop();
    assert_no_secrets(&sealed, &side_log, &serve_log);
}

#[test]
fn a_ca_key_that_does_not_match_ca_pem_is_not_used() {
    let key = OpenKey::generate();
    let api = sealed_for(&key, "api.test");
    let dir = tempfile::tempdir().unwrap();
    let proxy = "http://127.0.0.1:9";
    let envs = [
        ("TARGETS", "api.test=API_SEALED"),
        ("API_SEALED", api.as_str()),
    ];
    Side::start(dir.path(), proxy, &envs).stop();
    // Another key (a botched restore, say): ca.pem is still valid and covers the targets.
    let other_key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    std::fs::write(dir.path().join("ca-key.pem"), other_key).unwrap();

    // Correct: refuse to start (exit 1, naming the CA files), or replace the pair. Wrong:
    // load it and sign leaves with a key that ca.pem does not certify.
    let side = match Side::try_start(dir.path(), proxy, &envs) {
        Ok(side) => side,
        Err(stderr) => {
            assert!(
                stderr.contains("exit status: 1") && stderr.contains("ca-key.pem"),
                "refused, but not with exit 1 naming ca-key.pem: {stderr}"
            );
            return;
        }
    };
    let resolve = format!("localhost:{}:127.0.0.1", side.port);
    let url = format!("https://localhost:{}/ca-cert.pem", side.port);
    let ca = side.ca_path().display().to_string();
    let mut curl = Command::new("curl");
    for var in CURL_VARS {
        curl.env_remove(var);
    }
    let out = curl
        .args(["-sS", "--max-time", "10", "--cacert", &ca, "--resolve"])
        .args([&resolve, &url])
        .output()
        .expect("curl runs");
    let stopped = side.stop();
    assert!(
        out.status.success(),
        "the sidecar started with a ca-key.pem that does not match ca.pem (provenance {}), \
         and its certificates do not verify against CA_DIR/ca.pem: {}",
        listening(&stopped.stderr)["ca_provenance"],
        String::from_utf8_lossy(&out.stderr).trim()
    );
}
