//! The deployment files as configuration: fly.toml's `[env]`, cli-config.json's
//! containers, and scripts/seal-secrets.sh run with a stand-in `fly`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::{BIN, RealKeys, SANDBOX_APP, root};

/// `tokenizer genkey`: (OPEN_KEY, SEAL_KEY).
pub fn genkey() -> (String, String) {
    let out = Command::new(BIN)
        .arg("genkey")
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success(), "tokenizer genkey failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .unwrap_or_else(|| panic!("genkey printed no {name}: {text}"))
            .trim_matches(|c| c == '"' || c == '\'')
            .to_owned()
    };
    (get("OPEN_KEY"), get("SEAL_KEY"))
}

/// Run scripts/seal-secrets.sh with the real keys in its environment and a `fly` that
/// records its arguments; returns the staged secrets by name.
pub fn seal_secrets(
    dir: &Path,
    seal_key: &str,
    auth: &str,
    real: &RealKeys,
) -> BTreeMap<String, String> {
    let bin = dir.join("fly-bin");
    std::fs::create_dir(&bin).unwrap();
    let fly = bin.join("fly");
    std::fs::write(&fly, "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$FLY_ARGS\"\n").unwrap();
    std::fs::set_permissions(&fly, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let args_file = dir.join("fly-args");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg(root().join("scripts/seal-secrets.sh"))
        .args(["--app", SANDBOX_APP, "--auth-token", auth])
        .env_clear()
        .env("PATH", path)
        .env("TOKENIZER", BIN)
        .env("SEAL_KEY", seal_key)
        .env("OPENAI_API_KEY", &real.openai)
        .env("ANTHROPIC_API_KEY", &real.anthropic)
        .env("GH_TOKEN", &real.github)
        .env("FLY_ARGS", &args_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "seal-secrets.sh failed ({}): {stderr}",
        out.status
    );
    let args = std::fs::read_to_string(&args_file).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        &args[..5],
        &["secrets", "set", "--stage", "-a", SANDBOX_APP],
        "seal-secrets.sh ran fly with {args:?}"
    );
    for key in [&real.openai, &real.anthropic, &real.github] {
        assert!(
            !args.iter().any(|a| a.contains(key.as_str())) && !stderr.contains(key.as_str()),
            "seal-secrets.sh passed or printed a real key"
        );
    }
    args[5..]
        .iter()
        .map(|a| {
            let (k, v) = a.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The `ENV` of containers/tokenizer.Dockerfile (`ENV K=V \` continuation lines): what
/// the image sets before fly.toml's `[env]` applies.
pub fn image_env() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("containers/tokenizer.Dockerfile")).unwrap();
    let mut env = Vec::new();
    let mut in_env = false;
    for line in text.lines().map(str::trim) {
        let rest = match line.strip_prefix("ENV ") {
            Some(rest) => rest,
            None if in_env => line,
            None => continue,
        };
        in_env = rest.ends_with('\\');
        for pair in rest.trim_end_matches('\\').split_whitespace() {
            let (k, v) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("Dockerfile ENV: cannot read {pair:?}"));
            env.push((k.to_owned(), v.to_owned()));
        }
    }
    env
}

/// fly.toml's `[env]` table (`KEY = "value"` lines).
pub fn fly_toml_env() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("fly.toml")).unwrap();
    let mut in_env = false;
    let mut env = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_env = line == "[env]";
            continue;
        }
        if !in_env || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("fly.toml [env]: cannot read {line:?}"));
        let v = v.trim();
        assert!(
            v.starts_with('"') && v.ends_with('"'),
            "fly.toml [env]: {line:?}"
        );
        env.push((k.trim().to_owned(), v[1..v.len() - 1].to_owned()));
    }
    assert!(!env.is_empty(), "fly.toml has no [env]");
    env
}

/// A container of cli-config.json by name.
pub fn container(name: &str) -> Value {
    container_in("cli-config.json", name)
}

/// A container of a machine configuration file (cli-config*.json) by name.
pub fn container_in(file: &str, name: &str) -> Value {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["config"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{file} has no container {name}"))
        .clone()
}

pub fn env_of(container: &Value) -> Vec<(String, String)> {
    container["env"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}
