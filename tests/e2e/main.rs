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
mod dual_resolution;
mod host;
mod netns;
mod procs;
mod requests;
mod tools;
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use certs::InternetCa;
use deploy::{container, env_of, fly_toml_env, genkey, image_env, seal_secrets};
use host::HostState;
use netns::Namespaces;
use procs::{Finished, Proc};
use requests::{check_requests, read_requests};
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
    if !preflight() {
        return;
    }
    // One run at a time on this machine: runs share target/e2e-python (whose certifi
    // the start script changes) and /etc/netns. Blocks until an earlier run is done.
    std::fs::create_dir_all(root().join("target")).unwrap();
    let lock = std::fs::File::create(root().join("target/e2e.lock")).unwrap();
    lock.lock().unwrap();
    let started = Instant::now();
    let host_before = HostState::capture();
    let tools = Tools::prepare();
    eprintln!(
        "e2e: tools ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let names = run_machine(&tools);

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
    tools.restore_certifi();
    if !host_before.has_etc_netns() {
        netns::remove_etc_netns();
    }
    assert_eq!(
        HostState::capture(),
        host_before,
        "the test changed the host's /etc/hosts, trust store, profile.d, links or routes"
    );
    eprintln!(
        "e2e: passed in {:.1}s in all",
        started.elapsed().as_secs_f64()
    );
}

/// Build the machine, run the clients, check everything; returns the namespace names
/// (deleted by the time it returns, whether it returns or panics).
fn run_machine(tools: &Tools) -> Vec<String> {
    let t0 = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{}{}-", netns::TMP_PREFIX, std::process::id()))
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    // The real keys: only the fake servers (to check them) and the sealing step see them.
    let real = RealKeys::generate();
    let ns = Namespaces::create();
    let names = vec![ns.shell.clone(), ns.tokenizer.clone(), ns.internet.clone()];
    // From now on, watch every process in the shell's namespace: the sidecar, the start
    // script and what it runs, the clients.
    let watcher = EnvWatcher::start(
        Namespaces::net_id(&ns.shell),
        vec![
            real.openai.clone(),
            real.anthropic.clone(),
            real.github.clone(),
        ],
    );
    let mut servers = Servers::default();

    // The shell's /etc: hosts (localhost and flycast; start.sh adds the API hosts), a
    // copy of the host's ssl directory and an empty profile.d for start.sh to change.
    let etc = ns.etc(&ns.shell);
    std::fs::write(
        etc.join("hosts"),
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             {}\ttokenizer.flycast\n",
            netns::TOKENIZER_ADDR
        ),
    )
    .unwrap();
    let cp = Command::new("cp")
        .arg("-a")
        .arg("/etc/ssl")
        .arg(etc.join("ssl"))
        .status()
        .unwrap();
    assert!(cp.success(), "cp -a /etc/ssl failed");
    std::fs::create_dir(etc.join("profile.d")).unwrap();

    let expected: BTreeMap<&str, String> = [
        (OPENAI, format!("Bearer {}", real.openai)),
        (ANTHROPIC, real.anthropic.clone()),
        (GITHUB, format!("Bearer {}", real.github)),
    ]
    .into_iter()
    .collect();

    // The internet: fake API servers on 443 with a certificate from the test CA.
    let ca = InternetCa::create(dir, &API_HOSTS);
    let keys_file = dir.join("expected-keys.json");
    std::fs::write(&keys_file, serde_json::to_string(&expected).unwrap()).unwrap();
    let requests_log = dir.join("requests.jsonl");
    let mut cmd = Namespaces::command(
        &ns.internet,
        &tools.python,
        &[("PATH".into(), "/usr/bin:/bin".into())],
    );
    cmd.arg(root().join("tests/e2e/fake_api.py"))
        .args(["--port", "443", "--cert"])
        .arg(&ca.chain)
        .arg("--key")
        .arg(&ca.key)
        .arg("--keys")
        .arg(&keys_file)
        .arg("--log")
        .arg(&requests_log);
    let fake = servers.start("fake-api", cmd, "fake-api listening");

    // The tokenizer: fly.toml's [env], its key, and the fake internet.
    let (open_key, seal_key) = genkey();
    let flysrc_pub = dir.join("fly-src.pub");
    let verifying = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    std::fs::write(&flysrc_pub, hex::encode(verifying.to_bytes())).unwrap();
    // The image's ENV, then fly.toml's [env] over it, as on Fly.
    let mut serve_env = image_env();
    serve_env.extend(fly_toml_env());
    serve_env.extend([
        ("OPEN_KEY".to_owned(), open_key),
        (
            "FLYSRC_PUBLIC_KEY_FILE".to_owned(),
            flysrc_pub.display().to_string(),
        ),
        ("UPSTREAM_CA_FILE".to_owned(), ca.ca.display().to_string()),
        (
            "UPSTREAM_RESOLVE".to_owned(),
            API_HOSTS
                .iter()
                .map(|h| format!("{h}={}:443", netns::INTERNET_ADDR))
                .collect::<Vec<_>>()
                .join(","),
        ),
        (
            "UPSTREAM_ALLOW_CIDRS".to_owned(),
            netns::INTERNET_NET.to_owned(),
        ),
    ]);
    let mut cmd = Namespaces::command(&ns.tokenizer, Path::new(BIN), &serve_env);
    cmd.arg("serve");
    let serve = servers.start("tokenizer-serve", cmd, "listening");

    // Deploy time: scripts/seal-secrets.sh seals the real keys (bearer binding: no
    // Fly-Src here) and stages them with `fly secrets set`, here a stand-in.
    let sidecar_auth = format!("sidecar-{}", random_hex(16));
    let staged = seal_secrets(dir, &seal_key, &sidecar_auth, &real);

    // The sidecar, in the shell's namespace, with cli-config.json's env and secrets.
    let sidecar_spec = container("sideproxy");
    let mut sidecar_env = env_of(&sidecar_spec);
    let ca_dir = dir.join("sideproxy");
    std::fs::create_dir(&ca_dir).unwrap();
    set(&mut sidecar_env, "CA_DIR", &ca_dir.display().to_string());
    for secret in sidecar_spec["secrets"].as_array().unwrap() {
        let name = secret["name"].as_str().unwrap();
        let var = secret["env_var"].as_str().unwrap();
        let value = staged
            .get(name)
            .unwrap_or_else(|| panic!("seal-secrets.sh staged no {name} ({staged:?})"));
        set(&mut sidecar_env, var, value);
    }
    set(&mut sidecar_env, "TOKENIZER_AUTH", &sidecar_auth);
    let mut cmd = Namespaces::command(&ns.shell, Path::new(BIN), &sidecar_env);
    for arg in sidecar_spec["cmd"].as_array().unwrap() {
        cmd.arg(arg.as_str().unwrap());
    }
    let sidecar = servers.start("sideproxy", cmd, "sideproxy listening");

    // The shell container: its env from cli-config.json, the image's PATH and
    // NODE_PATH, and start.sh with no command (it idles, as in the container).
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    let mut shell_env = env_of(&container("shell"));
    for (k, v) in [
        ("PATH", tools.shell_path()),
        ("HOME", home.display().to_string()),
        (
            "NODE_PATH",
            tools.node_dir.join("node_modules").display().to_string(),
        ),
        ("LANG", "C.UTF-8".to_owned()),
    ] {
        set(&mut shell_env, k, &v);
    }
    for (k, v) in &shell_env {
        if k.ends_with("_KEY") || k.ends_with("_TOKEN") {
            assert_eq!(v, "dummy", "cli-config.json gives the shell a real {k}?");
        }
    }
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

    let t1 = Instant::now();
    let shell_ns = ns.shell.clone();
    let client = |name: &str, cwd: &Path, argv: &[&str]| -> Finished {
        let mut cmd = Namespaces::command(&shell_ns, Path::new("/bin/sh"), &shell_env);
        cmd.args(["-c", ". /etc/profile.d/sideproxy.sh && exec \"$@\"", "sh"])
            .args(argv)
            .current_dir(cwd);
        let done = Proc::spawn(name, cmd).finish(Duration::from_secs(60)).ok();
        eprintln!(
            "e2e: {name}: {:.1}s: {}",
            done.took.as_secs_f64(),
            done.stdout.trim()
        );
        done
    };
    let examples = root().join("containers/shell/examples");
    let clients_dir = root().join("tests/e2e/clients");

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

    // curl: the image's example, unchanged.
    let out = client("curl", dir, &["sh", &path(&examples.join("openai.sh"))]);
    let doc: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("curl printed no JSON ({e}): {}", out.stdout));
    assert_eq!(doc["choices"][0]["message"]["content"], OPENAI_TEXT);

    // The OpenAI Python SDK: a plain and a streamed completion.
    let out = client(
        "openai-python",
        dir,
        &["python3", &path(&clients_dir.join("openai_sdk.py"))],
    );
    let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(doc["complete"], OPENAI_TEXT);
    check_stream("openai-python", &doc, OPENAI_STREAM);

    // The Anthropic Python SDK: a plain and a streamed message.
    let out = client(
        "anthropic-python",
        dir,
        &["python3", &path(&clients_dir.join("anthropic_sdk.py"))],
    );
    let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(doc["complete"], ANTHROPIC_TEXT);
    check_stream("anthropic-python", &doc, ANTHROPIC_STREAM);
    assert_eq!(doc["stop_reason"], "end_turn");

    // The OpenAI Node SDK: a plain and a streamed completion. An ES module resolves
    // `import "openai"` from its own directory upwards (NODE_PATH is for require() only),
    // so it runs from the directory that holds node_modules.
    let script = tools.node_dir.join("openai_node.mjs");
    std::fs::copy(clients_dir.join("openai_node.mjs"), &script).unwrap();
    let out = client("openai-node", &tools.node_dir, &["node", &path(&script)]);
    let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(doc["complete"], OPENAI_TEXT);
    check_stream("openai-node", &doc, OPENAI_STREAM);

    // gh with GH_TOKEN=dummy.
    let out = client("gh", dir, &["gh", "api", "user"]);
    let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(doc["login"], GITHUB_LOGIN);
    let clients_took = t1.elapsed();

    // No process in the shell's namespace ever held a real key.
    let watched = watcher.stop();
    assert!(
        watched.leaks.is_empty(),
        "real keys in the shell namespace:\n{}",
        watched.leaks.join("\n")
    );
    for (proc, marker) in [
        (&sidecar, "OPENAI_SEALED="),
        (&shell, "OPENAI_API_KEY=dummy"),
    ] {
        let seen = watched.procs.get(&proc.pid()).unwrap_or_else(|| {
            panic!(
                "the environment watcher never saw {} (pid {}): {:?}",
                proc.name,
                proc.pid(),
                watched.procs
            )
        });
        assert!(
            seen.env_vars.iter().any(|v| v.starts_with(marker)),
            "{}'s environment has no {marker}: {:?}",
            proc.name,
            seen.env_vars
        );
    }
    let clients_seen = watched
        .procs
        .keys()
        .filter(|p| **p != sidecar.pid() && **p != shell.pid())
        .count();
    let comms: BTreeSet<&str> = watched
        .procs
        .values()
        .flat_map(|s| s.comms.iter().map(String::as_str))
        .collect();
    assert!(
        clients_seen >= 4
            && comms.contains(&"node")
            && comms.iter().any(|c| c.starts_with("python")),
        "the environment watcher missed the clients: {:?}",
        watched.procs
    );

    // The fake servers got every call, each with the real key and nothing else.
    let sealed: Vec<&String> = staged.values().collect();
    let requests = read_requests(&requests_log);
    check_requests(&requests, &expected, &[sidecar_auth.as_str()], &sealed);
    for (ua, host, method, path, stream) in [
        ("curl/", OPENAI, "POST", "/v1/chat/completions", false),
        (
            "OpenAI/Python",
            OPENAI,
            "POST",
            "/v1/chat/completions",
            false,
        ),
        (
            "OpenAI/Python",
            OPENAI,
            "POST",
            "/v1/chat/completions",
            true,
        ),
        ("Anthropic/Python", ANTHROPIC, "POST", "/v1/messages", false),
        ("Anthropic/Python", ANTHROPIC, "POST", "/v1/messages", true),
        ("OpenAI/JS", OPENAI, "POST", "/v1/chat/completions", false),
        ("OpenAI/JS", OPENAI, "POST", "/v1/chat/completions", true),
        ("GitHub CLI", GITHUB, "GET", "/user", false),
    ] {
        let n = requests
            .iter()
            .filter(|r| {
                r.user_agent().starts_with(ua)
                    && r.host == host
                    && r.method == method
                    && r.path.split('?').next() == Some(path)
                    && r.stream == stream
            })
            .count();
        assert_eq!(
            n, 1,
            "expected one {method} {host}{path} (stream: {stream}) from {ua}; the fake \
             servers saw:\n{requests:#?}"
        );
    }

    // Nothing secret in the logs of the servers in the machine.
    for proc in [&serve, &sidecar, &shell] {
        for key in [&real.openai, &real.anthropic, &real.github] {
            let name = &proc.name;
            assert!(
                !proc.stderr().contains(key.as_str()),
                "{name} logged a real key"
            );
            assert!(
                !proc.stdout().contains(key.as_str()),
                "{name} printed a real key"
            );
        }
    }
    eprintln!(
        "e2e: {} requests checked; clients took {:.1}s; machine total {:.1}s",
        requests.len(),
        clients_took.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );

    drop((fake, serve, sidecar, shell));
    drop(servers);
    drop(ns);
    names
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

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn set(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_owned(), value.to_owned()));
}

/// What start.sh changed: the shell's hosts, trust store, profile and certifi.
fn check_start_script(etc: &Path, sidecar_ca: &str, tools: &Tools) {
    let hosts = std::fs::read_to_string(etc.join("hosts")).unwrap();
    for addr in ["127.0.0.1", "::1"] {
        let line = format!("{addr} {}", API_HOSTS.join(" "));
        assert!(
            hosts.lines().any(|l| l == line),
            "start.sh did not add {line:?} to the shell's hosts:\n{hosts}"
        );
    }
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
