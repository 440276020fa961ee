//! `tokenizer seal`: seal a credential for SEAL_KEY (or the seal key of OPEN_KEY).
//!
//! Either a whole secret (`--json`, `--json-file`), or tlsproxy's shorthand:
//! `--host H [--header NAME] (--org O --app A | --auth-token T | --no-auth) TOKEN`.
//! Prints the base64 sealed secret on stdout.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use zeroize::Zeroizing;

use super::{Failure, KeyArgs};
use crate::auth::{AuthConfig, BearerAuth, FlySrcAuth};
use crate::policy::HostRules;
use crate::processor::{FmtDst, InjectConfig, ProcessorConfig};
use crate::secret::{SealKey, Secret, SecretString};

#[derive(Args)]
pub struct SealArgs {
    /// Hex public key to seal to (else derived from OPEN_KEY).
    #[arg(long, env = "SEAL_KEY")]
    seal_key: Option<String>,
    #[command(flatten)]
    keys: KeyArgs,
    /// The secret JSON.
    #[arg(long, conflicts_with_all = ["json_file", "host", "token"])]
    json: Option<String>,
    /// A file holding the secret JSON (`-` for standard input).
    #[arg(long, conflicts_with_all = ["host", "token"])]
    json_file: Option<PathBuf>,
    /// Shorthand: the only host the credential may be sent to.
    #[arg(long, requires = "token")]
    host: Option<String>,
    /// Shorthand: header that receives the token verbatim (default: Authorization: Bearer).
    #[arg(long, requires = "host")]
    header: Option<String>,
    /// Shorthand: Fly.io organization allowed to use the secret (with --app).
    #[arg(long, requires_all = ["app", "host"], conflicts_with_all = ["auth_token", "no_auth"])]
    org: Option<String>,
    /// Shorthand: Fly.io app allowed to use the secret (with --org).
    #[arg(long, requires_all = ["org", "host"])]
    app: Option<String>,
    /// Shorthand: callers must present this token in Proxy-Authorization.
    #[arg(
        long,
        requires = "host",
        conflicts_with = "no_auth",
        hide_env_values = true
    )]
    auth_token: Option<String>,
    /// Shorthand: anyone holding the sealed secret may use it.
    #[arg(long, requires = "host")]
    no_auth: bool,
    /// Shorthand: the credential, or `-` to read it from standard input.
    #[arg(requires = "host")]
    token: Option<String>,
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
    let secret = match (&args.json, &args.json_file) {
        (Some(json), _) => from_json(json.as_bytes())?,
        (None, Some(path)) => from_json(&read_file_or_stdin(path)?)?,
        (None, None) => shorthand(&args)?,
    };
    println!("{}", secret.seal(&seal_key));
    Ok(())
}

fn from_json(bytes: &[u8]) -> Result<Secret, Failure> {
    let secret = Secret::from_json(bytes).map_err(|e| Failure::Input(e.to_string()))?;
    for key in Secret::unknown_keys(bytes) {
        eprintln!("tokenizer: warning: ignoring unknown key {key:?}");
    }
    Ok(secret)
}

fn shorthand(args: &SealArgs) -> Result<Secret, Failure> {
    let (Some(host), Some(token)) = (&args.host, &args.token) else {
        return Err(Failure::Input(
            "nothing to seal: give --json, --json-file, or --host ... TOKEN".to_owned(),
        ));
    };
    let token = read_arg_or_stdin(token)?;
    let auth = match (&args.org, &args.app, &args.auth_token) {
        (Some(org), Some(app), _) => AuthConfig::FlySrc(FlySrcAuth {
            allowed_orgs: Some(vec![org.clone()]),
            allowed_apps: Some(vec![app.clone()]),
            allowed_instances: None,
        }),
        (_, _, Some(t)) => AuthConfig::Bearer(BearerAuth::for_token(t)),
        _ if args.no_auth => AuthConfig::None,
        _ => {
            return Err(Failure::Input(
                "choose who may use the secret: --org O --app A, --auth-token T, or --no-auth"
                    .to_owned(),
            ));
        }
    };
    let fmt_dst = match &args.header {
        Some(name) => FmtDst {
            fmt: "%s".to_owned(),
            dst: name.clone(),
            ..FmtDst::default()
        },
        None => FmtDst::default(),
    };
    Ok(Secret {
        processor: ProcessorConfig::Inject(InjectConfig {
            token: SecretString::new(token.as_str()),
            fmt_dst,
        }),
        auth,
        hosts: HostRules {
            allowed_hosts: Some(vec![host.clone()]),
            allowed_host_pattern: None,
        },
        policy: Default::default(),
    })
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
