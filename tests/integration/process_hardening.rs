//! The process protects what it holds: the real binary makes itself non-dumpable with a
//! zero core limit (no core file, no ptrace or /proc/PID/mem by another user), and an
//! admin listener never starts unprotected by an empty token.

use std::time::Duration;

use serde_json::json;
use tokenizer::secret::OpenKey;

use crate::support::attack::real;
use crate::support::binary::{self, Server};
use crate::support::{seal_for, wait_until};

/// The real binary makes itself non-dumpable and sets a zero core limit (soft and
/// hard). Non-dumpable shows as /proc/PID files owned by root though the process runs
/// as another user; as root the test runs the binary as nobody to see that.
#[test]
fn the_server_is_not_dumpable_and_has_no_core_limit() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;

    let key = OpenKey::generate();
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    // As nobody, the binary must be where nobody can read it: a copy outside the
    // checkout (which may sit under a 0700 home directory).
    let copy_dir = tempfile::tempdir().unwrap();
    let mut cmd = if root {
        use std::os::unix::fs::PermissionsExt;
        let perms = |mode| std::fs::Permissions::from_mode(mode);
        std::fs::set_permissions(copy_dir.path(), perms(0o755)).unwrap();
        let copy = copy_dir.path().join("tokenizer");
        std::fs::copy(binary::BIN, &copy).unwrap();
        std::fs::set_permissions(&copy, perms(0o755)).unwrap();
        let mut cmd = binary::command_at(&copy);
        cmd.uid(65534).gid(65534);
        cmd
    } else {
        binary::command()
    };
    cmd.arg("serve")
        .args(["--listen-address", "127.0.0.1:0", "--open-key"])
        .arg(&*key.to_hex());
    let server = Server::launch(cmd).unwrap_or_else(|e| panic!("{e}"));
    let pid = server.pid();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..], ["0", "0", "bytes"], "{core}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(uid, 0, "cannot observe dumpability of a root process");
    for file in ["status", "mem", "environ"] {
        let owner = std::fs::metadata(format!("/proc/{pid}/{file}"))
            .unwrap()
            .uid();
        assert_eq!(
            owner, 0,
            "/proc/{pid}/{file} owned by {owner}: the process is dumpable"
        );
    }
    let stopped = server.stop();
    assert!(stopped.status.success(), "{}", stopped.stderr);
    assert!(
        !stopped.stderr.contains("could not disable core dumps"),
        "{}",
        stopped.stderr
    );
}

/// First outside attack (issue 13), also found: an empty admin token. `serve` and
/// `sideproxy` with `ADMIN_TOKEN=""` refuse to start (exit 2) and name the variable.
#[test]
fn an_empty_admin_token_refuses_to_start() {
    let key = OpenKey::generate();
    let sealed = seal_for(&key, &real(json!({})));
    let dir = tempfile::tempdir().unwrap();
    for sub in ["serve", "sideproxy"] {
        let mut cmd = binary::command();
        cmd.arg(sub)
            .env("OPEN_KEY", key.to_hex().as_str())
            .env("TARGETS", "api.test=SEALED")
            .env("SEALED", &sealed)
            .env("CA_DIR", dir.path())
            .env("ADMIN_ADDRESS", "127.0.0.1:0")
            .env("ADMIN_TOKEN", "");
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let status = wait_until(Duration::from_secs(10), || child.try_wait().unwrap());
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut stderr = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(2),
            "{sub} started: {stderr}"
        );
        assert!(stderr.contains("ADMIN_TOKEN"), "{sub}: {stderr}");
    }
}
