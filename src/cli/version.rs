//! `tokenizer version`.

use super::Failure;

pub fn run() -> Result<(), Failure> {
    println!("tokenizer {}", env!("CARGO_PKG_VERSION"));
    Ok(())
}
