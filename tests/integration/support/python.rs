//! A Python interpreter with the packages in `tests/requirements.txt`.
//!
//! The first test that needs Python makes a virtual environment under `target/`
//! (seeing the system's site-packages, so what `.ci/run` installed is reused) and runs
//! `pip install -r tests/requirements.txt` in it once; later runs find the stamp file and
//! skip pip. So `cargo test` works on a fresh machine with Python 3 and PyPI access.
//! Without Python the tests that need it fail, with a message saying what to install.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The interpreter to run test helpers with.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| prepare().unwrap_or_else(|e| panic!("{e}")))
}

fn prepare() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let requirements = root.join("tests/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).map_err(|e| format!("{e}"))?;
    let venv = root.join("target/test-python");
    let bin = venv.join("bin/python3");
    let stamp = venv.join("requirements.stamp");
    if bin.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(bin);
    }
    run(
        Command::new("python3")
            .args(["-m", "venv", "--system-site-packages"])
            .arg(&venv),
        "python3 -m venv (install Python 3 with its venv module)",
    )?;
    run(
        Command::new(&bin)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
        "pip install -r tests/requirements.txt",
    )?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("{e}"))?;
    Ok(bin)
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("the Python tests need {what}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "the Python tests need {what}; it failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}
