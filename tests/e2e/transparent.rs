//! End-to-end test of transparent mode (issue 16): a sandbox that cannot go around the
//! sidecar.
//!
//! ```text
//!  shell ns                                   tokenizer ns (routes)    internet ns
//!  ┌──────────────────────────────────────┐   ┌──────────────────┐     ┌──────────────────────┐
//!  │ agent (uid 64011): curl, SDKs, gh,   │   │ tokenizer serve  │     │ fake_api.py :443     │
//!  │  probes; hosts: api.* -> the REAL    │   │ :8080            │     │ listeners.py: TCP    │
//!  │  (fake-internet) addresses; no proxy │   │ forwards between │     │ 8443, UDP 443, DNS   │
//!  │  variables; resolv.conf: 10.213.1.2  │   │ the two links    │     │ on 10.213.1.2 and on │
//!  │ nft table inet tokenizer_sandbox     │──▶│                  │────▶│ 10.213.9.9 (a        │
//!  │ sidecar (uid 10001): transparent.sh  │   └──────────────────┘     │ resolver no one      │
//!  │  :15001 transparent, :8443 TLS       │                            │ names)               │
//!  └──────────────────────────────────────┘                            └──────────────────────┘
//! ```
//!
//! The shell has a default route to the fake internet, over IPv4 and IPv6, as a machine
//! on the real internet does: only the firewall stands between the agent and it. The
//! sidecar runs cli-config.transparent.json's entrypoint (containers/sideproxy/
//! transparent.sh) unchanged: it loads the firewall as root, then serves as SIDECAR_UID.
//! The shell runs containers/shell/start.sh with that file's env (CA trust only; no
//! hosts entries) and AGENT_USER, and every client runs as the unprivileged agent.
//!
//! Before the sidecar starts, the agent's probes reach every listener of the fake
//! internet (the control: the topology lets them through). After: TCP 80/443 to any
//! address lands on the sidecar (targets get their real keys; passthrough hosts their
//! own certificate, wherever the client dialled; other SNIs are refused), and TCP to
//! another port, UDP 443 and DNS to a resolver not in resolv.conf never arrive. The
//! agent cannot change the rules. The namespaces go, rules and all, even on failure.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::deploy::{container_in, seal_secrets};
use crate::machine::{
    Scripts, check_nothing_logged, check_sdk_requests, check_watched, run_sdk_clients, shell_env,
    sidecar_env, start_internet, start_tokenizer, write_shell_etc,
};
use crate::netns::{self, Namespaces};
use crate::procs::{Finished, Proc};
use crate::tools::{self, Tools};
use crate::watch::EnvWatcher;
use crate::{
    ANTHROPIC, API_HOSTS, BIN, GITHUB_LOGIN, RealKeys, Servers, check_start_script, path,
    random_hex, readable_copy, root, run_client, run_e2e, set, temp_dir,
};

const CONFIG: &str = "cli-config.transparent.json";
/// The unprivileged user the agent runs as (no account needed).
const AGENT_UID: u32 = 64011;
/// A TLS server in the fake internet that is no target.
const OTHER_HOST: &str = "other.example";
/// A host the sidecar lets through untouched.
const PASSTHROUGH_HOST: &str = "passthrough.example";
/// A port that is neither 80 nor 443.
const OTHER_PORT: u16 = 8443;
/// The fake internet CA's common name (certs.rs).
const INTERNET_CA_NAME: &str = "tokenizer e2e internet CA";

#[test]
fn transparent_sandbox_with_real_clients() {
    run_e2e("transparent mode", run_transparent);
}

fn run_transparent(tools: &Tools) -> Vec<String> {
    tools::need("nft", "nftables");
    tools::need("setpriv", "util-linux");
    let t0 = Instant::now();
    // `dir` (0700) holds what only root may read, the real keys' file among them;
    // `shared` what the agent and the sidecar need: their homes, the CA directory.
    let tmp = temp_dir();
    let dir = tmp.path();
    let shared_tmp = temp_dir();
    let shared = shared_tmp.path();
    std::fs::set_permissions(shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let real = RealKeys::generate();
    let ns = Namespaces::create("t");
    ns.route_shell_to_internet();
    let names = ns.names();
    let watcher = EnvWatcher::start(Namespaces::net_id(&ns.shell), real.all());
    let mut servers = Servers::default();

    // The shell's /etc: the API names at their real addresses, one resolver.
    let etc = ns.etc(&ns.shell);
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         {}\ttokenizer.flycast\n{}\t{} {OTHER_HOST} {PASSTHROUGH_HOST}\n",
        netns::TOKENIZER_ADDR,
        netns::INTERNET_ADDR,
        API_HOSTS.join(" ")
    );
    write_shell_etc(&etc, &hosts);
    std::fs::write(
        etc.join("resolv.conf"),
        format!("nameserver {}\n", netns::INTERNET_ADDR),
    )
    .unwrap();
    let seen = in_shell(&ns.shell, &["cat", "/etc/resolv.conf"]);
    assert!(
        seen.contains(netns::INTERNET_ADDR),
        "ip netns exec did not put the shell's resolv.conf over /etc/resolv.conf: {seen}"
    );

    // The fake internet: the APIs (and the other and passthrough hosts) on 443, and
    // listeners that only record contacts.
    let internet = start_internet(
        &mut servers,
        &ns.internet,
        tools,
        dir,
        &real,
        &[OTHER_HOST, PASSTHROUGH_HOST],
    );
    let contacts_log = dir.join("contacts.jsonl");
    let mut cmd = Namespaces::command(
        &ns.internet,
        Path::new("/usr/bin/python3"),
        &[("PATH".into(), "/usr/bin:/bin".into())],
    );
    cmd.arg(root().join("tests/e2e/listeners.py"))
        .arg("--log")
        .arg(&contacts_log);
    for addr in [netns::INTERNET_ADDR, netns::INTERNET_ADDR6] {
        cmd.args(["--tcp", &format!("{addr}@{OTHER_PORT}")]);
        cmd.args(["--udp", &format!("{addr}@443")]);
    }
    // A plain-HTTP site on 80, reached as the passthrough host (and as any other).
    cmd.args(["--http", &format!("{}@80", netns::INTERNET_ADDR)]);
    for addr in [netns::INTERNET_ADDR, netns::OTHER_ADDR] {
        cmd.args(["--udp", &format!("{addr}@53")]);
    }
    let listeners = servers.start("listeners", cmd, "listeners ready");
    let internet_ca = shared.join("internet-ca.pem");
    std::fs::copy(&internet.ca.ca, &internet_ca).unwrap();

    let (serve, seal_key) = start_tokenizer(&mut servers, &ns.tokenizer, dir, &internet.ca);
    let sidecar_auth = format!("sidecar-{}", random_hex(16));
    let staged = seal_secrets(dir, &seal_key, &sidecar_auth, &real);
    // What runs as another user (the sidecar's UID, the agent) is copied where that user
    // can read it, whatever the checkout's permissions.
    let scripts = Scripts::readable_in(shared);
    let bin = shared.join("tokenizer");
    readable_copy(Path::new(BIN), &bin);

    // The agent: its home, and how it runs things (no capabilities, no way back).
    let home = shared.join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(AGENT_UID), Some(AGENT_UID)).unwrap();
    let shell_spec = container_in(CONFIG, "shell");
    let mut agent_env = shell_env(&shell_spec, tools, &home);
    set(&mut agent_env, "AGENT_USER", &AGENT_UID.to_string());
    let as_agent = |name: &str, cwd: &Path, argv: &[&str]| -> Command {
        let mut cmd = Namespaces::command(&ns.shell, Path::new("/usr/bin/setpriv"), &agent_env);
        cmd.args(agent_privileges())
            .args(["/bin/sh", "-c"])
            .arg(format!(
                "[ -f /etc/profile.d/sideproxy.sh ] && . /etc/profile.d/sideproxy.sh; \
                 exec \"$@\" # {name}"
            ))
            .arg("sh")
            .args(argv)
            .current_dir(cwd);
        cmd
    };
    let probe = |phase: &str| -> BTreeMap<String, (bool, String)> {
        let ca = path(&internet_ca);
        let (v4, v6) = (netns::INTERNET_ADDR, netns::INTERNET_ADDR6);
        let specs = [
            format!("other_port=tcp:{v4}:{OTHER_PORT}"),
            format!("other_port6=tcp:[{v6}]:{OTHER_PORT}"),
            format!("quic=udp:{v4}:443"),
            format!("quic6=udp:[{v6}]:443"),
            format!("resolver=dns:{v4}"),
            format!("other_resolver=dns:{}", netns::OTHER_ADDR),
            format!("other_sni=tls:{OTHER_HOST}:443:{ca}:{v4}"),
            // Dialled at an address where nothing serves 443: only a sidecar that dials
            // the name, not the address, reaches the server.
            format!("passthrough_elsewhere=tls:{PASSTHROUGH_HOST}:443:{ca}:{v6}"),
            // Two keep-alive requests on one plain-HTTP connection: the passthrough
            // host's, then another site's at the same address.
            format!("plain_http=http2:{PASSTHROUGH_HOST}:{OTHER_HOST}:{v4}"),
        ];
        let probe_py = path(&scripts.clients.join("probe.py"));
        let mut argv = vec!["/usr/bin/python3", probe_py.as_str()];
        argv.extend(specs.iter().map(String::as_str));
        let out = run_client(&format!("probe-{phase}"), as_agent("probe", &home, &argv));
        let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap();
        doc.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    (
                        v["ok"].as_bool().unwrap(),
                        v["detail"].as_str().unwrap().to_owned(),
                    ),
                )
            })
            .collect()
    };

    // Before the firewall, the agent reaches the fake internet every way (the control).
    let before = probe("before");
    for (name, (ok, detail)) in &before {
        let expected = name != "passthrough_elsewhere";
        if name == "plain_http" {
            assert_eq!(
                detail, "200 200",
                "without the firewall, both requests are served"
            );
        }
        assert_eq!(
            *ok,
            expected,
            "without the firewall, probe {name} should {}: {detail}",
            if expected { "succeed" } else { "fail" }
        );
    }
    let contacts_before = contacts(&contacts_log);

    // `tokenizer sideproxy firewall` prints a ruleset that nft accepts, with the
    // resolver of the shell's resolv.conf.
    let sidecar_spec = container_in(CONFIG, "sideproxy");
    let ca_dir = shared.join("sideproxy");
    let mut side_env = sidecar_env(&sidecar_spec, &staged, &ca_dir, &sidecar_auth);
    for (k, v) in [
        ("TOKENIZER", path(&bin)),
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        ),
        (
            "PASSTHROUGH",
            format!("{PASSTHROUGH_HOST},{PASSTHROUGH_HOST}:80"),
        ),
        // The sidecar dials passthrough hosts itself, through its destination guard.
        ("UPSTREAM_ALLOW_CIDRS", netns::INTERNET_NET.to_owned()),
    ] {
        set(&mut side_env, k, &v);
    }
    let sidecar_uid: u32 = lookup(&side_env, "SIDECAR_UID").parse().unwrap();
    let transparent_port = lookup(&side_env, "TRANSPARENT_PORT");
    let printed = {
        let mut cmd = Namespaces::command(&ns.shell, Path::new(BIN), &side_env);
        cmd.args(["sideproxy", "firewall"]);
        Proc::spawn("firewall-print", cmd)
            .finish(Duration::from_secs(10))
            .ok()
            .stdout
    };
    assert!(
        printed.contains(&format!(
            "th dport 53 ip daddr {{ {} }} accept",
            netns::INTERNET_ADDR
        )) && printed.contains(&format!("redirect to :{transparent_port}"))
            && printed.contains(&format!("meta skuid {sidecar_uid} accept")),
        "the printed ruleset:\n{printed}"
    );
    let check = nft_check(&ns.shell, &printed);
    assert!(
        check.is_empty(),
        "nft -c rejects the printed ruleset: {check}"
    );

    // The sidecar: the Fly config's entrypoint, unchanged.
    let entrypoint = sidecar_spec["entrypoint"][0].as_str().unwrap();
    assert_eq!(entrypoint, "/usr/local/bin/sideproxy-transparent");
    let dockerfile =
        std::fs::read_to_string(root().join("containers/tokenizer.Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(&format!(
            "COPY containers/sideproxy/transparent.sh {entrypoint}"
        )),
        "the tokenizer image does not install transparent.sh as {entrypoint}"
    );
    let mut cmd = Namespaces::command(&ns.shell, Path::new("/bin/sh"), &side_env);
    cmd.arg(root().join("containers/sideproxy/transparent.sh"));
    let sidecar = servers.start("sideproxy", cmd, "sideproxy listening");
    assert_eq!(
        uid_of(sidecar.pid()),
        sidecar_uid,
        "the sidecar does not run as SIDECAR_UID"
    );
    // Loading it again (a restart) replaces the table: the rules are there once.
    let mut cmd = Namespaces::command(&ns.shell, Path::new(BIN), &side_env);
    cmd.args(["sideproxy", "firewall", "--apply"]);
    Proc::spawn("firewall-again", cmd)
        .finish(Duration::from_secs(10))
        .ok();
    let rules = table(&ns.shell);
    assert_eq!(
        rules.matches("redirect to").count(),
        1,
        "after loading twice:\n{rules}"
    );

    // The shell: start.sh trusts the sidecar's CA and leaves the hosts file alone.
    let mut shell_env = agent_env.clone();
    set(&mut shell_env, "HOME", &path(dir));
    let mut cmd = Namespaces::command(&ns.shell, Path::new("/bin/sh"), &shell_env);
    cmd.arg(root().join("containers/shell/start.sh"));
    let shell = servers.start_within(
        "start-shell",
        cmd,
        "start-shell: ready",
        Duration::from_secs(90),
    );
    eprintln!(
        "e2e: transparent machine up in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let sidecar_ca = std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap();
    check_start_script(&etc, &sidecar_ca, tools);
    assert_eq!(
        std::fs::read_to_string(etc.join("hosts")).unwrap(),
        hosts,
        "start.sh changed the hosts file in transparent mode"
    );

    // start.sh runs its command as AGENT_USER, who cannot change the rules.
    let out = run_client("start-shell-command", {
        let mut cmd = Namespaces::command(&ns.shell, Path::new("/bin/sh"), &shell_env);
        cmd.arg(root().join("containers/shell/start.sh")).args([
            "/bin/sh",
            "-c",
            "id -u; nft flush ruleset 2>&1 && echo flushed; \
             nft delete table inet tokenizer_sandbox 2>&1 && echo deleted; true",
        ]);
        cmd
    });
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some(AGENT_UID.to_string().as_str()));
    assert!(
        !out.stdout.contains("flushed") && !out.stdout.contains("deleted"),
        "the agent changed the firewall: {}",
        out.stdout
    );
    assert_eq!(table(&ns.shell), rules, "the rules changed");

    // The clients, as the agent: real keys injected, one streamed response each.
    let t1 = Instant::now();
    let client = |name: &str, cwd: &Path, argv: &[&str]| -> Finished {
        run_client(name, as_agent(name, cwd, argv))
    };
    run_sdk_clients(&client, &home, tools, &scripts);
    // Plain HTTP to port 80 is routed by Host (and sent on over TLS).
    let out = client(
        "curl-http",
        &home,
        &[
            "curl",
            "-sS",
            "http://api.github.com/user",
            "-H",
            "Authorization: token dummy",
        ],
    );
    let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(doc["login"], GITHUB_LOGIN, "plain HTTP: {}", out.stdout);
    // IPv6: an API's address over IPv6 is redirected the same way.
    let out = client(
        "curl-ipv6",
        &home,
        &[
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--resolve",
            &format!("{ANTHROPIC}:443:[{}]", netns::INTERNET_ADDR6),
            &format!("https://{ANTHROPIC}/v1/models"),
            "-H",
            "x-api-key: dummy",
        ],
    );
    // 404 from the fake API: past its key check (401 with any other key).
    assert_eq!(out.stdout.trim(), "404", "IPv6 to {ANTHROPIC}");
    let clients_took = t1.elapsed();

    // What the firewall and the sidecar made of the probes.
    let after = probe("after");
    let want = [
        ("other_port", false),
        ("other_port6", false),
        ("quic", false),
        ("quic6", false),
        ("resolver", true),
        ("other_resolver", false),
        ("other_sni", false),
        ("passthrough_elsewhere", true),
        ("plain_http", true),
    ];
    for (name, expected) in want {
        let (ok, detail) = &after[name];
        assert_eq!(*ok, expected, "with the firewall, probe {name}: {detail}");
    }
    assert_eq!(
        after["passthrough_elsewhere"].1, INTERNET_CA_NAME,
        "the passthrough host did not present its own certificate"
    );
    // Plain-HTTP passthrough judges every request: the second, for another site at the
    // same address, is refused by the sidecar and never reaches it.
    assert_eq!(
        after["plain_http"].1, "200 403",
        "plain HTTP to the passthrough host"
    );
    let http_key = format!("http {}:80", netns::INTERNET_ADDR);
    let hosts_after: Vec<String> = http_hosts(&contacts_log);
    assert_eq!(
        hosts_after,
        [PASSTHROUGH_HOST, OTHER_HOST, PASSTHROUGH_HOST],
        "the plain-HTTP site saw other requests than the passthrough host's"
    );
    let contacts_after = contacts(&contacts_log);
    for (key, n) in &contacts_after {
        let was = contacts_before.get(key).copied().unwrap_or(0);
        let resolver = key == &format!("udp {}:53", netns::INTERNET_ADDR);
        let passthrough = key == &http_key && *n == was + 1;
        assert!(
            *n == was || resolver || passthrough,
            "{key} was reached through the firewall ({was} -> {n} contacts)"
        );
    }

    // The audit trail: intercepted and refused connections, all in transparent mode.
    // Connections (not requests) are logged as host:port, as CONNECT tunnels are. The
    // log writer writes in batches (at least every 100 ms): wait for the lines.
    let expected = [
        ("api.openai.com".to_owned(), "allowed"),
        (format!("{OTHER_HOST}:443"), "denied"),
        (format!("{PASSTHROUGH_HOST}:443"), "passthrough"),
    ];
    let audit = |out: &str, host: &str, decision: &str| {
        out.lines().any(|l| {
            l.contains("\"mode\":\"transparent\"")
                && l.contains(&format!("\"host\":\"{host}\""))
                && l.contains(&format!("\"decision\":\"{decision}\""))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let sidecar_out = loop {
        let out = format!("{}{}", sidecar.stdout(), sidecar.stderr());
        let all = expected.iter().all(|(h, d)| audit(&out, h, d));
        if all || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for (host, decision) in &expected {
        assert!(
            audit(&sidecar_out, host, decision),
            "no transparent audit line for {host} ({decision}):\n{sidecar_out}"
        );
    }

    check_watched(&watcher.stop(), &sidecar, &shell);
    let n = check_sdk_requests(&internet, &sidecar_auth, &staged);
    check_nothing_logged(&[&serve, &sidecar, &shell], &real);
    eprintln!(
        "e2e: transparent: {n} requests checked; clients took {:.1}s; machine total {:.1}s",
        clients_took.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );

    drop((internet, listeners, serve, sidecar, shell));
    drop(servers);
    drop(ns);
    names
}

/// setpriv's arguments for the agent: its UID and GID, no groups, no capabilities (in
/// any set), and no way to gain any (no_new_privs), as start.sh's AGENT_USER does.
fn agent_privileges() -> Vec<String> {
    vec![
        format!("--reuid={AGENT_UID}"),
        format!("--regid={AGENT_UID}"),
        "--clear-groups".to_owned(),
        "--inh-caps=-all".to_owned(),
        "--bounding-set=-all".to_owned(),
        "--no-new-privs".to_owned(),
    ]
}

/// Run `argv` as root in the shell's namespace; its standard output.
fn in_shell(ns: &str, argv: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(argv)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `nft -c -f -` on `rules` in the namespace: its complaint, empty when it accepts.
fn nft_check(ns: &str, rules: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-c", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        String::new()
    } else {
        format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr))
    }
}

/// The loaded table, as nft lists it.
fn table(ns: &str) -> String {
    in_shell(ns, &["nft", "list", "table", "inet", "tokenizer_sandbox"])
}

fn lookup<'a>(env: &'a [(String, String)], key: &str) -> &'a str {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{CONFIG}: the sidecar has no {key}"))
}

/// The real UID of a process.
fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap()
}

/// Contacts per listener (`"udp 10.213.1.2:53"` → count) from listeners.py's log.
/// The Host of every HTTP request the fake internet's HTTP site got, in order.
fn http_hosts(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|doc| doc["proto"] == "http")
        .map(|doc| doc["host"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn contacts(log: &Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let doc: Value = serde_json::from_str(line).unwrap();
        let key = format!(
            "{} {}:{}",
            doc["proto"].as_str().unwrap(),
            doc["addr"].as_str().unwrap(),
            doc["port"]
        );
        *out.entry(key).or_insert(0) += 1;
    }
    out
}
