//! The command line: one file per subcommand, dispatched here. Exit status 0 on
//! success, 2 for bad input or configuration, 1 when running fails.

mod admin_args;
mod fleet_args;
mod genkey;
mod go_flags;
mod identity_args;
mod key_args;
mod listen;
mod macaroon;
mod out;
mod presets;
mod revoke;
mod runtime;
mod seal;
mod sealkey;
pub mod serve;
mod serve_run;
pub mod sideproxy;
mod unseal;
mod upstream_args;
mod version;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub use admin_args::AdminArgs;
pub use key_args::{KeyArgs, OpenKeyArgs};
pub use serve::ServeArgs;
pub use sideproxy::{SideproxyArgs, SideproxyCommand};

#[derive(Parser)]
#[command(
    name = "tokenizer",
    version,
    about = "Credential-injecting proxy for sandboxes and AI agents (Fly.io tokenizer compatible)",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve(Box<ServeArgs>),
    /// Run the TLS-forging sidecar (`sideproxy env` prints sandbox variables).
    Sideproxy(SideproxyCommand),
    /// Seal a credential for this tokenizer (prints base64 for Proxy-Tokenizer).
    Seal(seal::SealArgs),
    /// Open a sealed secret and print its JSON (credentials redacted by default).
    Unseal(unseal::UnsealArgs),
    /// Print `export SEAL_KEY=<hex>` for OPEN_KEY.
    Sealkey(sealkey::SealkeyArgs),
    /// Generate a new OPEN_KEY and print it with its SEAL_KEY.
    Genkey,
    /// Macaroon tokens for `macaroon_auth`: genkey, mint, attenuate, inspect.
    Macaroon(macaroon::MacaroonCommand),
    /// Revoke a secret across the fleet (REDIS_URL): by id, digest or sealed text.
    Revoke(revoke::RevokeArgs),
    /// List the built-in API presets of `seal --for`.
    Presets,
    /// Print the version.
    Version,
}

/// Why a subcommand failed.
#[derive(Debug)]
pub enum Failure {
    /// Bad input or configuration: exit 2.
    Input(String),
    /// Running failed (bind, I/O): exit 1.
    Runtime(String),
}

impl From<tokenizer_core::settings::ConfigError> for Failure {
    fn from(e: tokenizer_core::settings::ConfigError) -> Self {
        Self::Input(e.to_string())
    }
}

/// A bad flag or variable value, in the style of every other configuration error:
/// `NAME: "value": what is wanted`, naming the variable when that is where the value
/// came from (clap would name the flag whatever the source).
fn value_error(e: &clap::Error, args: &[std::ffi::OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        e.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return None;
    }
    let text = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let arg = text(ContextKind::InvalidArg)?;
    let value = text(ContextKind::InvalidValue)?;
    let long = arg.strip_prefix("--")?.split([' ', '=']).next()?.to_owned();
    let env = find_env(&Cli::command(), &long);
    let on_command_line = args.iter().any(|a| {
        let a = a.to_string_lossy();
        a == format!("--{long}") || a.starts_with(&format!("--{long}="))
    });
    let name = match env {
        Some(env) if !on_command_line => env,
        _ => format!("--{long}"),
    };
    let reason = match std::error::Error::source(e).map(ToString::to_string) {
        Some(r) if r.contains("invalid digit") || r.contains("empty string") => {
            "want a whole number".to_owned()
        }
        Some(r) if r.contains("too large") => "too large".to_owned(),
        // Parsers that quote the value themselves: said once.
        Some(r) => r
            .strip_prefix(&format!("{value:?} "))
            .or_else(|| r.strip_prefix(&format!("{value:?}: ")))
            .unwrap_or(&r)
            .to_owned(),
        None => {
            let possible = match e.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(v)) => v.join(", "),
                _ => String::new(),
            };
            format!("want one of: {possible}")
        }
    };
    Some(format!("{name}: {value:?}: {reason}"))
}

/// The environment variable of the flag `--long`, in any subcommand.
fn find_env(command: &clap::Command, long: &str) -> Option<String> {
    for arg in command.get_arguments() {
        if arg.get_long() == Some(long) {
            return arg.get_env().map(|e| e.to_string_lossy().into_owned());
        }
    }
    command
        .get_subcommands()
        .find_map(|sub| find_env(sub, long))
}

pub fn main() -> ExitCode {
    crate::hardening::protect_process();
    crate::hardening::raise_open_file_limit();
    let args = go_flags::translate(&Cli::command(), std::env::args_os().collect());
    let matches = match Cli::command().try_get_matches_from(&args) {
        Ok(matches) => matches,
        Err(e) => match value_error(&e, &args) {
            Some(message) => {
                eprintln!("tokenizer: {message}");
                return ExitCode::from(2);
            }
            None => e.exit(),
        },
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Serve(args) => serve_run::run(*args),
        Command::Sideproxy(cmd) => sideproxy::run(cmd),
        Command::Seal(args) => seal::run(args),
        Command::Unseal(args) => unseal::run(args),
        Command::Sealkey(args) => sealkey::run(args),
        Command::Genkey => genkey::run(),
        Command::Macaroon(cmd) => macaroon::run(cmd),
        Command::Revoke(args) => revoke::run(args),
        Command::Presets => presets::run(),
        Command::Version => version::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(msg)) => {
            eprintln!("tokenizer: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(msg)) => {
            eprintln!("tokenizer: {msg}");
            ExitCode::from(1)
        }
    }
}
