//! What the shell's clients need, found or installed once and reused across runs:
//!
//! Both live in `target/`, or under /var/tmp when other users cannot reach `target/`.
//!
//! - `target/e2e-python`: a virtual environment with `tests/e2e/requirements.txt` (the
//!   shell image's `/opt/sdk`). Made WITHOUT the system's site-packages, so its certifi is
//!   its own copy: the start script appends the sidecar's CA to it, and the test puts the
//!   pristine copy back before and after each run.
//! - `target/e2e-node`: `npm install` of `tests/e2e/package.json` (the OpenAI Node SDK).
//! - `curl`, `gh`, `node` and `npm` from PATH (`.ci/run` installs them).
//!
//! A stamp file holding the requirements it was made from skips the installation on
//! later runs.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tools {
    /// The venv's `bin/`, first on the shell's PATH.
    pub venv_bin: PathBuf,
    /// The venv's interpreter.
    pub python: PathBuf,
    /// certifi's bundle in the venv, and its pristine copy.
    certifi: PathBuf,
    certifi_pristine: PathBuf,
    /// Directory holding `node_modules/openai`.
    pub node_dir: PathBuf,
    pub curl: PathBuf,
    pub gh: PathBuf,
    pub node: PathBuf,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where the tools live: `target/` when other users can reach it (the transparent
/// test's agent runs them), else a directory of their own under /var/tmp (a clone under
/// a 0700 home directory is unreadable to the agent).
fn home() -> PathBuf {
    let target = root().join("target");
    if crate::others_can_read(&target) {
        return target;
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default();
    let dir = PathBuf::from(format!("/var/tmp/tokenizer-e2e-tools-{uid}"));
    std::fs::create_dir_all(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The absolute path of `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

pub fn need(program: &str, package: &str) -> PathBuf {
    which(program).unwrap_or_else(|| {
        panic!(
            "the end-to-end test needs `{program}` on PATH (Debian package {package}; \
             .ci/run installs it). Set TOKENIZER_E2E=skip to skip this test."
        )
    })
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("the end-to-end test needs {what}: {e}"));
    assert!(
        out.status.success(),
        "the end-to-end test needs {what}; it failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Tools {
    pub fn prepare() -> Self {
        let curl = need("curl", "curl");
        let gh = need("gh", "gh");
        let node = need("node", "nodejs");
        need("npm", "npm");
        need("python3", "python3-venv");

        let venv = home().join("e2e-python");
        let venv_bin = venv.join("bin");
        let python = venv_bin.join("python3");
        let requirements = root().join("tests/e2e/requirements.txt");
        let wanted = std::fs::read_to_string(&requirements).unwrap();
        // The system's interpreter when there is one: the venv links to its base, which
        // the transparent test's unprivileged user must be able to run (a pyenv build
        // under /root is not).
        let base = if Path::new("/usr/bin/python3").exists() {
            PathBuf::from("/usr/bin/python3")
        } else {
            need("python3", "python3-venv")
        };
        let wanted = format!("{}\n{wanted}", base.display());
        let stamp = venv.join("requirements.stamp");
        let certifi_pristine = venv.join("certifi-pristine.pem");
        if !(python.exists()
            && certifi_pristine.exists()
            && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()))
        {
            let _ = std::fs::remove_dir_all(&venv);
            run(
                Command::new(&base).args(["-m", "venv"]).arg(&venv),
                "python3 -m venv (Python 3 with its venv module)",
            );
            run(
                Command::new(&python)
                    .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
                    .arg("-r")
                    .arg(&requirements),
                "pip install -r tests/e2e/requirements.txt",
            );
            let certifi = certifi_where(&python);
            std::fs::copy(&certifi, &certifi_pristine).unwrap();
            std::fs::write(&stamp, &wanted).unwrap();
        }
        let certifi = certifi_where(&python);

        let node_dir = home().join("e2e-node");
        let package = std::fs::read_to_string(root().join("tests/e2e/package.json")).unwrap();
        let stamp = node_dir.join("package.stamp");
        if !(node_dir.join("node_modules/openai/package.json").exists()
            && std::fs::read_to_string(&stamp).ok().as_deref() == Some(package.as_str()))
        {
            let _ = std::fs::remove_dir_all(&node_dir);
            std::fs::create_dir_all(&node_dir).unwrap();
            std::fs::write(node_dir.join("package.json"), &package).unwrap();
            run(
                Command::new("npm")
                    .args([
                        "install",
                        "--no-audit",
                        "--no-fund",
                        "--no-package-lock",
                        "--loglevel=error",
                    ])
                    .current_dir(&node_dir),
                "npm install (tests/e2e/package.json)",
            );
            std::fs::write(&stamp, &package).unwrap();
        }

        let tools = Self {
            venv_bin,
            python,
            certifi,
            certifi_pristine,
            node_dir,
            curl,
            gh,
            node,
        };
        tools.restore_certifi();
        tools
    }

    /// Put certifi's bundle back as pip installed it (the start script appends to it).
    pub fn restore_certifi(&self) {
        if let Err(e) = std::fs::copy(&self.certifi_pristine, &self.certifi) {
            eprintln!("e2e: restoring {}: {e}", self.certifi.display());
        }
    }

    /// certifi's bundle now.
    pub fn certifi_bundle(&self) -> String {
        std::fs::read_to_string(&self.certifi).unwrap_or_default()
    }

    /// PATH for the shell: the venv first (as the image's ENV PATH=/opt/sdk/bin:$PATH),
    /// then wherever curl, gh and node live, then the usual directories.
    pub fn shell_path(&self) -> String {
        let mut dirs: Vec<PathBuf> = vec![self.venv_bin.clone()];
        for p in [&self.curl, &self.gh, &self.node] {
            dirs.push(p.parent().unwrap().to_owned());
        }
        for d in [
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ] {
            dirs.push(PathBuf::from(d));
        }
        let mut seen = Vec::new();
        dirs.retain(|d| {
            let new = !seen.contains(d);
            seen.push(d.clone());
            new
        });
        std::env::join_paths(dirs)
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for Tools {
    fn drop(&mut self) {
        self.restore_certifi();
    }
}

fn certifi_where(python: &Path) -> PathBuf {
    let out = Command::new(python)
        .args(["-c", "import certifi; print(certifi.where())"])
        .output()
        .expect("run the venv's python");
    assert!(out.status.success(), "certifi is not in the e2e venv");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
