//! The sandbox machine built from network namespaces, and the guard that tears it down.
//!
//! ```text
//!  shell ns (tkz-shell-PID)        tokenizer ns (tkz-tok-PID)          internet ns (tkz-inet-PID)
//!  lo: 127.0.0.1, ::1              lo                                  lo
//!  eth0 10.213.0.1/30 ──veth── to-shell 10.213.0.2/30
//!                                  to-inet 10.213.1.1/30 ──veth── eth0 10.213.1.2/30
//! ```
//!
//! The veth pairs are created inside the namespaces (`ip -n`), no address or route is
//! added to the root namespace, and the namespaces do not route for each other: the shell
//! can reach the tokenizer's :8080 and nothing beyond it. Per-namespace files live in
//! `/etc/netns/NAME/`, which `ip netns exec NAME` bind-mounts over `/etc`.
//!
//! [`Namespaces`] deletes everything it made when dropped, on panic too: it kills every
//! process in the namespaces, deletes them (their veths go with them) and removes their
//! `/etc/netns/NAME` directories. Namespaces left by a run that was killed outright are
//! removed by the next run.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Address of the shell's end of the shell–tokenizer link.
pub const SHELL_ADDR: &str = "10.213.0.1";
/// The tokenizer as the shell sees it (flycast, in the real machine).
pub const TOKENIZER_ADDR: &str = "10.213.0.2";
/// The tokenizer's end of the tokenizer–internet link.
pub const TOKENIZER_INET_ADDR: &str = "10.213.1.1";
/// The fake API servers.
pub const INTERNET_ADDR: &str = "10.213.1.2";
/// Another address of the fake internet (on its loopback), routed only in the
/// transparent test: a resolver no resolv.conf names, a server no hosts file names.
pub const OTHER_ADDR: &str = "10.213.9.9";
/// IPv6 addresses of the same links (transparent test only).
pub const SHELL_ADDR6: &str = "fd00:213::1";
pub const TOKENIZER_ADDR6: &str = "fd00:213::2";
pub const TOKENIZER_INET_ADDR6: &str = "fd00:213:1::1";
pub const INTERNET_ADDR6: &str = "fd00:213:1::2";
/// The internet link's subnet (the tokenizer's UPSTREAM_ALLOW_CIDRS).
pub const INTERNET_NET: &str = "10.213.1.0/30";

const PREFIX: &str = "tkz-";
/// Temporary directories of a run are `TMP_PREFIX<pid>-…` in the temporary directory.
pub const TMP_PREFIX: &str = "tkz-e2e-";

/// Run `ip ARGS`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) -> String {
    try_ip(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Run `ip ARGS`; on failure, a message with its stderr.
pub fn try_ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Names of the network namespaces that exist now.
pub fn list() -> Vec<String> {
    try_ip(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// `/etc/netns/NAME`.
pub fn etc_dir(name: &str) -> PathBuf {
    Path::new("/etc/netns").join(name)
}

/// The three namespaces of one run. Dropping it removes them.
pub struct Namespaces {
    pub shell: String,
    pub tokenizer: String,
    pub internet: String,
    /// Namespaces made so far, in order (a failure half-way still cleans up these).
    made: Vec<String>,
}

impl Namespaces {
    /// Create and wire the namespaces (see the module documentation). `tag` tells one
    /// test's machine from another's: `tkz-{tag}shell-PID`, ….
    pub fn create(tag: &str) -> Self {
        remove_stale();
        let pid = std::process::id();
        let mut ns = Self {
            shell: format!("{PREFIX}{tag}shell-{pid}"),
            tokenizer: format!("{PREFIX}{tag}tok-{pid}"),
            internet: format!("{PREFIX}{tag}inet-{pid}"),
            made: Vec::new(),
        };
        for name in [ns.shell.clone(), ns.tokenizer.clone(), ns.internet.clone()] {
            ip(&["netns", "add", &name]);
            ns.made.push(name.clone());
            ip(&["-n", &name, "link", "set", "lo", "up"]);
        }
        let (shell, tok, inet) = (&ns.shell, &ns.tokenizer, &ns.internet);
        ip(&[
            "-n", tok, "link", "add", "to-shell", "type", "veth", "peer", "name", "eth0", "netns",
            shell,
        ]);
        ip(&[
            "-n", tok, "link", "add", "to-inet", "type", "veth", "peer", "name", "eth0", "netns",
            inet,
        ]);
        for (name, dev, addr) in [
            (shell, "eth0", SHELL_ADDR),
            (tok, "to-shell", TOKENIZER_ADDR),
            (tok, "to-inet", TOKENIZER_INET_ADDR),
            (inet, "eth0", INTERNET_ADDR),
        ] {
            ip(&["-n", name, "addr", "add", &format!("{addr}/30"), "dev", dev]);
            ip(&["-n", name, "link", "set", dev, "up"]);
        }
        ns
    }

    /// The namespaces' names.
    pub fn names(&self) -> Vec<String> {
        vec![
            self.shell.clone(),
            self.tokenizer.clone(),
            self.internet.clone(),
        ]
    }

    /// Let the shell reach the fake internet directly, over IPv4 and IPv6, as a machine
    /// on the real internet can (the transparent test: only the firewall stops it). The
    /// tokenizer's namespace routes between the two links; the internet also answers on
    /// [`OTHER_ADDR`], an address of no server the shell is told about.
    pub fn route_shell_to_internet(&self) {
        let (shell, tok, inet) = (&self.shell, &self.tokenizer, &self.internet);
        for (name, dev, addr) in [
            (shell, "eth0", SHELL_ADDR6),
            (tok, "to-shell", TOKENIZER_ADDR6),
            (tok, "to-inet", TOKENIZER_INET_ADDR6),
            (inet, "eth0", INTERNET_ADDR6),
        ] {
            ip(&[
                "-n",
                name,
                "-6",
                "addr",
                "add",
                &format!("{addr}/64"),
                "dev",
                dev,
                "nodad",
            ]);
        }
        ip(&[
            "-n",
            inet,
            "addr",
            "add",
            &format!("{OTHER_ADDR}/32"),
            "dev",
            "lo",
        ]);
        ip(&[
            "-n",
            shell,
            "route",
            "add",
            "default",
            "via",
            TOKENIZER_ADDR,
        ]);
        ip(&[
            "-n",
            shell,
            "-6",
            "route",
            "add",
            "default",
            "via",
            TOKENIZER_ADDR6,
        ]);
        ip(&[
            "-n",
            inet,
            "route",
            "add",
            "default",
            "via",
            TOKENIZER_INET_ADDR,
        ]);
        ip(&[
            "-n",
            inet,
            "-6",
            "route",
            "add",
            "default",
            "via",
            TOKENIZER_INET_ADDR6,
        ]);
        ip(&["-n", tok, "route", "add", OTHER_ADDR, "via", INTERNET_ADDR]);
        // /proc/sys/net belongs to the namespace of the process that opens it.
        for key in ["ipv4/ip_forward", "ipv6/conf/all/forwarding"] {
            let file = format!("/proc/sys/net/{key}");
            let status = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    tok,
                    "sh",
                    "-c",
                    &format!("echo 1 > {file}"),
                ])
                .status()
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(status.success(), "echo 1 > {file} in {tok} failed");
        }
    }

    /// Create `/etc/netns/NAME/` for one of this run's namespaces.
    pub fn etc(&self, name: &str) -> PathBuf {
        assert!(self.made.iter().any(|n| n == name), "not ours: {name}");
        let dir = etc_dir(name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        dir
    }

    /// The namespace's identity as `/proc/PID/ns/net` shows it (`net:[INODE]`).
    pub fn net_id(name: &str) -> String {
        let meta = std::fs::metadata(Path::new("/run/netns").join(name))
            .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
        format!("net:[{}]", meta.ino())
    }

    /// `ip netns exec NAME PROGRAM` with exactly the environment `envs`.
    pub fn command(name: &str, program: &Path, envs: &[(String, String)]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", name])
            .arg(program)
            .env_clear()
            .envs(envs.iter().map(|(k, v)| (k, v)));
        cmd
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.made.iter().rev() {
            remove(name);
        }
        remove_etc_netns();
    }
}

/// Remove `/etc/netns` if it is empty (something else may be using it; an earlier run
/// that was killed may have made it). A namespace's directory can stay busy for a moment
/// after its processes are killed, so this retries for up to two seconds.
pub fn remove_etc_netns() {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match std::fs::remove_dir("/etc/netns") {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if Instant::now() > deadline => {
                let left: Vec<String> = std::fs::read_dir("/etc/netns")
                    .map(|d| {
                        d.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                eprintln!("e2e cleanup: rmdir /etc/netns: {e}; it holds {left:?}");
                return;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Processes whose network namespace is `name`.
pub fn pids(name: &str) -> Vec<u32> {
    try_ip(&["netns", "pids", name])
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Kill everything in `name`, delete it and its `/etc/netns/NAME`. Never panics.
fn remove(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = pids(name);
        if pids.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("e2e cleanup: processes {pids:?} in {name} survive SIGKILL");
            break;
        }
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(u32::to_string))
            .status();
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Err(e) = try_ip(&["netns", "del", name]) {
        eprintln!("e2e cleanup: {e}");
    }
    let dir = etc_dir(name);
    if dir.exists()
        && let Err(e) = std::fs::remove_dir_all(&dir)
    {
        eprintln!("e2e cleanup: rm -r {}: {e}", dir.display());
    }
}

/// Whether process `pid` is gone (so what it left may be removed).
fn gone(pid: u32) -> bool {
    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Remove this test's namespaces and temporary directories left by runs whose process
/// is gone (killed with SIGKILL, say, so no destructor ran).
fn remove_stale() {
    let mut names = list();
    if let Ok(dir) = std::fs::read_dir("/etc/netns") {
        names.extend(
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned()),
        );
    }
    names.sort();
    names.dedup();
    for name in names {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if gone(pid) {
            eprintln!("e2e: removing {name}, left by an earlier run");
            remove(&name);
        }
    }
    if let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix(TMP_PREFIX)
                .and_then(|rest| rest.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(gone) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}
