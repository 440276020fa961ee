//! `tokenizer unseal`: open a sealed secret with OPEN_KEY and print its JSON.
//! Credentials are shown as `REDACTED` unless `--show-secrets` is given.

use clap::Args;

use super::{Failure, KeyArgs};
use crate::secret::Secret;

#[derive(Args)]
pub struct UnsealArgs {
    #[command(flatten)]
    keys: KeyArgs,
    /// The sealed secret (base64), or `-` to read it from standard input.
    #[arg(long)]
    token: String,
    /// Print credentials in clear.
    #[arg(long)]
    show_secrets: bool,
}

pub fn run(args: UnsealArgs) -> Result<(), Failure> {
    let keys = args.keys.open_keys()?;
    let token = super::seal::read_arg_or_stdin(&args.token)?;
    let secret = Secret::open(&keys, &token).map_err(|e| Failure::Input(e.to_string()))?;
    if args.show_secrets {
        println!("{}", secret.to_json().as_str());
    } else {
        println!("{}", secret.stripped_json());
    }
    Ok(())
}
