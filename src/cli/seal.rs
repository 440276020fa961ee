//! `tokenizer seal`: seal a credential for SEAL_KEY (or the seal key of OPEN_KEY).
//!
//! Either a whole secret (`--json`, `--json-file`), or tlsproxy's shorthand:
//! `(--host H[,H…] [--header NAME | --basic-user USER | --query-param NAME] | --for PRESET)
//! (--org O --app A | --auth-token T |
//! --oidc-issuer URL --oidc-audience A [--oidc-claim k=v]… | --mtls-uri P… | --no-auth)
//! TOKEN`. Rule flags (`--id`, `--allowed-methods`, `--allowed-paths`,
//! `--expires-at`/`--ttl`, `--not-before`, `--rate-limit`, `--max-requests`, `--git-ref`, `--mcp-tool`) add our
//! extensions on top of either.
//!
//! What is sealed is checked first ([`crate::secret::validate`]): a mistake (an unknown
//! key, an empty credential, a digest that cannot match, a rule that never does) is
//! refused with exit 2 and the key named, unless `--lenient` asks for Go's leniency;
//! risky choices are warnings (`--deny-warnings` refuses them too). Prints the base64
//! sealed secret on stdout.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use zeroize::Zeroizing;

use super::{Failure, OpenKeyArgs};
use crate::auth::{AuthConfig, BearerAuth, FlySrcAuth, MtlsAuth, OidcAuth};
use crate::policy::{GitRefPattern, HostRules, McpToolPattern, PathGlob, PolicyRules, RateLimit};
use crate::presets::{self, Preset};
use crate::processor::{BasicAuthConfig, FmtDst, InjectConfig, ProcessorConfig, QueryParamConfig};
use crate::secret::validate::{self, Problem};
use crate::secret::{Secret, lint};
use tokenizer_core::time;
use tokenizer_core::{SealKey, SecretString};

#[derive(Args)]
#[command(group = clap::ArgGroup::new("target").args(["host", "for_preset"]))]
pub struct SealArgs {
    /// Hex public key to seal to (else derived from OPEN_KEY). Go's `sealtoken` spells
    /// it `-sealkey`.
    #[arg(long, env = "SEAL_KEY", alias = "sealkey")]
    seal_key: Option<String>,
    /// Go's `-debug` (which prints the secret, unredacted, to stdout): accepted for
    /// scripts' sake and ignored.
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    debug: Option<String>,
    #[command(flatten)]
    keys: OpenKeyArgs,
    /// The secret JSON.
    #[arg(long, conflicts_with_all = ["json_file", "target", "token"])]
    json: Option<String>,
    /// A file holding the secret JSON (`-` for standard input).
    #[arg(long, conflicts_with_all = ["target", "token"])]
    json_file: Option<PathBuf>,
    /// Shorthand: the hosts the credential may be sent to (comma list or repeated, e.g.
    /// `--host github.com,api.github.com`).
    #[arg(long, requires = "token", value_delimiter = ',')]
    host: Vec<String>,
    /// Shorthand: a built-in API (`tokenizer presets` lists them) sets the hosts, the
    /// header and its format, e.g. `--for anthropic`.
    #[arg(long = "for", value_name = "PRESET", requires = "token", conflicts_with_all = ["host", "header"])]
    for_preset: Option<String>,
    /// Shorthand: header that receives the token verbatim (default: Authorization: Bearer).
    #[arg(long, requires = "host")]
    header: Option<String>,
    /// Shorthand: send the token as HTTP Basic auth with this user name,
    /// `Authorization: Basic base64(USER:TOKEN)` — `x-access-token` for git on GitHub,
    /// `oauth2` for GitLab.
    #[arg(long, value_name = "USER", requires = "host", conflicts_with_all = ["header", "query_param"])]
    basic_user: Option<String>,
    /// Shorthand: send the token as this query parameter (`?key=TOKEN`).
    #[arg(
        long,
        value_name = "NAME",
        requires = "host",
        conflicts_with = "header"
    )]
    query_param: Option<String>,
    /// With --basic-user or --query-param: overwrite the client's own Authorization
    /// header or parameter instead of refusing the request.
    #[arg(long)]
    replace: bool,
    /// Shorthand: Fly.io organization allowed to use the secret (with --app).
    #[arg(long, requires_all = ["app", "target"], conflicts_with_all = ["auth_token", "no_auth"])]
    org: Option<String>,
    /// Shorthand: Fly.io app allowed to use the secret (with --org).
    #[arg(long, requires_all = ["org", "target"])]
    app: Option<String>,
    /// Shorthand: callers must present this token in Proxy-Authorization.
    #[arg(
        long,
        requires = "target",
        conflicts_with = "no_auth",
        hide_env_values = true
    )]
    auth_token: Option<String>,
    /// Shorthand: anyone holding the sealed secret may use it.
    #[arg(long, requires = "target")]
    no_auth: bool,
    /// Shorthand: callers must present an OIDC token from this issuer (in OIDC_ISSUERS)
    /// as `Proxy-Authorization: Bearer <jwt>` (with --oidc-audience, --oidc-claim).
    #[arg(long, requires_all = ["target", "oidc_audience"],
          conflicts_with_all = ["org", "auth_token", "no_auth", "mtls_uri", "mtls_dns"])]
    oidc_issuer: Option<String>,
    /// Shorthand: the audience the OIDC token must carry.
    #[arg(long, requires = "oidc_issuer")]
    oidc_audience: Option<String>,
    /// Shorthand: a claim the OIDC token must carry, `name=value` (`*` globs; repeated).
    #[arg(long, requires = "oidc_issuer")]
    oidc_claim: Vec<String>,
    /// Shorthand: callers must present a client certificate (TLS listener) with a URI
    /// SAN matching this pattern, e.g. a SPIFFE ID (`*` one segment; repeated).
    #[arg(long, requires = "target", conflicts_with_all = ["org", "auth_token", "no_auth"])]
    mtls_uri: Vec<String>,
    /// Shorthand: … or with a DNS SAN matching this pattern (repeated).
    #[arg(long, requires = "target", conflicts_with_all = ["org", "auth_token", "no_auth"])]
    mtls_dns: Vec<String>,
    /// Shorthand: the credential, or `-` to read it from standard input.
    #[arg(requires = "target")]
    token: Option<String>,
    /// Refuse to seal with warnings too (risky but valid choices, such as no host rule).
    #[arg(long)]
    deny_warnings: bool,
    /// Seal despite mistakes (unknown keys, empty credentials…), as Go's tokenizer does;
    /// each is printed as a warning.
    #[arg(long, conflicts_with = "deny_warnings")]
    lenient: bool,
    #[command(flatten)]
    rules: RuleArgs,
}

/// Our rule extensions, set on top of `--json` or the shorthand.
#[derive(Args)]
#[command(next_help_heading = "Rules (extensions the Go tokenizer ignores)")]
struct RuleArgs {
    /// A name for audit logs, revocation and rate limiting.
    #[arg(long)]
    id: Option<String>,
    /// Allowed methods (comma list or repeated).
    #[arg(long, value_delimiter = ',')]
    allowed_methods: Vec<String>,
    /// Allowed path globs: `*` one segment, `**` any number (comma list or repeated).
    #[arg(long, value_delimiter = ',')]
    allowed_paths: Vec<String>,
    /// Not valid before: unix seconds or RFC 3339.
    #[arg(long, value_parser = time::parse_timestamp)]
    not_before: Option<i64>,
    /// Expires at: unix seconds or RFC 3339.
    #[arg(long, value_parser = time::parse_timestamp, conflicts_with = "ttl")]
    expires_at: Option<i64>,
    /// Expires this long from now (`90s`, `15m`, `12h`, `30d`).
    #[arg(long, value_parser = parse_ttl)]
    ttl: Option<i64>,
    /// Requests per period for this secret, e.g. `60/min` (across the fleet with
    /// REDIS_URL, else per tokenizer instance).
    #[arg(long, value_parser = RateLimit::parse)]
    rate_limit: Option<RateLimit>,
    /// Requests this secret may ever make (across the fleet with REDIS_URL, else per
    /// tokenizer instance).
    #[arg(long)]
    max_requests: Option<u64>,
    /// Refs a `git push` may create, update or delete, e.g. `refs/heads/agent/*`
    /// (`*` one segment, `**` any number; repeated). A push touching any other ref is
    /// refused whole.
    #[arg(long, value_name = "PATTERN")]
    git_ref: Vec<String>,
    /// MCP tools a `tools/call` may run, e.g. `search_*` (`*` any characters; repeated);
    /// `tools/list` answers are filtered to them.
    #[arg(long, value_name = "PATTERN")]
    mcp_tool: Vec<String>,
}

impl RuleArgs {
    fn apply(&self, policy: &mut PolicyRules) -> Result<(), Failure> {
        if let Some(id) = &self.id {
            policy.id = Some(id.clone());
        }
        if !self.allowed_methods.is_empty() {
            policy.allowed_methods = Some(self.allowed_methods.clone());
        }
        if !self.allowed_paths.is_empty() {
            let globs = self
                .allowed_paths
                .iter()
                .map(|p| PathGlob::new(p).map_err(Failure::Input))
                .collect::<Result<_, _>>()?;
            policy.allowed_paths = Some(globs);
        }
        if self.not_before.is_some() {
            policy.not_before = self.not_before;
        }
        if let Some(expires) = self.expires_at.or(self.ttl.map(|t| time::now_unix() + t)) {
            policy.expires_at = Some(expires);
        }
        if self.rate_limit.is_some() {
            policy.rate_limit = self.rate_limit;
        }
        if self.max_requests.is_some() {
            policy.max_requests = self.max_requests;
        }
        if let Some(patterns) = patterns("--git-ref", &self.git_ref, GitRefPattern::new)? {
            policy.allowed_git_refs = Some(patterns);
        }
        if let Some(patterns) = patterns("--mcp-tool", &self.mcp_tool, McpToolPattern::new)? {
            policy.allowed_mcp_tools = Some(patterns);
        }
        Ok(())
    }
}

/// The patterns a repeatable `flag` gave, each parsed by `parse`; `None` when it was not
/// given (the rule stays unset), an error naming the flag for the first bad one.
fn patterns<T, E: std::fmt::Display>(
    flag: &str,
    given: &[String],
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<Vec<T>>, Failure> {
    if given.is_empty() {
        return Ok(None);
    }
    given
        .iter()
        .map(|p| parse(p).map_err(|e| Failure::Input(format!("{flag}: {e}"))))
        .collect::<Result<_, _>>()
        .map(Some)
}

/// `90s`, `15m`, `12h`, `30d` (or plain seconds) as seconds.
fn parse_ttl(text: &str) -> Result<i64, String> {
    let d = tokenizer_core::settings::parse_duration(text)?;
    i64::try_from(d.as_secs()).map_err(|_| format!("{text:?} is too long"))
}

pub fn run(args: SealArgs) -> Result<(), Failure> {
    let seal_key = match &args.seal_key {
        Some(hex) => {
            SealKey::from_hex(hex).map_err(|e| Failure::Input(format!("SEAL_KEY: {e}")))?
        }
        None => args
            .keys
            .open_keys()
            .map_err(|e| Failure::Input(format!("need SEAL_KEY or OPEN_KEY: {e}")))?
            .current()
            .seal_key(),
    };
    let (mut secret, mut errors) = match (&args.json, &args.json_file) {
        (Some(json), _) => from_json(json.as_bytes())?,
        (None, Some(path)) => from_json(&read_file_or_stdin(path)?)?,
        (None, None) => (shorthand(&args)?, Vec::new()),
    };
    args.rules.apply(&mut secret.policy)?;
    // The values as they will be sealed, after the rule flags.
    errors.extend(validate::check_secret(&secret));
    let warnings = lint(&secret);
    if !errors.is_empty() && !args.lenient {
        for e in &errors {
            eprintln!("tokenizer: error: {e}");
        }
        return Err(Failure::Input(format!(
            "refusing to seal a secret with {} mistake(s) (--lenient seals anyway, as Go does)",
            errors.len()
        )));
    }
    for e in &errors {
        eprintln!("tokenizer: warning: {e} (sealed anyway: --lenient)");
    }
    for w in &warnings {
        eprintln!("tokenizer: warning: {w}");
    }
    if args.deny_warnings && !warnings.is_empty() {
        return Err(Failure::Input(format!(
            "refusing to seal with {} warning(s) (--deny-warnings)",
            warnings.len()
        )));
    }
    super::out::print_line(&secret.seal(&seal_key))
}

/// The secret in `bytes`, and the keys it held that decoding ignores.
fn from_json(bytes: &[u8]) -> Result<(Secret, Vec<Problem>), Failure> {
    let refuse = |problems: Vec<Problem>| {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        Failure::Input(format!("not a secret: {}", text.join("; ")))
    };
    let unknown = validate::unknown_keys(bytes).map_err(refuse)?;
    match Secret::from_json(bytes) {
        Ok(secret) => Ok((secret, unknown)),
        Err(e) => {
            let mut all = unknown;
            all.push(Problem {
                path: String::new(),
                message: e.to_string(),
            });
            Err(refuse(all))
        }
    }
}

fn shorthand(args: &SealArgs) -> Result<Secret, Failure> {
    let Some(token) = &args.token else {
        return Err(Failure::Input(
            "nothing to seal: give --json, --json-file, --host H TOKEN or --for PRESET TOKEN"
                .to_owned(),
        ));
    };
    let preset = match &args.for_preset {
        Some(name) => Some(Preset::named(name).ok_or_else(|| {
            Failure::Input(format!(
                "--for {name:?}: no such preset; one of {} (`tokenizer presets` shows them)",
                presets::names()
            ))
        })?),
        None => None,
    };
    let hosts: Vec<String> = match preset {
        Some(p) => p.hosts.iter().map(|h| (*h).to_owned()).collect(),
        None if !args.host.is_empty() => args.host.clone(),
        None => {
            return Err(Failure::Input(
                "nothing to seal: give --host H or --for PRESET".to_owned(),
            ));
        }
    };
    if args.replace && args.basic_user.is_none() && args.query_param.is_none() {
        return Err(Failure::Input(
            "--replace goes with --basic-user or --query-param".to_owned(),
        ));
    }
    let token = read_arg_or_stdin(token)?;
    if let Some(p) = preset
        && !p.looks_like_key(token.as_str())
    {
        eprintln!(
            "tokenizer: warning: this does not look like a {} key ({}…)",
            p.title,
            if p.prefix.is_empty() { "?" } else { p.prefix }
        );
    }
    let auth = match (&args.org, &args.app, &args.auth_token) {
        _ if args.oidc_issuer.is_some() => oidc_auth(args)?,
        _ if !args.mtls_uri.is_empty() || !args.mtls_dns.is_empty() => {
            let auth: MtlsAuth = serde_json::from_value(serde_json::json!({
                "uris": args.mtls_uri,
                "dns": args.mtls_dns,
            }))
            .map_err(|e| Failure::Input(e.to_string()))?;
            AuthConfig::Mtls(auth)
        }
        (Some(org), Some(app), _) => AuthConfig::FlySrc(FlySrcAuth {
            allowed_orgs: Some(vec![org.clone()]),
            allowed_apps: Some(vec![app.clone()]),
            allowed_instances: None,
        }),
        (_, _, Some(t)) => AuthConfig::Bearer(BearerAuth::for_token(t)),
        _ if args.no_auth => AuthConfig::None,
        _ => {
            return Err(Failure::Input(
                "choose who may use the secret: --org O --app A, --auth-token T, \
                 --oidc-issuer URL --oidc-audience A, --mtls-uri P, or --no-auth"
                    .to_owned(),
            ));
        }
    };
    let fmt_dst = match (preset, &args.header) {
        (Some(p), _) => FmtDst {
            fmt: p.fmt.to_owned(),
            dst: p.header.to_owned(),
            ..FmtDst::default()
        },
        (None, Some(name)) => FmtDst {
            fmt: "%s".to_owned(),
            dst: name.clone(),
            ..FmtDst::default()
        },
        (None, None) => FmtDst::default(),
    };
    let processor = match (&args.basic_user, &args.query_param) {
        (Some(user), _) => ProcessorConfig::BasicAuth(BasicAuthConfig {
            user: user.clone(),
            password: SecretString::new(token.as_str()),
            replace: args.replace,
        }),
        (None, Some(param)) => ProcessorConfig::QueryParam(QueryParamConfig {
            param: param.clone(),
            token: SecretString::new(token.as_str()),
            replace: args.replace,
        }),
        (None, None) => ProcessorConfig::Inject(InjectConfig {
            token: SecretString::new(token.as_str()),
            fmt_dst,
        }),
    };
    Ok(Secret {
        processor,
        auth,
        hosts: HostRules {
            allowed_hosts: Some(hosts),
            allowed_host_pattern: None,
        },
        policy: Default::default(),
    })
}

/// `oidc_auth` from `--oidc-issuer`, `--oidc-audience` and `--oidc-claim name=value`.
fn oidc_auth(args: &SealArgs) -> Result<AuthConfig, Failure> {
    let mut claims = serde_json::Map::new();
    for claim in &args.oidc_claim {
        let (name, value) = claim
            .split_once('=')
            .ok_or_else(|| Failure::Input(format!("--oidc-claim {claim:?}: want name=value")))?;
        claims.insert(name.to_owned(), serde_json::Value::from(value));
    }
    let auth: OidcAuth = serde_json::from_value(serde_json::json!({
        "issuer": args.oidc_issuer,
        "audience": args.oidc_audience,
        "claims": claims,
    }))
    .map_err(|e| Failure::Input(e.to_string()))?;
    Ok(AuthConfig::Oidc(auth))
}

/// The value itself, or standard input (trailing newline removed) when it is `-`.
pub(super) fn read_arg_or_stdin(value: &str) -> Result<Zeroizing<String>, Failure> {
    if value != "-" {
        return Ok(Zeroizing::new(value.to_owned()));
    }
    let mut text = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| Failure::Input(format!("reading standard input: {e}")))?;
    let trimmed = text.trim_end_matches(['\r', '\n']).len();
    text.truncate(trimmed);
    Ok(text)
}

fn read_file_or_stdin(path: &PathBuf) -> Result<Zeroizing<Vec<u8>>, Failure> {
    if path.as_os_str() == "-" {
        let mut buf = Zeroizing::new(Vec::new());
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Failure::Input(format!("reading standard input: {e}")))?;
        return Ok(buf);
    }
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| Failure::Input(format!("reading {}: {e}", path.display())))
}
