//! End-to-end test of `git push` through the sidecar: the real git client, with no
//! credential at all, pushes to a real git server that wants the real token, and the
//! sealed secret decides which refs it may touch.
//!
//! ```text
//!  shell ns (tkz-gshell-PID)           tokenizer ns              internet ns
//!  ┌─────────────────────────────┐     ┌──────────────────┐      ┌─────────────────────────────┐
//!  │ git (no credential helper,  │     │ tokenizer serve  │      │ git_server.py :443 (TLS,    │
//!  │  fresh HOME), curl          │     │ :8080, pinned to │      │  test CA): github.test and  │
//!  │ hosts: github.test,         │veth │ the fake internet│ veth │  evil.test = git            │
//!  │  evil.test, maps.test       ├────▶│ (UPSTREAM_*)     ├─────▶│  http-backend behind Basic  │
//!  │  -> 127.0.0.1               │     └──────────────────┘      │  auth (the real token);     │
//!  │ tokenizer sideproxy :443    │                               │  maps.test = ?key= API      │
//!  └─────────────────────────────┘                               └─────────────────────────────┘
//! ```
//!
//! The secrets, sealed with `tokenizer seal`'s shorthand: github.test gets
//! `basic_auth_processor` (user `x-access-token`, the real token), `allowed_hosts`
//! [github.test] and `allowed_git_refs` [refs/heads/agent/*]; maps.test gets
//! `query_param_processor` (`key`). The sidecar's TARGETS map github.test *and* evil.test
//! to the github secret, and maps.test to the maps one.
//!
//! First the control, from the internet's own namespace with the real token in the URL:
//! the server refuses git without credentials, and accepts a push to `main` and to
//! evil.test (so a refusal later is the tokenizer's doing, not the server's). Then, from
//! the shell: clone, push to `agent/x` (and a push big enough that git sends it chunked,
//! after its probe), all succeed; a push to `main`, a deletion of `main`, a push to
//! `agent/deep/x` (`*` is one segment), a push of `agent/y` and `main` together, a big
//! push to `main`, all fail with 403 and change nothing, and no receive-pack request
//! carrying them reaches the server; a push to evil.test fails and evil.test sees no
//! request at all. curl gets the maps API's answer with the real key injected (and the
//! key the API quotes back masked), and a request that brings its own `key` is refused
//! before the API. The real credentials never show in the shell: not in its files, not in
//! its processes' environments or command lines, not in anything its clients printed or
//! received.
//!
//! Needs root, `ip netns`, git and python3; TOKENIZER_E2E=skip skips it. Everything it
//! made (namespaces, their /etc/netns entries, temporary directories, processes) is
//! removed on the way out, on failure too.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use crate::certs::InternetCa;
use crate::netns::{self, Namespaces};
use crate::procs::{self, Finished, Proc};
use crate::tools;
use crate::watch::EnvWatcher;
use crate::{BIN, Servers, path, random_hex, root, temp_dir};

const GITHUB: &str = "github.test";
const EVIL: &str = "evil.test";
const MAPS: &str = "maps.test";
const GIT_USER: &str = "x-access-token";
const AGENT_REFS: &str = "refs/heads/agent/*";
/// Bigger than git's http.postBuffer (1 MiB): git probes, then sends the pack chunked.
const BIG_FILE: usize = 1536 * 1024;

#[test]
fn git_push_through_the_sidecar() {
    crate::isolated("git push", run_git_push);
}

/// The real credentials of this run, and the forms they would take on the wire.
struct Real {
    token: String,
    maps_key: String,
    /// `base64(x-access-token:TOKEN)`: what the Authorization header carries.
    basic: String,
}

impl Real {
    fn generate() -> Self {
        let token = format!("ghs_REAL{}", random_hex(18));
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{GIT_USER}:{token}"));
        Self {
            token,
            maps_key: format!("AIzaSyREAL{}", random_hex(14)),
            basic,
        }
    }

    fn all(&self) -> Vec<String> {
        vec![
            self.token.clone(),
            self.basic.clone(),
            self.maps_key.clone(),
        ]
    }

    /// The first credential `text` holds, if any.
    fn found_in(&self, text: &[u8]) -> Option<&'static str> {
        let hay = String::from_utf8_lossy(text);
        [
            (&self.token, "the real token"),
            (&self.basic, "the real Basic credential"),
            (&self.maps_key, "the real maps key"),
        ]
        .into_iter()
        .find(|(s, _)| hay.contains(s.as_str()))
        .map(|(_, what)| what)
    }
}

/// What git_server.py logged, one JSON document per request.
struct ForgeLog(PathBuf);

impl ForgeLog {
    fn entries(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.0)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn len(&self) -> usize {
        self.entries().len()
    }

    /// The requests since `mark` (a [`ForgeLog::len`]). The server logs a request before
    /// it answers, so once a client is done, its requests are here.
    fn since(&self, mark: usize) -> Vec<Value> {
        self.entries().split_off(mark)
    }
}

fn receive_packs(entries: &[Value]) -> Vec<&Value> {
    entries
        .iter()
        .filter(|e| {
            e["method"] == "POST"
                && e["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/git-receive-pack"))
        })
        .collect()
}

fn refs_of(entry: &Value) -> Vec<&str> {
    entry["refs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// git in the root namespace on the test's own files (the bare repositories).
fn local_git(git: &Path, home: &Path, args: &[&str]) -> String {
    let out = Command::new(git)
        .args(args)
        .env_clear()
        .envs(git_env(home))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The commit `rev` names in the bare repository `bare`, if it exists.
fn rev(git: &Path, home: &Path, bare: &Path, rev: &str) -> Option<String> {
    let out = Command::new(git)
        .arg("--git-dir")
        .arg(bare)
        .args(["rev-parse", "--verify", "-q", &format!("{rev}^{{commit}}")])
        .env_clear()
        .envs(git_env(home))
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A git environment with no system or user configuration but `home`'s (empty).
fn git_env(home: &Path) -> Vec<(String, String)> {
    [
        ("PATH", "/usr/bin:/bin".to_owned()),
        ("HOME", path(home)),
        ("LANG", "C.UTF-8".to_owned()),
        ("GIT_CONFIG_NOSYSTEM", "1".to_owned()),
        ("GIT_TERMINAL_PROMPT", "0".to_owned()),
        ("GIT_AUTHOR_NAME", "E2E Agent".to_owned()),
        ("GIT_AUTHOR_EMAIL", "agent@sandbox.test".to_owned()),
        ("GIT_COMMITTER_NAME", "E2E Agent".to_owned()),
        ("GIT_COMMITTER_EMAIL", "agent@sandbox.test".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A bare repository `root/host/repo.git` that takes pushes, with one commit on main.
fn make_repo(git: &Path, home: &Path, root: &Path, host: &str) -> PathBuf {
    let bare = root.join(host).join("repo.git");
    std::fs::create_dir_all(&bare).unwrap();
    local_git(
        git,
        home,
        &["init", "-q", "--bare", "-b", "main", &path(&bare)],
    );
    local_git(
        git,
        home,
        &[
            "--git-dir",
            &path(&bare),
            "config",
            "http.receivepack",
            "true",
        ],
    );
    let seed = root.join(format!("{host}-seed"));
    local_git(git, home, &["init", "-q", "-b", "main", &path(&seed)]);
    std::fs::write(seed.join("README.md"), format!("# {host}\n")).unwrap();
    let s = path(&seed);
    local_git(git, home, &["-C", &s, "add", "README.md"]);
    local_git(git, home, &["-C", &s, "commit", "-q", "-m", "initial"]);
    local_git(git, home, &["-C", &s, "push", "-q", &path(&bare), "main"]);
    bare
}

/// A process run to completion (60 s at most), not required to succeed.
fn run(name: &str, cmd: Command) -> Finished {
    let done = Proc::spawn(name, cmd).finish(Duration::from_secs(60));
    eprintln!(
        "e2e: {name}: {:.1}s: {}: {}",
        done.took.as_secs_f64(),
        done.status
            .map_or("timed out".to_owned(), |s| s.to_string()),
        done.stderr
            .lines()
            .find(|l| l.starts_with("error:") || l.starts_with("fatal:"))
            .or_else(|| done.stderr.trim().lines().last())
            .unwrap_or("")
    );
    done
}

fn succeeded(done: &Finished) -> bool {
    done.status.is_some_and(|s| s.success())
}

/// The clients in the shell's namespace; everything they printed is kept, to be searched
/// for the real credentials at the end.
struct Shell<'a> {
    ns: &'a str,
    env: Vec<(String, String)>,
    git: PathBuf,
    curl: PathBuf,
    ca: PathBuf,
    printed: RefCell<Vec<(String, String)>>,
    /// The tokenizer and the sidecar, whose audit lines explain a failure.
    proxies: Vec<std::sync::Arc<Proc>>,
}

impl Shell<'_> {
    /// `git -c credential.helper= ARGS` in `cwd`.
    fn git(&self, name: &str, cwd: &Path, args: &[&str]) -> Finished {
        let mut cmd = Namespaces::command(self.ns, &self.git, &self.env);
        cmd.args(["-c", "credential.helper="])
            .args(args)
            .current_dir(cwd);
        self.keep(run(name, cmd))
    }

    fn git_ok(&self, name: &str, cwd: &Path, args: &[&str]) -> Finished {
        let done = self.git(name, cwd, args);
        assert!(
            succeeded(&done),
            "{name}: `git {}` failed ({:?}):\n{}",
            args.join(" "),
            done.status,
            done.stderr
        );
        done
    }

    /// A push that the tokenizer must refuse: git fails (not a hang) with HTTP `status`.
    fn git_refused(&self, name: &str, cwd: &Path, args: &[&str], status: u16) -> Finished {
        let done = self.git(name, cwd, args);
        assert!(
            done.status.is_some() && !succeeded(&done),
            "{name}: `git {}` should have been refused, but {}:\n{}",
            args.join(" "),
            done.status
                .map_or("it timed out".to_owned(), |s| format!("it exited with {s}")),
            done.stderr
        );
        if !(done.stderr.contains(&format!("error: {status}"))
            || done.stderr.contains(&format!("HTTP {status}")))
        {
            panic!(
                "{name}: git did not report HTTP {status}:\n{}\nwhat the proxies logged \
                 last (which hop lost the answer):\n{}",
                done.stderr,
                self.audit_tail()
            );
        }
        done
    }

    /// The proxies' last audit lines, for a failure message. (Their log writer batches
    /// every 100 ms: on this failure path only, wait that long for the last lines.)
    fn audit_tail(&self) -> String {
        std::thread::sleep(Duration::from_millis(300));
        let mut out = String::new();
        for proc in &self.proxies {
            let log = proc.stderr();
            let lines: Vec<&str> = log.lines().filter(|l| l.contains("::audit")).collect();
            for line in &lines[lines.len().saturating_sub(3)..] {
                let v: Value = serde_json::from_str(line).unwrap_or_default();
                out.push_str(&format!(
                    "  {}: {} {} {}: status {} ({}), {} request bytes\n",
                    proc.name,
                    v["method"],
                    v["host"],
                    v["path"],
                    v["status"],
                    v["decision"],
                    v["request_bytes"]
                ));
            }
        }
        out
    }

    /// `curl -sS -i --cacert <sidecar CA> ARGS`: (status, the whole response).
    fn curl(&self, name: &str, args: &[&str]) -> (u16, String) {
        let mut cmd = Namespaces::command(self.ns, &self.curl, &self.env);
        cmd.args(["-sS", "-i", "--max-time", "30", "--cacert"])
            .arg(&self.ca)
            .args(args);
        let done = self.keep(run(name, cmd));
        assert!(succeeded(&done), "{name}: curl failed: {}", done.stderr);
        let status = done
            .stdout
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no status line: {:?}", done.stdout));
        (status, done.stdout)
    }

    fn keep(&self, done: Finished) -> Finished {
        self.printed.borrow_mut().push((
            done.name.clone(),
            format!("{}\n{}", done.stdout, done.stderr),
        ));
        done
    }
}

/// `tokenizer seal ARGS -` with `secret` on standard input (never on a command line).
fn seal(seal_key: &str, args: &[&str], secret: &str) -> String {
    let out = procs::run_with_input(
        Command::new(BIN)
            .arg("seal")
            .args(args)
            .arg("-")
            .env_clear()
            .env("SEAL_KEY", seal_key),
        secret,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tokenizer seal {args:?} failed ({}): {stderr}",
        out.status
    );
    assert!(
        !stderr.contains(secret),
        "tokenizer seal printed the secret"
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `tokenizer unseal SEALED` (credentials redacted), as JSON.
fn unseal(open_key: &str, sealed: &str) -> Value {
    let out = Command::new(BIN)
        .args(["unseal", sealed])
        .env_clear()
        .env("OPEN_KEY", open_key)
        .output()
        .unwrap();
    assert!(out.status.success(), "tokenizer unseal failed");
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("unseal printed {text:?}: {e}"))
}

/// Every file under `dir` (not following links), with its contents.
fn files_under(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            files_under(&p, out);
        } else if kind.is_file()
            && let Ok(bytes) = std::fs::read(&p)
        {
            out.push((p, bytes));
        }
    }
}

fn run_git_push() -> Vec<String> {
    let git = tools::need("git", "git");
    let curl = tools::need("curl", "curl");
    let python = if Path::new("/usr/bin/python3").exists() {
        PathBuf::from("/usr/bin/python3")
    } else {
        tools::need("python3", "python3")
    };
    let t0 = Instant::now();
    // `dir`: the test's own (the server's repositories and log, the real credentials'
    // config, the control clone). `shell_dir`: everything the shell has (its HOME, its
    // clones, the sidecar's CA directory), searched for the credentials at the end.
    let tmp = temp_dir();
    let dir = tmp.path();
    let shell_tmp = temp_dir();
    let shell_dir = shell_tmp.path();
    let real = Real::generate();
    let ns = Namespaces::create("g");
    let names = ns.names();
    let watcher = EnvWatcher::start(Namespaces::net_id(&ns.shell), real.all());
    let mut servers = Servers::default();

    // The fake internet: the forge and the maps API, certificate from the test CA.
    let ca = InternetCa::create(dir, &[GITHUB, EVIL, MAPS]);
    let repos = dir.join("repos");
    let admin_home = dir.join("admin-home");
    std::fs::create_dir(&admin_home).unwrap();
    let github_bare = make_repo(&git, &admin_home, &repos, GITHUB);
    let evil_bare = make_repo(&git, &admin_home, &repos, EVIL);
    let conf = dir.join("forge.json");
    std::fs::write(
        &conf,
        serde_json::json!({
            "user": GIT_USER,
            "password": real.token,
            "maps_key": real.maps_key,
            "git_hosts": [GITHUB, EVIL],
            "maps_host": MAPS,
        })
        .to_string(),
    )
    .unwrap();
    let log = ForgeLog(dir.join("forge.jsonl"));
    let mut cmd = Namespaces::command(
        &ns.internet,
        &python,
        &[("PATH".into(), "/usr/bin:/bin".into())],
    );
    cmd.arg(root().join("tests/e2e/git_server.py"))
        .args(["--port", "443", "--cert"])
        .arg(&ca.chain)
        .arg("--key")
        .arg(&ca.key)
        .arg("--config")
        .arg(&conf)
        .arg("--repos")
        .arg(&repos)
        .arg("--log")
        .arg(&log.0);
    servers.start("git-server", cmd, "git-server listening");
    let inet_etc = ns.etc(&ns.internet);
    std::fs::write(
        inet_etc.join("hosts"),
        format!(
            "127.0.0.1\tlocalhost\n{}\t{GITHUB} {EVIL} {MAPS}\n",
            netns::INTERNET_ADDR
        ),
    )
    .unwrap();

    // The control, in the internet's namespace with the real token in the URL: the
    // server wants it, and with it takes a push to main and to evil.test.
    let control_dir = dir.join("control");
    std::fs::create_dir(&control_dir).unwrap();
    let mut control_env = git_env(&admin_home);
    control_env.push(("GIT_SSL_CAINFO".into(), path(&ca.ca)));
    let control = |name: &str, cwd: &Path, args: &[&str]| -> Finished {
        let mut cmd = Namespaces::command(&ns.internet, &git, &control_env);
        cmd.args(["-c", "credential.helper="])
            .args(args)
            .current_dir(cwd);
        run(name, cmd)
    };
    let mark = log.len();
    let done = control(
        "control-no-credentials",
        &control_dir,
        &["ls-remote", &format!("https://{GITHUB}/repo.git")],
    );
    assert!(
        !succeeded(&done),
        "the forge served git without credentials"
    );
    let seen = log.since(mark);
    assert!(
        !seen.is_empty()
            && seen
                .iter()
                .all(|e| e["status"] == 401 && e["auth"] == "missing"),
        "the forge did not answer 401 to git without credentials: {seen:#?}"
    );
    for host in [GITHUB, EVIL] {
        let url = format!("https://{GIT_USER}:{}@{host}/repo.git", real.token);
        let clone = control_dir.join(host);
        let done = control(
            &format!("control-clone-{host}"),
            &control_dir,
            &["clone", "-q", &url, &path(&clone)],
        );
        assert!(succeeded(&done), "control clone of {host}: {}", done.stderr);
        std::fs::write(clone.join("control.txt"), "pushed directly\n").unwrap();
        let c = path(&clone);
        assert!(succeeded(&control(
            "control-add",
            &clone,
            &["-C", &c, "add", "."]
        )));
        assert!(succeeded(&control(
            "control-commit",
            &clone,
            &["-C", &c, "commit", "-q", "-m", "control"]
        )));
        let done = control(
            &format!("control-push-main-{host}"),
            &clone,
            &["-C", &c, "push", "-q", "origin", "HEAD:main"],
        );
        assert!(succeeded(&done), "control push to {host}: {}", done.stderr);
    }
    let control_head = local_git(
        &git,
        &admin_home,
        &["-C", &path(&control_dir.join(GITHUB)), "rev-parse", "HEAD"],
    );
    let main = rev(&git, &admin_home, &github_bare, "main").unwrap();
    assert_eq!(main, control_head, "the control push did not land on main");
    let mut curl_control = Namespaces::command(&ns.internet, &curl, &git_env(&admin_home));
    curl_control
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&ca.ca)
        .arg(format!(
            "https://{MAPS}/v1/geocode?address=x&key={}",
            real.maps_key
        ));
    let done = run("control-maps", curl_control);
    assert_eq!(done.stdout, "200", "the maps API refused its own key");
    let mut curl_control = Namespaces::command(&ns.internet, &curl, &git_env(&admin_home));
    curl_control
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&ca.ca)
        .arg(format!("https://{MAPS}/v1/geocode?address=x"));
    let done = run("control-maps-no-key", curl_control);
    assert_eq!(done.stdout, "403", "the maps API answered without a key");
    let evil_refs_before = local_git(
        &git,
        &admin_home,
        &["--git-dir", &path(&evil_bare), "show-ref"],
    );
    eprintln!(
        "e2e: git push: forge and control ready in {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    // The tokenizer and the sealed secrets (the shorthand of `tokenizer seal`).
    let (serve, open_key, seal_key) = crate::machine::start_tokenizer_for(
        &mut servers,
        &ns.tokenizer,
        dir,
        &ca,
        &[GITHUB, EVIL, MAPS],
    );
    let gh_sealed = seal(
        &seal_key,
        &[
            "--host",
            GITHUB,
            "--basic-user",
            GIT_USER,
            "--git-ref",
            AGENT_REFS,
            "--no-auth",
        ],
        &real.token,
    );
    let maps_sealed = seal(
        &seal_key,
        &["--host", MAPS, "--query-param", "key", "--no-auth"],
        &real.maps_key,
    );
    let doc = unseal(&open_key, &gh_sealed);
    assert_eq!(doc["basic_auth_processor"]["user"], GIT_USER, "{doc}");
    assert_eq!(doc["allowed_hosts"], serde_json::json!([GITHUB]), "{doc}");
    assert_eq!(
        doc["allowed_git_refs"],
        serde_json::json!([AGENT_REFS]),
        "{doc}"
    );
    assert!(
        real.found_in(doc.to_string().as_bytes()).is_none(),
        "unseal showed the credential: {doc}"
    );
    let doc = unseal(&open_key, &maps_sealed);
    assert_eq!(doc["query_param_processor"]["param"], "key", "{doc}");
    assert_eq!(doc["allowed_hosts"], serde_json::json!([MAPS]), "{doc}");

    // The shell: its hosts file sends the three names to the sidecar on 127.0.0.1:443.
    let etc = ns.etc(&ns.shell);
    std::fs::write(
        etc.join("hosts"),
        format!("127.0.0.1\tlocalhost {GITHUB} {EVIL} {MAPS}\n::1\tlocalhost ip6-localhost\n"),
    )
    .unwrap();
    let ca_dir = shell_dir.join("sideproxy");
    std::fs::create_dir(&ca_dir).unwrap();
    let side_env: Vec<(String, String)> = [
        ("PATH", "/usr/bin:/bin".to_owned()),
        (
            "TARGETS",
            format!("{GITHUB}=GH_SEALED,{EVIL}=GH_SEALED,{MAPS}=MAPS_SEALED"),
        ),
        ("GH_SEALED", gh_sealed.clone()),
        ("MAPS_SEALED", maps_sealed.clone()),
        ("PROXY", format!("http://{}:8080", netns::TOKENIZER_ADDR)),
        ("PORT", "443".to_owned()),
        ("BIND_ADDRESSES", "127.0.0.1".to_owned()),
        ("CA_DIR", path(&ca_dir)),
        ("LOG_FORMAT", "json".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut cmd = Namespaces::command(&ns.shell, Path::new(BIN), &side_env);
    cmd.arg("sideproxy");
    let sidecar = servers.start("sideproxy", cmd, "sideproxy listening");

    let home = shell_dir.join("home");
    std::fs::create_dir(&home).unwrap();
    let ca_pem = ca_dir.join("ca.pem");
    let mut shell_env = git_env(&home);
    shell_env.push(("GIT_SSL_CAINFO".into(), path(&ca_pem)));
    let shell = Shell {
        ns: &ns.shell,
        env: shell_env,
        git: git.clone(),
        curl: curl.clone(),
        ca: ca_pem,
        printed: RefCell::new(Vec::new()),
        proxies: vec![serve.clone(), sidecar.clone()],
    };
    eprintln!(
        "e2e: git push: machine up in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let t1 = Instant::now();
    let bare_ref = |name: &str| rev(&git, &admin_home, &github_bare, name);

    // Clone, with nothing but the URL: the tokenizer answers the forge's Basic auth.
    let mark = log.len();
    let work = home.join("repo");
    shell.git_ok(
        "clone",
        &home,
        &[
            "clone",
            "-q",
            &format!("https://{GITHUB}/repo.git"),
            &path(&work),
        ],
    );
    let w = path(&work);
    let head = |shell: &Shell| {
        shell
            .git_ok("rev-parse", &work, &["-C", &w, "rev-parse", "HEAD"])
            .stdout
            .trim()
            .to_owned()
    };
    assert_eq!(head(&shell), main, "the clone is not at the server's main");
    let seen = log.since(mark);
    assert!(!seen.is_empty(), "the clone reached no server");
    for e in &seen {
        assert!(
            e["host"] == GITHUB && e["auth"] == "ok" && e["from"] == netns::TOKENIZER_INET_ADDR,
            "the clone's requests must reach the forge from the tokenizer with the real \
             credential (no 401 for the sandbox to answer): {e}"
        );
    }

    let commit = |file: &str, contents: &[u8]| -> String {
        std::fs::write(work.join(file), contents).unwrap();
        shell.git_ok("add", &work, &["-C", &w, "add", file]);
        shell.git_ok(
            "commit",
            &work,
            &["-C", &w, "commit", "-q", "-m", &format!("add {file}")],
        );
        head(&shell)
    };

    // A push to a ref the secret allows: it lands.
    let first = commit("agent.txt", b"written by the agent\n");
    let mark = log.len();
    shell.git_ok(
        "push-agent-x",
        &work,
        &["-C", &w, "push", "origin", "HEAD:refs/heads/agent/x"],
    );
    assert_eq!(
        bare_ref("refs/heads/agent/x").as_deref(),
        Some(first.as_str()),
        "the push to agent/x did not land"
    );
    let seen = log.since(mark);
    let posts = receive_packs(&seen);
    assert!(
        posts.len() == 1
            && refs_of(posts[0]) == ["refs/heads/agent/x"]
            && posts[0]["status"] == 200,
        "expected one receive-pack request for agent/x: {seen:#?}"
    );

    // Pushes that touch a ref the secret does not allow: refused before the forge.
    let refused: [(&str, &[&str], &[&str]); 4] = [
        ("push-main", &["HEAD:main"], &["main"]),
        ("delete-main", &[":main"], &["main"]),
        (
            "push-agent-deep",
            &["HEAD:refs/heads/agent/deep/x"],
            &["refs/heads/agent/deep/x"],
        ),
        (
            "push-agent-y-and-main",
            &["HEAD:refs/heads/agent/y", "HEAD:main"],
            &["refs/heads/agent/y", "main"],
        ),
    ];
    for (name, refspecs, touched) in refused {
        let mark = log.len();
        let mut args = vec!["-C", w.as_str(), "push", "origin"];
        args.extend_from_slice(refspecs);
        shell.git_refused(name, &work, &args, 403);
        assert_eq!(
            bare_ref("main").as_deref(),
            Some(main.as_str()),
            "{name}: the server's main changed"
        );
        for r in touched {
            if *r != "main" {
                assert_eq!(bare_ref(r), None, "{name}: {r} was created");
            }
        }
        let seen = log.since(mark);
        let posts = receive_packs(&seen);
        assert!(
            posts.is_empty(),
            "{name}: a receive-pack request reached the forge: {posts:#?}"
        );
    }

    // A push bigger than git's post buffer: a probe, then the pack, chunked.
    let random = || {
        let mut big = vec![0u8; BIG_FILE];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut big)
            .unwrap();
        big
    };
    let big_head = commit("big.bin", &random());
    let mark = log.len();
    shell.git_ok(
        "push-big-agent",
        &work,
        &["-C", &w, "push", "origin", "HEAD:refs/heads/agent/big"],
    );
    assert_eq!(
        bare_ref("refs/heads/agent/big").as_deref(),
        Some(big_head.as_str()),
        "the big push to agent/big did not land"
    );
    let seen = log.since(mark);
    let probes = receive_packs(&seen)
        .iter()
        .filter(|e| refs_of(e).is_empty())
        .count();
    let pack = receive_packs(&seen)
        .into_iter()
        .find(|e| refs_of(e) == ["refs/heads/agent/big"])
        .unwrap_or_else(|| panic!("no receive-pack request for agent/big: {seen:#?}"));
    assert!(
        pack["body_len"].as_u64().unwrap() > BIG_FILE as u64,
        "the big pack arrived cut short: {pack}"
    );
    eprintln!(
        "e2e: the big pack reached the forge {} ({} bytes), after {probes} probe(s)",
        if pack["chunked"] == true {
            "chunked"
        } else {
            "with a Content-Length"
        },
        pack["body_len"]
    );
    // Again with new big contents (else the pack would be small: the server has them).
    commit("big2.bin", &random());
    let mark = log.len();
    shell.git_refused(
        "push-big-main",
        &work,
        &["-C", &w, "push", "origin", "HEAD:main"],
        403,
    );
    assert_eq!(bare_ref("main").as_deref(), Some(main.as_str()));
    let seen = log.since(mark);
    eprintln!(
        "e2e: push-big-main: {} receive-pack request(s) reached the forge (git's probe)",
        receive_packs(&seen).len()
    );
    for post in receive_packs(&seen) {
        // git's probe (a bare flush packet, no commands) may pass; no command may.
        assert!(
            refs_of(post).is_empty(),
            "push-big-main: a ref update reached the forge: {post}"
        );
    }

    // Another host behind the same secret: the tokenizer refuses it, nothing arrives.
    let mark = log.len();
    shell.git_refused(
        "push-evil",
        &work,
        &[
            "-C",
            &w,
            "push",
            &format!("https://{EVIL}/repo.git"),
            "HEAD:refs/heads/agent/x",
        ],
        400,
    );
    let seen = log.since(mark);
    assert!(
        seen.iter().all(|e| e["host"] != EVIL),
        "requests for {EVIL} reached it: {seen:#?}"
    );
    assert_eq!(
        local_git(
            &git,
            &admin_home,
            &["--git-dir", &path(&evil_bare), "show-ref"]
        ),
        evil_refs_before,
        "{EVIL}'s refs changed"
    );

    // curl, with its own (dummy) Basic credential: the sidecar drops it, the real one
    // is injected.
    let mark = log.len();
    let (status, response) = shell.curl(
        "curl-info-refs",
        &[
            "-u",
            &format!("{GIT_USER}:dummy"),
            &format!("https://{GITHUB}/repo.git/info/refs?service=git-upload-pack"),
        ],
    );
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("# service=git-upload-pack"), "{response}");
    let seen = log.since(mark);
    assert!(
        seen.len() == 1 && seen[0]["auth"] == "ok",
        "the forge did not get the real credential: {seen:#?}"
    );

    // The query-key API: the key is added to the URL; the API's echo of it is masked.
    let mark = log.len();
    let (status, response) = shell.curl(
        "curl-maps",
        &[&format!("https://{MAPS}/v1/geocode?address=x")],
    );
    assert_eq!(status, 200, "{response}");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let doc: Value = serde_json::from_str(body.trim())
        .unwrap_or_else(|e| panic!("the maps API answered {response:?}: {e}"));
    assert_eq!(doc["status"], "OK", "{doc}");
    assert!(
        doc["request"]
            .as_str()
            .is_some_and(|r| r.starts_with("/v1/geocode?address=x&key=")),
        "the API's echo of the request is not there: {doc}"
    );
    eprintln!(
        "e2e: the maps API's echo, as the client got it: {}",
        doc["request"]
    );
    let seen = log.since(mark);
    assert!(
        seen.len() == 1
            && seen[0]["host"] == MAPS
            && seen[0]["auth"] == "ok"
            && seen[0]["query_names"] == serde_json::json!(["address", "key"]),
        "the maps API did not get exactly the real key: {seen:#?}"
    );
    // A request that brings its own key is refused, not sent on with two.
    let mark = log.len();
    let (status, response) = shell.curl(
        "curl-maps-own-key",
        &[&format!("https://{MAPS}/v1/geocode?address=x&key=dummy")],
    );
    assert_eq!(status, 400, "{response}");
    let seen = log.since(mark);
    assert!(
        seen.is_empty(),
        "the request with its own key reached the API: {seen:#?}"
    );
    let clients_took = t1.elapsed();

    // Nothing of the real credentials in the shell: its processes, its files, what its
    // clients printed and received, the sidecar's and the tokenizer's logs.
    let watched = watcher.stop();
    assert!(
        watched.leaks.is_empty(),
        "real credentials in the shell's namespace:\n{}",
        watched.leaks.join("\n")
    );
    let comms: std::collections::BTreeSet<&str> = watched
        .procs
        .values()
        .flat_map(|s| s.comms.iter().map(String::as_str))
        .collect();
    // git and its HTTP helper live for a push's round trips (the watcher scans every
    // 25 ms); a curl call can come and go between two scans.
    assert!(
        comms.contains("git") && comms.iter().any(|c| c.starts_with("git-remote-http")),
        "the environment watcher missed the git clients: {comms:?}"
    );
    let sidecar_seen = watched
        .procs
        .get(&sidecar.pid())
        .unwrap_or_else(|| panic!("the watcher never saw the sidecar: {:?}", watched.procs));
    assert!(
        sidecar_seen.env_vars.iter().any(|v| v == "GH_SEALED="),
        "{:?}",
        sidecar_seen.env_vars
    );
    let mut files = Vec::new();
    files_under(shell_dir, &mut files);
    files_under(&etc, &mut files);
    assert!(
        files.iter().any(|(p, _)| p.ends_with("repo/.git/config"))
            && files.iter().any(|(p, _)| p.ends_with("repo/big.bin")),
        "the file scan missed the clone"
    );
    for (p, bytes) in &files {
        if let Some(what) = real.found_in(bytes) {
            panic!("{what} is in the shell's file {}", p.display());
        }
    }
    for (name, printed) in shell.printed.borrow().iter() {
        if let Some(what) = real.found_in(printed.as_bytes()) {
            panic!("{what} is in what {name} printed or received:\n{printed}");
        }
    }
    // What the proxies logged last is written within 100 ms (their log writer batches).
    // A fixed wait, not a poll: what is checked is that nothing was logged, so no line
    // marks the end; after 300 ms everything logged so far is there to search.
    std::thread::sleep(Duration::from_millis(300));
    for proc in [&serve, &sidecar] {
        let out = format!("{}{}", proc.stdout(), proc.stderr());
        if let Some(what) = real.found_in(out.as_bytes()) {
            panic!("{} logged {what}", proc.name);
        }
    }
    // Nothing of the sandbox's side reached the forge: no proxy header, no sealed secret.
    for e in log.entries() {
        let headers = e["headers"].to_string();
        assert!(
            !headers.contains("proxy-"),
            "a proxy header reached the forge: {e}"
        );
    }
    eprintln!(
        "e2e: git push: {} forge requests; clients took {:.1}s; machine total {:.1}s",
        log.len(),
        clients_took.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );

    drop((serve, sidecar, shell));
    drop(servers);
    drop(ns);
    names
}
