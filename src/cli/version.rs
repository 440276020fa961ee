//! `tokenizer version`.

use super::Failure;

pub fn run() -> Result<(), Failure> {
    super::out::print_line(&format!("tokenizer {}", env!("CARGO_PKG_VERSION")))
}
