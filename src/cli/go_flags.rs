//! Go's flag spellings, accepted beside ours.
//!
//! The Go tokenizer parses flags with Go's `flag` package: `-name`, `--name`,
//! `-name=value`, `--name=value`, and `-name value` (all its flags take a string value,
//! booleans included: `-use-flysrc=true`, `-use-flysrc true`). Scripts and images call it
//! that way (`tokenizer serve -use-flysrc=true`, `tokenizer seal -json …`,
//! `tokenizer unseal -token …`). clap takes `--name` and `--name=value`; this module
//! rewrites a single-dash argument whose name is a long flag of the chosen subcommand to
//! the double-dash form before clap parses. A single-dash word that is no flag of ours
//! (`-bogus`) is rewritten too, so that clap's error names it (`'--bogus'`) instead of
//! its first letter. Nothing else is touched: short flags, values, negative numbers,
//! positionals and everything after `--` pass unchanged.

use std::collections::HashSet;
use std::ffi::OsString;

/// Rewrite `-name[=value]` to `--name[=value]` where `name` is a long flag (or alias) of
/// the subcommand path in `args` (`tokenizer serve …`, `tokenizer sideproxy env …`).
pub fn translate(command: &clap::Command, args: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut current = command;
    let mut longs = long_names(current);
    let mut iter = args.into_iter();
    if let Some(program) = iter.next() {
        out.push(program);
    }
    let mut rest_positional = false;
    for arg in iter {
        let text = arg.to_string_lossy().into_owned();
        if rest_positional || text == "--" {
            rest_positional = true;
            out.push(arg);
            continue;
        }
        if let Some(sub) = current.find_subcommand(&text) {
            current = sub;
            longs = long_names(current);
            out.push(arg);
            continue;
        }
        match go_long(&text, &longs) {
            Some(rewritten) => out.push(rewritten.into()),
            None => out.push(arg),
        }
    }
    out
}

/// Every long name (and visible or hidden alias) of `command`'s arguments.
fn long_names(command: &clap::Command) -> HashSet<String> {
    let mut names = HashSet::new();
    for arg in command.get_arguments() {
        if let Some(long) = arg.get_long() {
            names.insert(long.to_owned());
        }
        for alias in arg.get_all_aliases().into_iter().flatten() {
            names.insert(alias.to_owned());
        }
    }
    names
}

/// `-name` or `-name=value` with a known `name` → `--name…`; so is a word-like
/// `-name` that is no flag at all (clap then reports it by its name).
fn go_long(arg: &str, longs: &HashSet<String>) -> Option<String> {
    let rest = arg.strip_prefix('-').filter(|r| !r.starts_with('-'))?;
    let name = rest.split_once('=').map_or(rest, |(n, _)| n);
    let word = name.len() > 1
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (name.len() > 1 && (longs.contains(name) || word)).then(|| format!("-{arg}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate_words(words: &str) -> String {
        let cmd = clap::Command::new("tokenizer")
            .subcommand(
                clap::Command::new("serve")
                    .arg(clap::Arg::new("use_flysrc").long("use-flysrc"))
                    .arg(
                        clap::Arg::new("tokenizer_hostnames")
                            .long("tokenizer-hostnames")
                            .alias("hostnames"),
                    ),
            )
            .subcommand(
                clap::Command::new("seal")
                    .arg(clap::Arg::new("json").long("json"))
                    .arg(clap::Arg::new("v").short('v')),
            );
        let args = std::iter::once("tokenizer")
            .chain(words.split(' '))
            .map(OsString::from)
            .collect();
        translate(&cmd, args)
            .iter()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn go_spellings_become_ours() {
        assert_eq!(
            translate_words("serve -use-flysrc=true"),
            "serve --use-flysrc=true"
        );
        assert_eq!(
            translate_words("serve -use-flysrc true"),
            "serve --use-flysrc true"
        );
        assert_eq!(translate_words("serve --use-flysrc"), "serve --use-flysrc");
        assert_eq!(
            translate_words("serve -hostnames a,b"),
            "serve --hostnames a,b"
        );
        assert_eq!(translate_words("seal -json {}"), "seal --json {}");
    }

    #[test]
    fn everything_else_is_left_alone() {
        // A value that looks like a flag, a short flag, an unknown name, a negative
        // number, and a name that belongs to another subcommand.
        assert_eq!(translate_words("seal -json -v"), "seal --json -v");
        assert_eq!(translate_words("seal -v -1 -"), "seal -v -1 -");
        assert_eq!(translate_words("serve -"), "serve -");
        assert_eq!(translate_words("seal -- -json"), "seal -- -json");
    }

    #[test]
    fn unknown_words_are_named_whole() {
        // clap would report `-nope` as '-n'; as `--nope` it names the whole word.
        assert_eq!(translate_words("seal -nope"), "seal --nope");
        assert_eq!(translate_words("seal -use-flysrc"), "seal --use-flysrc");
    }
}
