//! `tokenizer sealkey`: print the seal key for OPEN_KEY.

use clap::Args;

use super::{Failure, OpenKeyArgs};

#[derive(Args)]
pub struct SealkeyArgs {
    #[command(flatten)]
    keys: OpenKeyArgs,
}

pub fn run(args: SealkeyArgs) -> Result<(), Failure> {
    let keys = args.keys.open_keys()?;
    super::out::print_line(&format!(
        "export SEAL_KEY={}",
        keys.current().seal_key().to_hex()
    ))
}
