use std::process::ExitCode;

fn main() -> ExitCode {
    tokenizer::cli::main()
}
