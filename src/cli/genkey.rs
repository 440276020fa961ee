//! `tokenizer genkey`: a fresh OPEN_KEY and its SEAL_KEY, as shell exports.

use super::Failure;
use tokenizer_core::OpenKey;

pub fn run() -> Result<(), Failure> {
    let key = OpenKey::generate();
    let text = zeroize::Zeroizing::new(format!(
        "export OPEN_KEY={}\nexport SEAL_KEY={}",
        key.to_hex().as_str(),
        key.seal_key().to_hex()
    ));
    super::out::print_line(&text)
}
