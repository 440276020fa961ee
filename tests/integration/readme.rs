//! The README's "Try it on this machine" block, run exactly as written (bash, in a
//! directory laid out like a checkout after the quick start: `target/release/tokenizer`
//! is this build's binary, `scripts/echo-api.py` the repository's), offline.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::binary::BIN;

/// The first ```sh block after the heading `## {heading}`.
fn sh_block(readme: &str, heading: &str) -> String {
    let at = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README has no section {heading:?}"));
    let rest = &readme[at..];
    let start = rest.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = rest[start..].find("\n```").expect("the block ends");
    rest[start..start + end].to_owned()
}

#[test]
fn the_readme_try_it_block_works_offline() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let block = sh_block(&readme, "Try it on this machine");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("target/release")).unwrap();
    std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
    std::os::unix::fs::symlink(BIN, dir.path().join("target/release/tokenizer")).unwrap();
    std::fs::copy(
        format!("{root}/scripts/echo-api.py"),
        dir.path().join("scripts/echo-api.py"),
    )
    .unwrap();
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", &block])
        .current_dir(dir.path())
        .env_remove("OPEN_KEY")
        .env_remove("SEAL_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that whatever it started goes with it.
        .process_group(0);
    for var in crate::support::CURL_VARS {
        cmd.env_remove(var);
    }
    let child = cmd.spawn().expect("bash runs");
    let pgid = child.id();
    let output = {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let got = rx.recv_timeout(Duration::from_secs(90));
        // SAFETY: kill(2) on the process group bash led; nothing else shares it.
        unsafe {
            libc::kill(-(pgid as i32), libc::SIGKILL);
        }
        got.expect("the block finished within 90 s").unwrap()
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the block failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("received credential: Bearer sk-test-not-a-real-key-42"),
        "the API did not get the key:\n{stdout}\n{stderr}"
    );
    let echoed = stdout
        .lines()
        .find(|l| l.contains("\"authorization\""))
        .unwrap_or_else(|| panic!("no echo in:\n{stdout}\n{stderr}"));
    assert!(echoed.contains("[REDACTED]"), "{echoed}");
    assert!(!echoed.contains("sk-test-not-a-real-key-42"), "{echoed}");
    assert!(stdout.contains("\"path\": \"/v1/models\""), "{stdout}");
}
