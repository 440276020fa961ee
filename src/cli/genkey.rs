//! `tokenizer genkey`: a fresh OPEN_KEY and its SEAL_KEY, as shell exports.

use super::Failure;
use crate::secret::OpenKey;

pub fn run() -> Result<(), Failure> {
    let key = OpenKey::generate();
    println!("export OPEN_KEY={}", key.to_hex().as_str());
    println!("export SEAL_KEY={}", key.seal_key().to_hex());
    Ok(())
}
