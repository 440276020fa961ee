//! The command line: one file per subcommand, dispatched here. Exit status 0 on
//! success, 2 for bad input or configuration, 1 when running fails.

mod admin_args;
mod genkey;
mod go_flags;
mod key_args;
mod macaroon;
mod revoke;
mod runtime;
mod seal;
mod sealkey;
pub mod serve;
pub mod sideproxy;
mod unseal;
mod version;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub use admin_args::AdminArgs;
pub use key_args::KeyArgs;
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

impl From<crate::config::ConfigError> for Failure {
    fn from(e: crate::config::ConfigError) -> Self {
        Self::Input(e.to_string())
    }
}

pub fn main() -> ExitCode {
    crate::hardening::protect_process();
    crate::hardening::raise_open_file_limit();
    let args = go_flags::translate(&Cli::command(), std::env::args_os().collect());
    let matches = Cli::command().get_matches_from(args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Sideproxy(cmd) => sideproxy::run(cmd),
        Command::Seal(args) => seal::run(args),
        Command::Unseal(args) => unseal::run(args),
        Command::Sealkey(args) => sealkey::run(args),
        Command::Genkey => genkey::run(),
        Command::Macaroon(cmd) => macaroon::run(cmd),
        Command::Revoke(args) => revoke::run(args),
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
