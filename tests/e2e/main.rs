//! End-to-end test of the sandbox machine (issue 5), built from network namespaces.
//!
//! ```text
//!  shell ns                                    tokenizer ns               internet ns
//!  ┌───────────────────────────────────┐       ┌──────────────────┐       ┌──────────────────────┐
//!  │ curl, openai/anthropic SDKs, node,│       │ tokenizer serve  │       │ fake_api.py :443     │
//!  │ gh — dummy keys                   │       │ :8080, fly.toml  │       │ api.openai.com,      │
//!  │ /etc/hosts: api.* -> 127.0.0.1    │ veth  │ env + test CA,   │ veth  │ api.anthropic.com,   │
//!  │ tokenizer sideproxy :443 ─────────┼──────▶│ pins to the fake ├──────▶│ api.github.com; cert │
//!  │  (cli-config.json env, sealed     │       │ servers          │       │ from the test CA     │
//!  │   secrets from seal-secrets.sh)   │       └──────────────────┘       └──────────────────────┘
//!  └───────────────────────────────────┘
//! ```
//!
//! The deployment files are the configuration: the tokenizer gets fly.toml's `[env]`, the
//! sidecar and the shell get their `env` from cli-config.json, the secrets are sealed by
//! scripts/seal-secrets.sh (with a stand-in `fly` that records what it would stage), and
//! containers/shell/start.sh runs unchanged with its defaults: `ip netns exec` bind-mounts
//! `/etc/netns/<shell>/{hosts,ssl,profile.d}` over `/etc`, so what it changes stays in the
//! shell's copies. The clients run with dummy keys: curl (the image's example), the
//! OpenAI and Anthropic Python SDKs and the OpenAI Node SDK (a plain and a streamed call
//! each), and `gh api user`. The fake servers refuse anything but the real keys and
//! record every request; the test then checks what arrived, and that no process in the
//! shell's namespace ever held a real key.
//!
//! Needs root and `ip netns` (CI runs `.ci/run` as root); without them the test fails,
//! unless TOKENIZER_E2E=skip. It never touches the host's trust store, /etc/hosts or
//! routes, and checks so at the end.

mod certs;
mod deploy;
mod dns;
mod dual_resolution;
mod git_push;
mod host;
mod machine;
mod netns;
mod procs;
mod requests;
mod tools;
mod transparent;
mod watch;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use deploy::{container, seal_secrets};
use host::HostState;
use machine::{
    check_nothing_logged, check_sdk_requests, check_watched, run_sdk_clients, shell_env,
    sidecar_env, start_internet, start_tokenizer, write_shell_etc,
};
use netns::Namespaces;
use procs::{Finished, Proc};
use tools::Tools;
use watch::EnvWatcher;

const BIN: &str = env!("CARGO_BIN_EXE_tokenizer");
const OPENAI: &str = "api.openai.com";
const ANTHROPIC: &str = "api.anthropic.com";
const GITHUB: &str = "api.github.com";
const API_HOSTS: [&str; 3] = [OPENAI, ANTHROPIC, GITHUB];
/// The sandbox app of fly.sandbox.toml.
const SANDBOX_APP: &str = "proxypilot";

// What fake_api.py answers.
const OPENAI_TEXT: &str = "Hello from the fake OpenAI API";
const OPENAI_STREAM: &str = "Hello from the fake OpenAI stream";
const ANTHROPIC_TEXT: &str = "Hello from the fake Anthropic API";
const ANTHROPIC_STREAM: &str = "Hello from the fake Anthropic stream";
const GITHUB_LOGIN: &str = "e2e-octocat";
/// fake_api.py streams 6 pieces 0.2 s apart: 1 s from the first to the last. A proxy
/// that buffered the response would deliver them all at once.
const MIN_STREAM_SPREAD: f64 = 0.5;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn sandbox_machine_with_real_clients() {
    run_e2e("hosts-file mode", run_machine);
}

/// Run one end-to-end machine with the clients' tools (see [`isolated`]).
pub fn run_e2e(what: &str, machine: fn(&Tools) -> Vec<String>) {
    isolated(what, || {
        let started = Instant::now();
        let tools = Tools::prepare();
        eprintln!(
            "e2e ({what}): tools ready in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        let names = machine(&tools);
        tools.restore_certifi();
        names
    });
}

/// Run one end-to-end machine: one run at a time on this machine (runs share
/// target/e2e-python, whose certifi the start script changes, and /etc/netns; this
/// blocks until an earlier run is done), then check that nothing of it is left — its
/// namespaces (the names `machine` returns) and their /etc/netns entries — and that the
/// host is as it was.
pub fn isolated(what: &str, machine: impl FnOnce() -> Vec<String>) {
    if !preflight() {
        return;
    }
    std::fs::create_dir_all(root().join("target")).unwrap();
    let lock = std::fs::File::create(root().join("target/e2e.lock")).unwrap();
    lock.lock().unwrap();
    let started = Instant::now();
    let host_before = HostState::capture();

    let names = machine();

    // The guard has run: nothing of the machine is left.
    let left = netns::list();
    for name in &names {
        assert!(!left.contains(name), "namespace {name} was not deleted");
        assert!(
            !netns::etc_dir(name).exists(),
            "{} was not removed",
            netns::etc_dir(name).display()
        );
    }
    if !host_before.has_etc_netns() {
        netns::remove_etc_netns();
    }
    assert_eq!(
        HostState::capture(),
        host_before,
        "the test changed the host's /etc/hosts, trust store, profile.d, links, routes \
         or firewall"
    );
    eprintln!(
        "e2e ({what}): passed in {:.1}s in all",
        started.elapsed().as_secs_f64()
    );
}

/// Build the machine, run the clients, check everything; returns the namespace names
/// (deleted by the time it returns, whether it returns or panics).
fn run_machine(tools: &Tools) -> Vec<String> {
    let t0 = Instant::now();
    let tmp = temp_dir();
    let dir = tmp.path();
    // The real keys: only the fake servers (to check them) and the sealing step see them.
    let real = RealKeys::generate();
    let ns = Namespaces::create("");
    let names = ns.names();
    // From now on, watch every process in the shell's namespace: the sidecar, the start
    // script and what it runs, the clients.
    let watcher = EnvWatcher::start(Namespaces::net_id(&ns.shell), real.all());
    let mut servers = Servers::default();

    // The shell's /etc: hosts (localhost and flycast; start.sh adds the API hosts).
    let etc = ns.etc(&ns.shell);
    write_shell_etc(
        &etc,
        &format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             {}\ttokenizer.flycast\n",
            netns::TOKENIZER_ADDR
        ),
    );

    let internet = start_internet(&mut servers, &ns.internet, tools, dir, &real, &[]);
    let (serve, seal_key) = start_tokenizer(&mut servers, &ns.tokenizer, dir, &internet.ca);

    // Deploy time: scripts/seal-secrets.sh seals the real keys (bearer binding: no
    // Fly-Src here) and stages them with `fly secrets set`, here a stand-in.
    let sidecar_auth = format!("sidecar-{}", random_hex(16));
    let staged = seal_secrets(dir, &seal_key, &sidecar_auth, &real);

    // The sidecar, in the shell's namespace, with cli-config.json's env and secrets.
    let sidecar_spec = container("sideproxy");
    let ca_dir = dir.join("sideproxy");
    std::fs::create_dir(&ca_dir).unwrap();
    let sidecar_env = sidecar_env(&sidecar_spec, &staged, &ca_dir, &sidecar_auth);
    let mut cmd = Namespaces::command(&ns.shell, Path::new(BIN), &sidecar_env);
    for arg in sidecar_spec["cmd"].as_array().unwrap() {
        cmd.arg(arg.as_str().unwrap());
    }
    let sidecar = servers.start("sideproxy", cmd, "sideproxy listening");

    // The shell container: start.sh with no command (it idles, as in the container).
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    let shell_env = shell_env(&container("shell"), tools, &home);
    let mut cmd = Namespaces::command(&ns.shell, Path::new("/bin/sh"), &shell_env);
    cmd.arg(root().join("containers/shell/start.sh"));
    let shell = servers.start_within(
        "start-shell",
        cmd,
        "start-shell: ready",
        Duration::from_secs(90),
    );
    eprintln!("e2e: machine up in {:.1}s", t0.elapsed().as_secs_f64());
    let sidecar_ca = std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap();
    check_start_script(&etc, &sidecar_ca, tools);
    let hosts = std::fs::read_to_string(etc.join("hosts")).unwrap();
    for addr in ["127.0.0.1", "::1"] {
        let line = format!("{addr} {}", API_HOSTS.join(" "));
        assert!(
            hosts.lines().any(|l| l == line),
            "start.sh did not add {line:?} to the shell's hosts:\n{hosts}"
        );
    }

    // The shell cannot reach the fake internet but through the tokenizer.
    let direct = Proc::spawn("direct", {
        let mut cmd = Namespaces::command(&ns.shell, &tools.curl, &shell_env);
        cmd.args([
            "-sS",
            "-k",
            "--connect-timeout",
            "3",
            &format!("https://{}/", netns::INTERNET_ADDR),
        ]);
        cmd
    })
    .finish(Duration::from_secs(10));
    assert!(
        !direct.status.is_some_and(|s| s.success()),
        "the shell reached the fake internet directly: {}",
        direct.stdout
    );

    let t1 = Instant::now();
    let shell_ns = ns.shell.clone();
    let client = |name: &str, cwd: &Path, argv: &[&str]| -> Finished {
        let mut cmd = Namespaces::command(&shell_ns, Path::new("/bin/sh"), &shell_env);
        cmd.args(["-c", ". /etc/profile.d/sideproxy.sh && exec \"$@\"", "sh"])
            .args(argv)
            .current_dir(cwd);
        run_client(name, cmd)
    };
    run_sdk_clients(&client, dir, tools, &machine::Scripts::in_checkout());
    let clients_took = t1.elapsed();

    check_watched(&watcher.stop(), &sidecar, &shell);
    let n = check_sdk_requests(&internet, &sidecar_auth, &staged);
    check_nothing_logged(&[&serve, &sidecar, &shell], &real);
    eprintln!(
        "e2e: {n} requests checked; clients took {:.1}s; machine total {:.1}s",
        clients_took.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );

    drop((internet, serve, sidecar, shell));
    drop(servers);
    drop(ns);
    names
}

/// A temporary directory of this run (removed by the next run if this one is killed).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("{}{}-", netns::TMP_PREFIX, std::process::id()))
        .tempdir()
        .unwrap()
}

/// Run a client to completion (60 s at most); it must succeed.
pub fn run_client(name: &str, cmd: Command) -> Finished {
    let done = Proc::spawn(name, cmd).finish(Duration::from_secs(60)).ok();
    eprintln!(
        "e2e: {name}: {:.1}s: {}",
        done.took.as_secs_f64(),
        done.stdout.trim()
    );
    done
}

/// Fail unless the test can run; false when TOKENIZER_E2E=skip.
fn preflight() -> bool {
    if std::env::var("TOKENIZER_E2E").as_deref() == Ok("skip") {
        eprintln!("e2e: TOKENIZER_E2E=skip: the end-to-end test is skipped");
        return false;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    if euid != "0" {
        panic!(
            "the end-to-end test builds the sandbox machine from network namespaces and must \
             run as root (CI runs .ci/run as root); this process's effective uid is {euid}. \
             Run it as root, or set TOKENIZER_E2E=skip to skip it."
        );
    }
    if let Err(e) = netns::try_ip(&["netns", "list"]) {
        panic!(
            "the end-to-end test needs `ip netns` (Debian package iproute2; .ci/run \
             installs it): {e}. Set TOKENIZER_E2E=skip to skip it."
        );
    }
    true
}

/// Long-running processes of the machine; on a panic, their output is printed.
#[derive(Default)]
struct Servers {
    procs: Vec<Arc<Proc>>,
}

impl Servers {
    fn start(&mut self, name: &str, cmd: Command, ready: &str) -> Arc<Proc> {
        self.start_within(name, cmd, ready, Duration::from_secs(20))
    }

    fn start_within(
        &mut self,
        name: &str,
        cmd: Command,
        ready: &str,
        timeout: Duration,
    ) -> Arc<Proc> {
        let mut proc = Proc::spawn(name, cmd);
        let waited = proc.wait_for(ready, timeout);
        let proc = Arc::new(proc);
        self.procs.push(proc.clone());
        if let Err(e) = waited {
            panic!("{e}");
        }
        proc
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for p in &self.procs {
                eprintln!("{}", p.transcript());
            }
            return;
        }
        // A panic in a proxy's request task only shows as a dropped connection to its
        // client: any `panicked` in a server's output fails the test.
        for p in &self.procs {
            assert!(
                !p.stdout().contains("panicked") && !p.stderr().contains("panicked"),
                "{} panicked:\n{}",
                p.name,
                p.transcript()
            );
        }
    }
}

/// The real credentials of this run.
struct RealKeys {
    openai: String,
    anthropic: String,
    github: String,
}

impl RealKeys {
    fn all(&self) -> Vec<String> {
        vec![
            self.openai.clone(),
            self.anthropic.clone(),
            self.github.clone(),
        ]
    }

    fn generate() -> Self {
        Self {
            openai: format!("sk-proj-REAL{}", random_hex(24)),
            anthropic: format!("sk-ant-api03-REAL{}", random_hex(24)),
            github: format!("ghp_REAL{}", random_hex(18)),
        }
    }
}

fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
    hex::encode(buf)
}

/// Copy `src` (a file or a directory tree) to `dest`, readable (and, where it was,
/// executable) by every user: what a test runs as another user must not depend on the
/// checkout being readable to others (a clone under a 0700 home is not).
pub fn readable_copy(src: &Path, dest: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(src).unwrap();
    if meta.is_dir() {
        std::fs::create_dir_all(dest).unwrap();
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755)).unwrap();
        for entry in std::fs::read_dir(src).unwrap() {
            let entry = entry.unwrap();
            readable_copy(&entry.path(), &dest.join(entry.file_name()));
        }
        return;
    }
    std::fs::copy(src, dest).unwrap();
    let mode = if meta.permissions().mode() & 0o111 != 0 {
        0o755
    } else {
        0o644
    };
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Can users other than the owner reach and read `path`: every directory above it
/// searchable, and it readable, by others?
pub fn others_can_read(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.permissions().mode());
    path.ancestors().skip(1).all(|dir| mode(dir) & 0o001 != 0) && mode(path) & 0o004 != 0
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn set(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_owned(), value.to_owned()));
}

/// What start.sh changed: the shell's trust store, profile and certifi.
fn check_start_script(etc: &Path, sidecar_ca: &str, tools: &Tools) {
    let bundle = std::fs::read_to_string(etc.join("ssl/certs/ca-certificates.crt")).unwrap();
    assert!(
        bundle.contains(sidecar_ca.trim()),
        "start.sh did not add the sidecar's CA to the shell's ca-certificates.crt"
    );
    assert_eq!(
        std::fs::read_to_string(etc.join("ssl/certs/sideproxy-ca.pem")).unwrap(),
        sidecar_ca
    );
    assert!(
        tools.certifi_bundle().contains(sidecar_ca.trim()),
        "start.sh did not add the sidecar's CA to the venv's certifi"
    );
    let profile = std::fs::read_to_string(etc.join("profile.d/sideproxy.sh")).unwrap();
    assert!(
        profile.contains("NODE_EXTRA_CA_CERTS=/etc/ssl/certs/sideproxy-ca.pem"),
        "{profile}"
    );
}

fn check_stream(name: &str, doc: &Value, text: &str) {
    assert_eq!(doc["stream"], text, "{name}: {doc}");
    assert_eq!(doc["stream_events"], 6, "{name}: {doc}");
    let spread = doc["stream_spread"].as_f64().unwrap();
    assert!(
        spread >= MIN_STREAM_SPREAD,
        "{name}: the streamed pieces arrived within {spread:.3}s: the response was \
         buffered on the way ({doc})"
    );
}
