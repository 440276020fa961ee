//! The real `tokenizer` binary as a child process: one-shot subcommands, and `serve` (or
//! `sideproxy`) as a server on kernel-picked ports that is stopped with SIGTERM and hands
//! back everything it wrote to stderr.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::ca::TestCa;
use super::poll::wait_until;

/// Path of the binary cargo built for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_tokenizer");

/// Variables the binary reads; removed from every child so the caller's environment
/// cannot change a test.
const TOKENIZER_VARS: &[&str] = &[
    "OPEN_KEY",
    "OPEN_KEY_FILE",
    "PREVIOUS_OPEN_KEYS",
    "SEAL_KEY",
    "LISTEN_ADDRESS",
    "FILTERED_HEADERS",
    "DEFAULT_FILTERED_HEADERS",
    "DEBUG_TCP",
    "OPEN_PROXY",
    "USE_FLYSRC",
    "REQUIRE_FLYSRC",
    "REQUIRE_FLY_SRC",
    "FLYSRC_PUBLIC_KEY_FILE",
    "FLYSRC_PROXY_NETS",
    "TOKENIZER_HOSTNAMES",
    "UPSTREAM_CA_FILE",
    "UPSTREAM_RESOLVE",
    "UPSTREAM_ALLOW_CIDRS",
    "UPSTREAM_DENY_CIDRS",
    "UPSTREAM_CONNECT_TIMEOUT",
    "MAX_BUFFERED_BODY",
    "ADMIN_ADDRESS",
    "LOG_FORMAT",
    "SHUTDOWN_TIMEOUT",
    "RUST_LOG",
    "DEBUG",
    // sideproxy
    "TARGETS",
    "PROXY",
    "PORT",
    "BIND_ADDRESSES",
    "TOKENIZER_AUTH",
    "CA_DIR",
    "HTTPS_PROXY_ADDRESS",
    "PASSTHROUGH",
    "TOKENIZER_TIMEOUT",
    "ADMIN_TOKEN",
];

/// `tokenizer` with a clean tokenizer environment (other variables, PATH included, kept).
pub fn command() -> Command {
    command_at(std::path::Path::new(BIN))
}

/// [`command`] for a copy of the binary at `path`.
pub fn command_at(path: &std::path::Path) -> Command {
    let mut cmd = Command::new(path);
    for var in TOKENIZER_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// The Go repository's key pair (cmd/curl/.envrc), which Go users' scripts hold.
pub const GO_OPEN_KEY: &str = "0d88a36d5c41d5c3d97b929fdebf0bea57e5fb4616da88121ba972431a161cab";
pub const GO_SEAL_KEY: &str = "a29dcbaa824af8f0a8d435df6ca1f27cfbf1d5aaa03f3f87fa0a58f8a34d8f67";

/// `tokenizer unseal --open-key OPEN_KEY --token SEALED` (with `--show-secrets` when
/// `show`): the JSON it printed.
pub fn unseal(open_key: &str, sealed: &str, show: bool) -> serde_json::Value {
    let mut args = vec!["unseal", "--open-key", open_key, "--token", sealed];
    if show {
        args.push("--show-secrets");
    }
    let out = run(&args).ok();
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("unseal printed no JSON ({e}): {out:?}"))
}

/// What a finished child printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics with both streams unless the exit status is 0.
    pub fn ok(self) -> Self {
        assert!(
            self.status.success(),
            "tokenizer failed ({}):\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Run `cmd` to completion with `stdin` as its standard input.
pub fn run_cmd(mut cmd: Command, stdin: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start tokenizer");
    {
        let mut input = child.stdin.take().unwrap();
        // The child may exit without reading; a broken pipe is not the test's concern.
        let _ = input.write_all(stdin);
    }
    let out = child.wait_with_output().expect("wait for tokenizer");
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `tokenizer ARGS` with empty stdin.
pub fn run(args: &[&str]) -> Output {
    let mut cmd = command();
    cmd.args(args);
    run_cmd(cmd, b"")
}

/// Let the child run on CPU 0 only.
fn pin_to_cpu_0(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec, only sched_setaffinity (async-signal-safe) runs, on
    // a set built on the stack.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// `tokenizer serve` or `tokenizer sideproxy` running as a child, listening on ports the
/// kernel picked (`:0`), which it names on its `listening` log line. Killed when dropped;
/// [`Server::stop`] ends it the polite way.
pub struct Server {
    /// The main listener: `serve`'s proxy, `sideproxy`'s (first) TLS listener.
    pub addr: SocketAddr,
    /// `serve`'s admin listener, when it has one.
    pub admin: Option<SocketAddr>,
    /// `sideproxy`'s HTTPS_PROXY listener, when it has one.
    pub https_proxy: Option<SocketAddr>,
    /// `serve`'s TLS listener (`LISTEN_TLS_ADDRESS`), when it has one.
    pub tls: Option<SocketAddr>,
    child: Option<Child>,
    stderr: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
    /// While set, stderr is not read: the pipe fills and the child's writes block.
    stall: Arc<std::sync::atomic::AtomicBool>,
}

/// How a server ended.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    /// How long it took to exit after SIGTERM.
    pub took: Duration,
    /// Everything written to stderr.
    pub stderr: String,
}

/// The listeners a `listening` log line names.
struct Listeners {
    addr: SocketAddr,
    admin: Option<SocketAddr>,
    https_proxy: Option<SocketAddr>,
    tls: Option<SocketAddr>,
}

impl Listeners {
    /// From the first complete line of `stderr` that says `listening`, in either log
    /// format: `serve` logs `address` and `admin` (`Some(ADDR)` or `None`), `sideproxy`
    /// logs `tls` (a list) and `https_proxy`.
    fn logged(stderr: &str) -> Option<Self> {
        let complete = &stderr[..stderr.rfind('\n')?];
        let line = complete.lines().find(|l| l.contains("listening"))?;
        let json: Option<serde_json::Value> = serde_json::from_str(line).ok();
        let field = |key: &str| -> Option<SocketAddr> {
            let value = match &json {
                Some(v) => v.get(key)?.as_str()?,
                None => line.split_once(&format!(" {key}="))?.1,
            };
            let value = value.strip_prefix("Some(").unwrap_or(value);
            let value = value.strip_prefix('[').unwrap_or(value);
            let end = value.find([' ', ',', ')', ']']).unwrap_or(value.len());
            value[..end].parse().ok()
        };
        Some(Self {
            addr: field("address").or_else(|| field("tls"))?,
            admin: field("admin"),
            https_proxy: field("https_proxy"),
            tls: field("tls_address"),
        })
    }
}

impl Server {
    /// `tokenizer serve --listen-address 127.0.0.1:0 --open-key OPEN_KEY ARGS`, waiting
    /// until it has logged `listening` and accepts connections. `envs` are set in the
    /// child's environment.
    pub fn start(open_key: &str, args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::start_pinned(open_key, args, envs, false)
    }

    /// [`Server::start`], trusting `ca` upstream with loopback exempt from the
    /// destination guard (where the test upstreams live).
    pub fn start_trusting(
        ca: &TestCa,
        open_key: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        let ca_file = ca.pem_file();
        let mut all = vec![
            "--upstream-ca-file",
            &ca_file,
            "--upstream-allow-cidrs",
            "127.0.0.0/8",
        ];
        all.extend_from_slice(args);
        Self::start(open_key, &all, envs)
    }

    /// Like [`Server::start`]; with `one_cpu`, the child may run on CPU 0 only (as under
    /// `taskset -c 0`), so it picks its single-CPU (current-thread) runtime.
    pub fn start_pinned(
        open_key: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        one_cpu: bool,
    ) -> Self {
        let mut cmd = command();
        cmd.arg("serve")
            .args(["--listen-address", "127.0.0.1:0", "--open-key", open_key])
            .args(args)
            // Tests read injected credentials back from echo upstreams, which the
            // reflection guard would mask; tests of the guard turn it on.
            .args(
                (!args.iter().any(|a| a.starts_with("--reflection-guard")))
                    .then_some("--reflection-guard=false"),
            )
            .envs(envs.iter().copied());
        if one_cpu {
            pin_to_cpu_0(&mut cmd);
        }
        Self::launch(cmd).unwrap_or_else(|e| panic!("tokenizer serve did not start:\n{e}"))
    }

    /// Start `cmd`, a long-running subcommand told to listen on port 0, and wait until it
    /// has logged a `listening` line naming its listeners and accepts connections. On
    /// failure (exit, or no listener within 20 s), everything it wrote to stderr.
    pub fn launch(mut cmd: Command) -> Result<Self, String> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start tokenizer");
        let mut pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let stall = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stalled = stall.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                if stalled.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
                }
            }
        });
        let mut server = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: None,
            https_proxy: None,
            tls: None,
            child: Some(child),
            stderr,
            reader: Some(reader),
            stall,
        };
        let up = wait_until(Duration::from_secs(20), || {
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                return Some(Err(status));
            }
            let logged = Listeners::logged(&server.stderr_text())?;
            TcpStream::connect_timeout(&logged.addr, Duration::from_millis(200))
                .is_ok()
                .then_some(Ok(logged))
        });
        match up {
            Some(Ok(logged)) => {
                server.addr = logged.addr;
                server.admin = logged.admin;
                server.https_proxy = logged.https_proxy;
                server.tls = logged.tls;
                Ok(server)
            }
            Some(Err(status)) => {
                server.child = None;
                if let Some(r) = server.reader.take() {
                    let _ = r.join();
                }
                Err(format!("exited with {status}: {}", server.stderr_text()))
            }
            None => Err(format!("not listening after 20s: {}", server.stderr_text())),
        }
    }

    /// Stop (`true`) or resume reading the child's stderr, as a stalled log shipper would.
    pub fn stall_stderr(&self, stalled: bool) {
        self.stall
            .store(stalled, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every IPv4 TCP address the child listens on, from `/proc` (for a listener its log
    /// does not name: the sidecar's admin listener).
    pub fn listeners(&self) -> Vec<SocketAddr> {
        let pid = self.pid();
        let sockets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .filter_map(|link| {
                let inode = link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?;
                Some(inode.to_owned())
            })
            .collect();
        let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap();
        table
            .lines()
            .skip(1)
            .filter_map(|row| {
                // sl local_address rem_address st … inode
                let cols: Vec<&str> = row.split_whitespace().collect();
                let inode = *cols.get(9)?;
                if cols[3] != "0A" || !sockets.iter().any(|s| s == inode) {
                    return None;
                }
                let (ip, port) = cols[1].split_once(':')?;
                let ip = u32::from_str_radix(ip, 16).ok()?.to_ne_bytes();
                Some(SocketAddr::from((ip, u16::from_str_radix(port, 16).ok()?)))
            })
            .collect()
    }

    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A reqwest client that sends every request through this server.
    pub fn client(&self) -> reqwest::Client {
        super::init();
        reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(self.proxy_url()).unwrap())
            .build()
            .unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// The exit status if the process has already ended (it should not have).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    /// What the server has written to stderr so far.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// SIGTERM, then wait up to `timeout` for the exit (SIGKILL and panic after that).
    /// Blocks the calling thread: call it from a multi-threaded runtime or a plain test.
    pub fn stop_within(mut self, timeout: Duration) -> Stopped {
        let mut child = self.child.take().expect("server running");
        let kill = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(kill.success(), "kill -TERM failed: {kill}");
        let sent = Instant::now();
        let Some(status) = wait_until(timeout, || child.try_wait().unwrap()) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "tokenizer serve still running {timeout:?} after SIGTERM; stderr:\n{}",
                self.stderr_text()
            );
        };
        let took = sent.elapsed();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let stderr = self.stderr_text();
        super::assert_no_panic("tokenizer process", &stderr);
        Stopped {
            status,
            took,
            stderr,
        }
    }

    /// [`Server::stop_within`] ten seconds.
    pub fn stop(self) -> Stopped {
        self.stop_within(Duration::from_secs(10))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if let Some(r) = self.reader.take() {
                let _ = r.join();
            }
            if !std::thread::panicking() {
                super::assert_no_panic("tokenizer process", &self.stderr_text());
            }
        }
    }
}
