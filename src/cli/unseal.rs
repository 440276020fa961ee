//! `tokenizer unseal`: open a sealed secret with OPEN_KEY and print its JSON.
//! Credentials are shown as `REDACTED` unless `--show-secrets` is given; `--raw` prints
//! the decrypted bytes exactly, as Go's `unseal` does. A document that is not a valid
//! secret is printed as it is, like Go (with a warning on stderr), since there is nothing
//! to redact it by.

use clap::Args;

use super::{Failure, KeyArgs};
use crate::secret::{Secret, SecretError, b64};

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
    /// Print the decrypted bytes exactly as sealed (Go's output).
    #[arg(long, conflicts_with = "show_secrets")]
    raw: bool,
}

pub fn run(args: UnsealArgs) -> Result<(), Failure> {
    let keys = args.keys.open_keys()?;
    let token = super::seal::read_arg_or_stdin(&args.token)?;
    let sealed =
        b64::decode_token(&token).map_err(|_| Failure::Input(SecretError::Encoding.to_string()))?;
    let plain = keys
        .open(&sealed)
        .map_err(|_| Failure::Input(SecretError::Decryption.to_string()))?;
    let secret = match Secret::from_json(&plain) {
        Ok(secret) if !args.raw => secret,
        Ok(_) => return print_raw(&plain),
        Err(e) => {
            eprintln!("tokenizer: warning: {e}: printing the document as it is");
            return print_raw(&plain);
        }
    };
    if args.show_secrets {
        println!("{}", secret.to_json().as_str());
    } else {
        println!("{}", secret.stripped_json());
    }
    Ok(())
}

/// The bytes and a newline, as Go's `unseal` writes them.
fn print_raw(plain: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(plain)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|e| Failure::Runtime(e.to_string()))
}
