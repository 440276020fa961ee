//! `tokenizer unseal`: open a sealed secret with OPEN_KEY and print its JSON.
//! Credentials are shown as `REDACTED` unless `--show-secrets` is given; `--raw` prints
//! the decrypted bytes exactly, as Go's `unseal` does. A document that is not a valid
//! secret is printed as it is, like Go (with a warning on stderr), since there is nothing
//! to redact it by. Keys the tokenizer ignores (it opens such secrets as Go does) are
//! named on stderr, since the printed JSON no longer holds them.

use clap::Args;

use super::{Failure, KeyArgs};
use crate::secret::{Secret, SecretError, validate};
use tokenizer_core::b64;

#[derive(Args)]
pub struct UnsealArgs {
    #[command(flatten)]
    keys: KeyArgs,
    /// The sealed secret (base64), or `-` to read it from standard input.
    #[arg(long = "token", value_name = "SEALED", conflicts_with = "sealed")]
    token: Option<String>,
    /// The same, given bare (`tokenizer unseal SEALED`), as `seal` takes its token.
    #[arg(value_name = "SEALED", required_unless_present = "token")]
    sealed: Option<String>,
    /// Print credentials in clear.
    #[arg(long)]
    show_secrets: bool,
    /// Print the decrypted bytes exactly as sealed (Go's output).
    #[arg(long, conflicts_with = "show_secrets")]
    raw: bool,
}

pub fn run(args: UnsealArgs) -> Result<(), Failure> {
    let keys = args.keys.open_keys()?;
    let given = args
        .token
        .as_deref()
        .or(args.sealed.as_deref())
        .unwrap_or("-");
    let token = super::seal::read_arg_or_stdin(given)?;
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
    if let Ok(unknown) = validate::unknown_keys(&plain) {
        for problem in unknown {
            eprintln!("tokenizer: note: {problem} (opened as Go does; not in the JSON below)");
        }
    }
    if args.show_secrets {
        super::out::print_line(secret.to_json().as_str())
    } else {
        super::out::print_line(&secret.stripped_json())
    }
}

/// The bytes and a newline, as Go's `unseal` writes them.
fn print_raw(plain: &[u8]) -> Result<(), Failure> {
    let mut bytes = zeroize::Zeroizing::new(plain.to_vec());
    bytes.push(b'\n');
    super::out::write_all(&bytes)
}
