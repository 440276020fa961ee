//! `tokenizer sealkey`: print the seal key for OPEN_KEY.

use clap::Args;

use super::{Failure, KeyArgs};

#[derive(Args)]
pub struct SealkeyArgs {
    #[command(flatten)]
    keys: KeyArgs,
}

pub fn run(args: SealkeyArgs) -> Result<(), Failure> {
    let keys = args.keys.open_keys()?;
    println!("export SEAL_KEY={}", keys.current().seal_key().to_hex());
    Ok(())
}
