//! `tokenizer sideproxy`: run the TLS-forging sidecar; `tokenizer sideproxy env`: print
//! the variables a sandbox needs to use it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::Failure;
use super::upstream_args::UpstreamArgs;
use crate::sideproxy::config::{Passthrough, ProxyUrl, Targets, bind_addresses};
use crate::sideproxy::dns::DnsConfig;
use crate::sideproxy::firewall::{self, Firewall};
use crate::sideproxy::{Sidecar, SideproxyConfig, env};
use tokenizer_core::settings::{self as config, ConfigError};
use tokenizer_core::{SealKey, SecretString};

#[derive(Parser, Clone, Debug)]
#[command(name = "sideproxy", args_conflicts_with_subcommands = true)]
pub struct SideproxyCommand {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    args: SideproxyArgs,
}

#[derive(Subcommand, Clone, Debug)]
enum Action {
    /// Print `export` lines for a sandbox: proxy and CA bundle variables.
    Env(EnvArgs),
    /// Print (or, with --apply, load) the nftables ruleset of transparent mode.
    Firewall(FirewallArgs),
}

#[derive(Args, Clone, Debug)]
struct FirewallArgs {
    /// Load the ruleset with `nft -f -` instead of printing it (needs CAP_NET_ADMIN).
    #[arg(long)]
    apply: bool,
    /// The sidecar's transparent listener port.
    #[arg(long, env = "TRANSPARENT_PORT")]
    transparent_port: u16,
    /// The sidecar's UID, whose connections are left alone [default: this process's].
    #[arg(long, env = "SIDECAR_UID")]
    sidecar_uid: Option<u32>,
    /// Resolvers DNS may reach (comma list) [default: the nameservers of resolv.conf].
    /// With DNS_ADDRESS, only the sidecar reaches them.
    #[arg(long, env = "DNS_SERVERS")]
    dns_servers: Option<String>,
    /// The sidecar's DNS listener: the agent's DNS may go there and nowhere else.
    #[arg(long, env = "DNS_ADDRESS")]
    dns_address: Option<SocketAddr>,
    /// Destinations every UID may reach directly (comma list of CIDRs or addresses).
    #[arg(long, env = "ALLOW_CIDRS", default_value = "")]
    allow_cidrs: String,
    /// The resolv.conf whose nameservers DNS may reach.
    #[arg(long, env = "RESOLV_CONF", default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
}

#[derive(Args, Clone, Debug)]
struct EnvArgs {
    /// Where `ca.pem` and `bundle.pem` are, as the sandbox sees them.
    #[arg(long, env = "CA_DIR", default_value = ".")]
    ca_dir: PathBuf,
    /// The HTTPS_PROXY listener (omit in hosts-file mode).
    #[arg(long, env = "HTTPS_PROXY_ADDRESS")]
    https_proxy_address: Option<SocketAddr>,
    /// The sidecar's targets (`host=ENVVAR,…`): a target a preset knows (`tokenizer
    /// presets`) gets its SDK variables exported with a dummy key of the real key's shape.
    #[arg(long, env = "TARGETS")]
    targets: Option<String>,
}

#[derive(Args, Clone, Debug)]
pub struct SideproxyArgs {
    /// `host=ENVVAR,…`: each ENVVAR holds the sealed secret for that host.
    #[arg(long, env = "TARGETS")]
    pub targets: Option<String>,
    /// The tokenizer (http:// or https://).
    #[arg(long, env = "PROXY", default_value = "http://tokenizer.flycast")]
    pub proxy: String,
    /// Speak HTTP/2 (prior knowledge) to an http:// PROXY that this tokenizer serves
    /// directly: concurrent requests share one connection (upgrades stay on HTTP/1.1).
    /// Not through fly-proxy's HTTP handler (`tokenizer.flycast:8080`), nor to the Go
    /// tokenizer, which speak HTTP/1.1 only.
    #[arg(long, env = "PROXY_HTTP2", value_parser = config::parse_bool, num_args = 0..=1,
          default_value = "false", default_missing_value = "true")]
    pub proxy_http2: bool,
    /// TLS listener port.
    #[arg(long, env = "PORT", default_value_t = 443)]
    pub port: u16,
    /// Addresses the TLS listener binds (comma list).
    #[arg(long, env = "BIND_ADDRESSES", default_value = "127.0.0.1,::1")]
    pub bind_addresses: String,
    /// Sent as `Proxy-Authorization: Bearer …` (for bearer_auth secrets).
    #[arg(long, env = "TOKENIZER_AUTH", hide_env_values = true)]
    pub tokenizer_auth: Option<String>,
    /// Where ca.pem / ca-key.pem live; generated when missing.
    #[arg(long, env = "CA_DIR", default_value = ".")]
    pub ca_dir: PathBuf,
    /// Also listen as an HTTP CONNECT proxy here (for HTTPS_PROXY clients).
    #[arg(long, env = "HTTPS_PROXY_ADDRESS")]
    pub https_proxy_address: Option<SocketAddr>,
    /// Also listen here (on BIND_ADDRESSES) for connections the sandbox firewall
    /// redirected (`tokenizer sideproxy firewall`): transparent mode.
    #[arg(long, env = "TRANSPARENT_PORT")]
    pub transparent_port: Option<u16>,
    /// Hosts tunnelled without interception (CONNECT and transparent modes): host,
    /// host:port, *.domain.
    #[arg(long, env = "PASSTHROUGH")]
    pub passthrough: Option<String>,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    /// How long the tokenizer may take to answer (response headers).
    #[arg(long, env = "TOKENIZER_TIMEOUT", value_parser = config::parse_duration,
          default_value = "600s")]
    pub tokenizer_timeout: Duration,
    #[command(flatten)]
    pub admin: super::AdminArgs,
    /// The tokenizer's seal key, so the admin API can seal (/v1/seal, /v1/sealkey).
    #[arg(long, env = "SEAL_KEY")]
    pub seal_key: Option<String>,
    /// How long a client may take to send request headers (slowloris guard).
    #[arg(long, env = "CLIENT_HEADER_TIMEOUT", value_parser = config::parse_duration,
          default_value = "30s")]
    pub client_header_timeout: Duration,
    /// At most this many client connections at once; more are closed (0: no limit).
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,
    /// Client headers to remove before forwarding: the sandbox's dummy credentials
    /// (a SigV4 Authorization is always kept). Empty to forward them all.
    #[arg(
        long,
        env = "STRIP_CLIENT_HEADERS",
        default_value = "authorization,x-api-key,api-key"
    )]
    pub strip_client_headers: String,
    /// How long to let in-flight requests finish after SIGTERM/SIGINT.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", value_parser = config::parse_duration, default_value = "30s")]
    pub shutdown_timeout: Duration,
    #[command(flatten)]
    pub dns: DnsArgs,
}

/// The sandbox's DNS, answered by the sidecar.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "DNS (answered by the sidecar)")]
pub struct DnsArgs {
    /// Answer the sandbox's DNS here, UDP and TCP (`ip:port`, e.g. 127.0.0.53:53):
    /// targets resolve to this sidecar, passthrough hosts and DNS_ALLOW names are asked
    /// of DNS_SERVERS, every other name is refused. Unset: off.
    #[arg(long, env = "DNS_ADDRESS")]
    pub dns_address: Option<SocketAddr>,
    /// The real resolvers (comma list of `ip` or `ip:port`) [default: the nameservers of
    /// RESOLV_CONF, but DNS_ADDRESS itself].
    #[arg(long, env = "DNS_SERVERS")]
    pub dns_servers: Option<String>,
    /// More names the sandbox may resolve besides targets and passthrough hosts (comma
    /// list of names and `*.suffix`).
    #[arg(long, env = "DNS_ALLOW", default_value = "")]
    pub dns_allow: String,
    /// Names a client may ask per second; more are refused.
    #[arg(long, env = "DNS_RATE", default_value_t = 100)]
    pub dns_rate: u32,
    /// The resolv.conf whose nameservers are the default DNS_SERVERS.
    #[arg(long, env = "RESOLV_CONF", default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
}

impl DnsArgs {
    /// The DNS listener's config, if `DNS_ADDRESS` is set.
    fn config(&self) -> Result<Option<DnsConfig>, ConfigError> {
        let Some(address) = self.dns_address else {
            return Ok(None);
        };
        let servers = resolvers(self.dns_servers.as_deref(), &self.resolv_conf)?
            .into_iter()
            .filter(|s| *s != address)
            .collect::<Vec<_>>();
        if servers.is_empty() {
            return Err(ConfigError::Invalid {
                name: "DNS_SERVERS",
                detail: format!(
                    "no resolver to ask besides DNS_ADDRESS {address} (set DNS_SERVERS)"
                ),
            });
        }
        Ok(Some(DnsConfig {
            address,
            servers,
            allow: Passthrough::parse_named("DNS_ALLOW", &self.dns_allow)?,
            rate: self.dns_rate,
        }))
    }
}

/// `DNS_SERVERS` (`ip` or `ip:port`, port 53 by default), else the nameservers of
/// `resolv_conf`.
fn resolvers(
    list: Option<&str>,
    resolv_conf: &std::path::Path,
) -> Result<Vec<SocketAddr>, ConfigError> {
    match list {
        Some(list) => config::comma_list(list)
            .map(|a| {
                a.parse::<SocketAddr>()
                    .or_else(|_| a.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| ConfigError::Invalid {
                        name: "DNS_SERVERS",
                        detail: format!("{a:?} is not an IP address (or ip:port)"),
                    })
            })
            .collect(),
        None => {
            let conf = std::fs::read_to_string(resolv_conf).map_err(|e| ConfigError::Invalid {
                name: "DNS_SERVERS",
                detail: format!("unset, and {}: {e}", resolv_conf.display()),
            })?;
            Ok(firewall::resolvers(&conf)
                .into_iter()
                .map(|ip| SocketAddr::new(ip, 53))
                .collect())
        }
    }
}

impl SideproxyArgs {
    /// Validate into a config; TARGETS variables are read through `env`.
    pub fn into_config(
        self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SideproxyConfig, ConfigError> {
        let targets = self.targets.as_deref().ok_or(ConfigError::Invalid {
            name: "TARGETS",
            detail: "required: host=ENVVAR,…".to_owned(),
        })?;
        if self.proxy_http2 && self.proxy.starts_with("https://") {
            return Err(ConfigError::Invalid {
                name: "PROXY_HTTP2",
                detail: "needs an http:// PROXY (HTTP/2 over TLS is not offered)".to_owned(),
            });
        }
        Ok(SideproxyConfig {
            targets: Targets::parse(targets, env)?,
            proxy: ProxyUrl::parse(&self.proxy)?,
            proxy_http2: self.proxy_http2,
            port: self.port,
            bind: bind_addresses(&self.bind_addresses)?,
            tokenizer_auth: self.tokenizer_auth.map(SecretString::new),
            ca_dir: self.ca_dir,
            https_proxy_address: self.https_proxy_address,
            transparent_port: self.transparent_port,
            passthrough: Passthrough::parse(self.passthrough.as_deref().unwrap_or(""))?,
            upstream: self.upstream.config()?,
            tokenizer_timeout: self.tokenizer_timeout,
            drain_timeout: self.shutdown_timeout,
            audit_ring_size: self.admin.audit_ring_size,
            admin_address: self.admin.admin_address,
            admin_token: tokenizer_core::settings::admin_token(self.admin.admin_token)?,
            client_header_timeout: self.client_header_timeout,
            max_connections: self.max_connections,
            dns: self.dns.config()?,
            strip_client_headers: config::header_names(
                "STRIP_CLIENT_HEADERS",
                &self.strip_client_headers,
            )?,
            seal_key: self
                .seal_key
                .as_deref()
                .map(SealKey::from_hex)
                .transpose()
                .map_err(|source| ConfigError::Key {
                    name: "SEAL_KEY",
                    source,
                })?,
        })
    }
}

pub fn run(cmd: SideproxyCommand) -> Result<(), Failure> {
    match cmd.action {
        Some(Action::Env(args)) => return print_env(&args),
        Some(Action::Firewall(args)) => return firewall(args),
        None => {}
    }
    let log_format = cmd.args.admin.log_format;
    let config = cmd.args.into_config(&|name| std::env::var(name).ok())?;
    let _log = crate::logging::init(log_format, false);
    let runtime = super::runtime::build()?;
    runtime.block_on(async {
        let bound = Sidecar::bind(config)
            .await
            .map_err(|e| Failure::Runtime(e.to_string()))?;
        let signal = super::listen::shutdown_signal();
        crate::memory::spawn_trimmer();
        bound.run(Box::pin(signal)).await;
        tracing::info!("stopped");
        Ok(())
    })
}

fn print_env(args: &EnvArgs) -> Result<(), Failure> {
    let ca = args.ca_dir.join("ca.pem");
    if !ca.is_file() {
        return Err(Failure::Input(format!(
            "{} does not exist yet: start `tokenizer sideproxy` with this CA_DIR first",
            ca.display()
        )));
    }
    let mut text = env::exports(&args.ca_dir, args.https_proxy_address);
    if let Some(targets) = &args.targets {
        text.push_str(&env::dummy_keys(targets));
    }
    super::out::write_all(text.as_bytes())
}

fn firewall(args: FirewallArgs) -> Result<(), Failure> {
    let dns_servers = match args.dns_address {
        // The agent asks the sidecar; the sidecar's own UID reaches the resolvers.
        Some(_) => Vec::new(),
        None => resolvers(args.dns_servers.as_deref(), &args.resolv_conf)?
            .into_iter()
            .map(|s| s.ip())
            .collect(),
    };
    let rules = Firewall {
        transparent_port: args.transparent_port,
        sidecar_uid: args.sidecar_uid.unwrap_or_else(current_uid),
        dns_servers,
        dns_address: args.dns_address,
        allow: config::cidrs("ALLOW_CIDRS", &args.allow_cidrs)?,
    };
    if !args.apply {
        return super::out::write_all(rules.ruleset().as_bytes());
    }
    rules.apply().map_err(|e| Failure::Runtime(e.to_string()))?;
    eprintln!(
        "tokenizer sideproxy firewall: table inet {} loaded (TCP 80/443 -> :{}, exempt uid {})",
        firewall::TABLE,
        rules.transparent_port,
        rules.sidecar_uid
    );
    Ok(())
}

fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}
