//! The parts of a sandbox machine that both end-to-end tests build the same way: the
//! fake internet, the tokenizer with fly.toml's configuration, the sidecar and shell
//! environments from a cli-config file, the SDK clients, and the checks on what the fake
//! servers received and on what the processes printed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::certs::InternetCa;
use crate::deploy::{env_of, fly_toml_env, genkey, image_env};
use crate::netns::{self, Namespaces};
use crate::procs::{Finished, Proc};
use crate::requests::{check_requests, read_requests};
use crate::tools::Tools;
use crate::watch::Watched;
use crate::{
    ANTHROPIC, ANTHROPIC_STREAM, ANTHROPIC_TEXT, API_HOSTS, BIN, GITHUB, GITHUB_LOGIN, OPENAI,
    OPENAI_STREAM, OPENAI_TEXT, RealKeys, Servers, check_stream, path, root, set,
};

/// The fake internet: fake_api.py on 443 (kept running by `Servers`) and what it records.
pub struct Internet {
    pub ca: InternetCa,
    pub requests_log: PathBuf,
    /// The credential each API host must receive.
    pub expected: BTreeMap<&'static str, String>,
}

/// Start fake_api.py in `ns` on port 443 (every address), with a certificate from a
/// fresh test CA for the API hosts and `extra_names`.
pub fn start_internet(
    servers: &mut Servers,
    ns: &str,
    tools: &Tools,
    dir: &Path,
    real: &RealKeys,
    extra_names: &[&str],
) -> Internet {
    let expected: BTreeMap<&'static str, String> = [
        (OPENAI, format!("Bearer {}", real.openai)),
        (ANTHROPIC, real.anthropic.clone()),
        (GITHUB, format!("Bearer {}", real.github)),
    ]
    .into_iter()
    .collect();
    let names: Vec<&str> = API_HOSTS.iter().chain(extra_names).copied().collect();
    let ca = InternetCa::create(dir, &names);
    let keys_file = dir.join("expected-keys.json");
    std::fs::write(&keys_file, serde_json::to_string(&expected).unwrap()).unwrap();
    let requests_log = dir.join("requests.jsonl");
    let mut cmd = Namespaces::command(
        ns,
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
    servers.start("fake-api", cmd, "fake-api listening");
    Internet {
        ca,
        requests_log,
        expected,
    }
}

/// `tokenizer serve` in `ns`, configured as the machine's (the image's ENV and fly.toml's
/// `[env]`), with the fake internet's API names pinned and its CA trusted. Returns it and
/// the SEAL_KEY.
pub fn start_tokenizer(
    servers: &mut Servers,
    ns: &str,
    dir: &Path,
    ca: &InternetCa,
) -> (Arc<Proc>, String) {
    let (proc, _open_key, seal_key) = start_tokenizer_for(servers, ns, dir, ca, &API_HOSTS);
    (proc, seal_key)
}

/// [`start_tokenizer`] with `hosts` pinned to the fake internet; returns the OPEN_KEY
/// too.
pub fn start_tokenizer_for(
    servers: &mut Servers,
    ns: &str,
    dir: &Path,
    ca: &InternetCa,
    hosts: &[&str],
) -> (Arc<Proc>, String, String) {
    let (open_key, seal_key) = genkey();
    // fly.toml's image verifies Fly-Src; nothing here signs one.
    let flysrc_pub = dir.join("fly-src.pub");
    let verifying = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    std::fs::write(&flysrc_pub, hex::encode(verifying.to_bytes())).unwrap();
    let mut env = image_env();
    env.extend(fly_toml_env());
    env.extend([
        ("OPEN_KEY".to_owned(), open_key.clone()),
        (
            "FLYSRC_PUBLIC_KEY_FILE".to_owned(),
            flysrc_pub.display().to_string(),
        ),
        ("UPSTREAM_CA_FILE".to_owned(), ca.ca.display().to_string()),
        (
            "UPSTREAM_RESOLVE".to_owned(),
            hosts
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
    let mut cmd = Namespaces::command(ns, Path::new(BIN), &env);
    cmd.arg("serve");
    (
        servers.start("tokenizer-serve", cmd, "listening"),
        open_key,
        seal_key,
    )
}

/// The shell's `/etc` (bind-mounted by `ip netns exec`): `hosts`, a copy of the host's
/// ssl directory and an empty profile.d for start.sh to change.
pub fn write_shell_etc(etc: &Path, hosts: &str) {
    std::fs::write(etc.join("hosts"), hosts).unwrap();
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg("/etc/ssl")
        .arg(etc.join("ssl"))
        .status()
        .unwrap();
    assert!(cp.success(), "cp -a /etc/ssl failed");
    std::fs::create_dir(etc.join("profile.d")).unwrap();
}

/// A sidecar container's environment: its `env`, its `secrets` as staged by
/// seal-secrets.sh, the test's CA_DIR and the caller token.
pub fn sidecar_env(
    spec: &Value,
    staged: &BTreeMap<String, String>,
    ca_dir: &Path,
    auth: &str,
) -> Vec<(String, String)> {
    let mut env = env_of(spec);
    set(&mut env, "CA_DIR", &ca_dir.display().to_string());
    for secret in spec["secrets"].as_array().unwrap() {
        let name = secret["name"].as_str().unwrap();
        let var = secret["env_var"].as_str().unwrap();
        let value = staged
            .get(name)
            .unwrap_or_else(|| panic!("seal-secrets.sh staged no {name} ({staged:?})"));
        set(&mut env, var, value);
    }
    set(&mut env, "TOKENIZER_AUTH", auth);
    env
}

/// The shell container's environment: its `env` from the cli-config file, the image's
/// PATH and NODE_PATH, and `home`. Asserts the config gives it only dummy keys.
pub fn shell_env(spec: &Value, tools: &Tools, home: &Path) -> Vec<(String, String)> {
    let mut env = env_of(spec);
    for (k, v) in [
        ("PATH", tools.shell_path()),
        ("HOME", home.display().to_string()),
        (
            "NODE_PATH",
            tools.node_dir.join("node_modules").display().to_string(),
        ),
        ("LANG", "C.UTF-8".to_owned()),
    ] {
        set(&mut env, k, &v);
    }
    for (k, v) in &env {
        if k.ends_with("_KEY") || k.ends_with("_TOKEN") {
            // A preset's dummy: the real key's shape (some SDKs check it), marked.
            let preset = tokenizer::presets::PRESETS
                .iter()
                .find(|p| p.env.contains(&k.as_str()))
                .unwrap_or_else(|| panic!("{k}: no preset knows it"));
            assert_eq!(
                v,
                &preset.dummy_key(),
                "the cli-config file gives the shell a real {k}?"
            );
        }
    }
    env
}

/// Where the clients' scripts are: the checkout's, or readable copies of them for a
/// client that runs as another user ([`Scripts::readable_in`]).
pub struct Scripts {
    /// `tests/e2e/clients`.
    pub clients: std::path::PathBuf,
    /// `containers/shell/examples`.
    pub examples: std::path::PathBuf,
}

impl Scripts {
    pub fn in_checkout() -> Self {
        Self {
            clients: root().join("tests/e2e/clients"),
            examples: root().join("containers/shell/examples"),
        }
    }

    /// Copies under `dir` that every user can read.
    pub fn readable_in(dir: &Path) -> Self {
        let here = Self::in_checkout();
        let copies = Self {
            clients: dir.join("clients"),
            examples: dir.join("examples"),
        };
        crate::readable_copy(&here.clients, &copies.clients);
        crate::readable_copy(&here.examples, &copies.examples);
        copies
    }
}

/// Runs one client in the shell: (name, working directory, argv).
pub type Client<'a> = dyn Fn(&str, &Path, &[&str]) -> Finished + 'a;

/// The clients of the shell image with dummy keys: curl (the image's example), the
/// OpenAI and Anthropic Python SDKs and the OpenAI Node SDK (a plain and a streamed call
/// each), and `gh api user`. Each must get the fake API's answer.
pub fn run_sdk_clients(client: &Client<'_>, dir: &Path, tools: &Tools, scripts: &Scripts) {
    let examples = &scripts.examples;
    let clients_dir = &scripts.clients;

    let out = client("curl", dir, &["sh", &path(&examples.join("openai.sh"))]);
    let doc: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("curl printed no JSON ({e}): {}", out.stdout));
    assert_eq!(doc["choices"][0]["message"]["content"], OPENAI_TEXT);

    let out = client(
        "openai-python",
        dir,
        &["python3", &path(&clients_dir.join("openai_sdk.py"))],
    );
    let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(doc["complete"], OPENAI_TEXT);
    check_stream("openai-python", &doc, OPENAI_STREAM);

    let out = client(
        "anthropic-python",
        dir,
        &["python3", &path(&clients_dir.join("anthropic_sdk.py"))],
    );
    let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(doc["complete"], ANTHROPIC_TEXT);
    check_stream("anthropic-python", &doc, ANTHROPIC_STREAM);
    assert_eq!(doc["stop_reason"], "end_turn");

    // An ES module resolves `import "openai"` from its own directory upwards (NODE_PATH
    // is for require() only), so it runs from the directory that holds node_modules.
    let script = tools.node_dir.join("openai_node.mjs");
    std::fs::copy(clients_dir.join("openai_node.mjs"), &script).unwrap();
    let out = client("openai-node", &tools.node_dir, &["node", &path(&script)]);
    let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(doc["complete"], OPENAI_TEXT);
    check_stream("openai-node", &doc, OPENAI_STREAM);

    let out = client("gh", dir, &["gh", "api", "user"]);
    let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(doc["login"], GITHUB_LOGIN);
}

/// The fake servers got every call of [`run_sdk_clients`], each with the real key and
/// nothing else (no dummy key, proxy header, caller token or sealed secret). Returns
/// how many requests they saw.
pub fn check_sdk_requests(
    internet: &Internet,
    sidecar_auth: &str,
    staged: &BTreeMap<String, String>,
) -> usize {
    let sealed: Vec<&String> = staged.values().collect();
    let requests = read_requests(&internet.requests_log);
    check_requests(&requests, &internet.expected, &[sidecar_auth], &sealed);
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
    requests.len()
}

/// No process in the shell's namespace ever held a real key; the watcher saw the
/// sidecar (with its sealed secrets), the shell (with dummy keys) and the clients.
pub fn check_watched(watched: &Watched, sidecar: &Proc, shell: &Proc) {
    assert!(
        watched.leaks.is_empty(),
        "real keys in the shell namespace:\n{}",
        watched.leaks.join("\n")
    );
    for (proc, marker) in [
        (sidecar, "OPENAI_SEALED="),
        (shell, "OPENAI_API_KEY=sk-proj-tokenizerDUMMY"),
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
}

/// Nothing secret in what the machine's servers printed.
pub fn check_nothing_logged(procs: &[&Proc], real: &RealKeys) {
    // What the processes logged last is written within 100 ms (the log writer batches).
    // A fixed wait, not a poll: what is checked is that no key was logged, so no line
    // marks the end; after 300 ms everything logged so far is there to search.
    std::thread::sleep(std::time::Duration::from_millis(300));
    for proc in procs {
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
}
