//! Writing a subcommand's output to stdout. `println!` panics when the reader has gone
//! (`tokenizer seal … | head -c 10`); here a closed pipe ends the command quietly, as it
//! does for other Unix tools, and any other write error is reported.

use std::io::{ErrorKind, Write};

use super::Failure;

/// Write `text` and a newline to stdout.
pub fn print_line(text: &str) -> Result<(), Failure> {
    write_all(format!("{text}\n").as_bytes())
}

/// Write `bytes` to stdout and flush.
pub fn write_all(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::Runtime(format!("writing standard output: {e}"))),
    }
}
