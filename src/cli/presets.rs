//! `tokenizer presets`: the built-in APIs `seal --for` knows, with where the credential
//! goes and the variables the sandbox's dummy key is exported as.

use super::Failure;
use crate::presets::PRESETS;

pub fn run() -> Result<(), Failure> {
    let mut text = format!(
        "{:<12} {:<34} {:<28} {}\n",
        "PRESET", "HOSTS", "HEADER", "VARIABLES (dummy key shape)"
    );
    for p in PRESETS {
        let header = format!("{}: {}", p.header, p.fmt.replace("%s", "KEY"));
        let shape = if p.prefix.is_empty() {
            format!("{} characters", p.body_len)
        } else {
            format!("{}…", p.prefix)
        };
        text.push_str(&format!(
            "{:<12} {:<34} {:<28} {} ({shape})\n",
            p.name,
            p.hosts.join(","),
            header,
            p.env.join(", ")
        ));
    }
    text.push_str("\nSeal one: tokenizer seal --for NAME --auth-token PASSWORD KEY\n");
    super::out::write_all(text.as_bytes())
}
