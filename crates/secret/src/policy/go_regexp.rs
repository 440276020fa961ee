//! Go's regular expressions (RE2 syntax, Go's `regexp.Compile`) on the `regex` crate.
//!
//! `allowed_host_pattern` and the macaroon `RequestPathPattern` caveat are Go patterns:
//! a secret sealed for the Go tokenizer must mean the same here. The two engines share
//! RE2's syntax and linear-time matching, and differ in details that matter: in Go,
//! `\w`, `\d`, `\s` and `\b` are ASCII (`regex` reads them as Unicode — which also made
//! `[\w-]{1,63}` too large to compile); Go has `\Q…\E` quoting, octal escapes,
//! `\p{^Greek}`; Go reads `a{,3}`, `\<` and `[a&&b]` literally, and refuses nested
//! repetitions (`a**`), repeat counts over 1000 and flags other than `imsU`.
//!
//! [`compile`] rewrites a Go pattern, token by token, into one `regex` reads the way Go
//! does (Unicode mode stays on, so `.` and `(?i)` work on characters, as in Go), then
//! applies Go's repeat-count rule. The translation is checked against Go's own results
//! for ~200 patterns (`testdata/go_regexp_cases.json`). Hand-written because no crate
//! translates between the two dialects. Deliberate difference: a pattern that compiles to
//! more than [`SIZE_LIMIT`] (a Unicode class repeated hundreds of times) is refused, where
//! Go's limit is far higher — anyone can seal a pattern, and compiling costs CPU.

use regex::{Regex, RegexBuilder};
use regex_syntax::ast::{self, Ast, RepetitionKind, RepetitionRange};

/// Compiled-program bound (Go's own bound is in the hundreds of MiB). Any pattern built
/// of ASCII classes within Go's repeat rules fits.
pub const SIZE_LIMIT: usize = 2 << 20;
/// Go's `maxHeight`: how deeply groups may nest.
const NEST_LIMIT: u32 = 1000;
/// Go's largest repeat count, and the budget of nested counted repeats.
const MAX_REPEAT: u32 = 1000;

const WORD: &str = "0-9A-Za-z_";
const DIGIT: &str = "0-9";
const SPACE: &str = r"\t\n\x0C\r ";
/// Go's POSIX class names (`[[:alpha:]]`).
const POSIX: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// A Go pattern that Go would refuse, or that does not fit here.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("error parsing regexp: {0}")]
pub struct GoRegexError(pub String);

/// Compile `pattern` with Go's meaning; matching is unanchored, like Go's `MatchString`.
pub fn compile(pattern: &str) -> Result<Regex, GoRegexError> {
    let translated = translate(pattern)?;
    let ast = ast::parse::ParserBuilder::new()
        .nest_limit(NEST_LIMIT)
        .build()
        .parse(&translated)
        .map_err(|e| GoRegexError(e.kind().to_string()))?;
    if !repeats_are_valid(&ast, MAX_REPEAT) {
        return Err(GoRegexError("invalid repeat count".to_owned()));
    }
    RegexBuilder::new(&translated)
        .size_limit(SIZE_LIMIT)
        .nest_limit(NEST_LIMIT)
        .build()
        .map_err(|e| GoRegexError(e.to_string()))
}

fn err(what: &str) -> GoRegexError {
    GoRegexError(what.to_owned())
}

/// The pattern in the `regex` crate's syntax.
fn translate(go: &str) -> Result<String, GoRegexError> {
    let chars: Vec<char> = go.chars().collect();
    let mut out = String::with_capacity(go.len() + 16);
    let mut i = 0;
    // After a repetition operator (1), or after one made lazy (2): a further one is
    // Go's "invalid nested repetition operator".
    let mut repeated = 0u8;
    while i < chars.len() {
        let c = chars[i];
        let was = repeated;
        repeated = 0;
        match c {
            '\\' => i = escape(&chars, i, &mut out)?,
            '[' => i = class(&chars, i, &mut out)?,
            '*' | '+' | '?' => {
                match (was, c) {
                    (1, '?') => repeated = 2,
                    (1 | 2, _) => return Err(err("invalid nested repetition operator")),
                    _ => repeated = 1,
                }
                out.push(c);
                i += 1;
            }
            '{' => match counted(&chars, i)? {
                Some(end) if was != 0 => {
                    let _ = end;
                    return Err(err("invalid nested repetition operator"));
                }
                Some(end) => {
                    out.extend(&chars[i..end]);
                    repeated = 1;
                    i = end;
                }
                None => {
                    out.push_str(r"\{");
                    i += 1;
                }
            },
            '(' => i = group(&chars, i, &mut out)?,
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// A Go counted repetition at `i` (`{n}`, `{n,}`, `{n,m}`): where it ends, or `None` when
/// Go reads the `{` literally.
fn counted(chars: &[char], i: usize) -> Result<Option<usize>, GoRegexError> {
    let Some(close) = chars[i..].iter().position(|&c| c == '}').map(|p| i + p) else {
        return Ok(None);
    };
    let inner: String = chars[i + 1..close].iter().collect();
    let (min, max) = match inner.split_once(',') {
        None => (inner.as_str(), Some(inner.as_str())),
        Some((a, "")) => (a, None),
        Some((a, b)) => (a, Some(b)),
    };
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().unwrap_or(u64::MAX))
    };
    let Some(min) = number(min) else {
        return Ok(None);
    };
    let max = match max {
        Some(m) => match number(m) {
            Some(m) => Some(m),
            None => return Ok(None),
        },
        None => None,
    };
    let limit = u64::from(MAX_REPEAT);
    if min > limit || max.is_some_and(|m| m > limit || m < min) {
        return Err(err("invalid repeat count"));
    }
    Ok(Some(close + 1))
}

/// An escape outside a class, at `i` (the backslash); returns the index after it.
fn escape(chars: &[char], i: usize, out: &mut String) -> Result<usize, GoRegexError> {
    let Some(&c) = chars.get(i + 1) else {
        return Err(err("trailing backslash at end of expression"));
    };
    match c {
        'd' => out.push_str(&format!("[{DIGIT}]")),
        'D' => out.push_str(&format!("[^{DIGIT}]")),
        'w' => out.push_str(&format!("[{WORD}]")),
        'W' => out.push_str(&format!("[^{WORD}]")),
        's' => out.push_str(&format!("[{SPACE}]")),
        'S' => out.push_str(&format!("[^{SPACE}]")),
        'b' => out.push_str(r"(?-u:\b)"),
        'B' => out.push_str(r"(?-u:\B)"),
        '<' | '>' => out.push(c),
        'Q' => return Ok(quote(chars, i + 2, out)),
        'p' | 'P' => return property(chars, i, out),
        '0'..='7' => return octal(chars, i, out),
        'x' => return hex_escape(chars, i, out),
        'a' | 'f' | 't' | 'n' | 'r' | 'v' | 'A' | 'z' => {
            out.push('\\');
            out.push(c);
        }
        c if c.is_ascii_punctuation() || c == ' ' => {
            out.push('\\');
            out.push(c);
        }
        _ => return Err(err(&format!("invalid escape sequence: `\\{c}`"))),
    }
    Ok(i + 2)
}

/// `\xHH` or `\x{H…}`. A surrogate code point, which Go accepts and never matches, is a
/// class that matches nothing.
fn hex_escape(chars: &[char], i: usize, out: &mut String) -> Result<usize, GoRegexError> {
    let bad = || err("invalid escape sequence: `\\x`");
    let (digits, end) = if chars.get(i + 2) == Some(&'{') {
        let close = chars[i + 3..]
            .iter()
            .position(|&c| c == '}')
            .map(|p| i + 3 + p)
            .ok_or_else(bad)?;
        (chars[i + 3..close].iter().collect::<String>(), close + 1)
    } else {
        let digits = chars.get(i + 2..i + 4).ok_or_else(bad)?;
        (digits.iter().collect::<String>(), i + 4)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let value = u32::from_str_radix(&digits, 16).map_err(|_| bad())?;
    match char::from_u32(value) {
        Some(c) => out.push_str(&format!(r"\x{{{:X}}}", u32::from(c))),
        None if (0xD800..=0xDFFF).contains(&value) => out.push_str(r"[^\x{0}-\x{10FFFF}]"),
        None => return Err(bad()),
    }
    Ok(end)
}

/// `\Q…\E` (or to the end): each character a literal. No group, so a repetition after
/// `\E` applies to the last character only, as in Go.
fn quote(chars: &[char], mut i: usize, out: &mut String) -> usize {
    while i < chars.len() {
        if chars[i] == '\\' && chars.get(i + 1) == Some(&'E') {
            return i + 2;
        }
        out.push_str(&regex::escape(&chars[i].to_string()));
        i += 1;
    }
    i
}

/// `\pL`, `\p{Greek}`, and Go's negated `\p{^Greek}` / `\P{^Greek}`.
fn property(chars: &[char], i: usize, out: &mut String) -> Result<usize, GoRegexError> {
    let negated = chars[i + 1] == 'P';
    let Some(&next) = chars.get(i + 2) else {
        return Err(err("invalid character class range"));
    };
    if next != '{' {
        out.push('\\');
        out.push(chars[i + 1]);
        out.push(next);
        return Ok(i + 3);
    }
    let Some(close) = chars[i + 2..]
        .iter()
        .position(|&c| c == '}')
        .map(|p| i + 2 + p)
    else {
        return Err(err("invalid character class range"));
    };
    let name: String = chars[i + 3..close].iter().collect();
    let (name, flip) = match name.strip_prefix('^') {
        Some(n) => (n.to_owned(), true),
        None => (name, false),
    };
    // Go has no `Is…`, `key=value` or binary-property names.
    if name.contains(['=', ':']) || name.starts_with("Is") {
        return Err(err(&format!(
            "invalid character class range: `\\p{{{name}}}`"
        )));
    }
    out.push_str(if negated != flip { r"\P{" } else { r"\p{" });
    out.push_str(&name);
    out.push('}');
    Ok(close + 1)
}

/// Go's octal escapes: `\0`, `\0d`, `\0dd`, `\dd`, `\ddd` (d octal; a lone `\1`–`\7` is
/// a backreference Go refuses).
fn octal(chars: &[char], i: usize, out: &mut String) -> Result<usize, GoRegexError> {
    let first = chars[i + 1];
    let mut end = i + 2;
    while end < chars.len() && end < i + 4 && chars[end].is_digit(8) {
        end += 1;
    }
    if first != '0' && end == i + 2 {
        return Err(err(&format!("invalid escape sequence: `\\{first}`")));
    }
    let digits: String = chars[i + 1..end].iter().collect();
    let value = u32::from_str_radix(&digits, 8).unwrap_or(0);
    out.push_str(&format!(r"\x{{{value:X}}}"));
    Ok(end)
}

/// A class `[…]` at `i`; returns the index after its `]`.
fn class(chars: &[char], i: usize, out: &mut String) -> Result<usize, GoRegexError> {
    let missing = || err("missing closing ]");
    let mut j = i + 1;
    out.push('[');
    if chars.get(j) == Some(&'^') {
        out.push('^');
        j += 1;
    }
    // A `]` first is a literal.
    if chars.get(j) == Some(&']') {
        out.push_str(r"\]");
        j += 1;
    }
    // Was the last item a class (so a `-` after it is literal, as Go reads `[\d-z]`)?
    let mut after_class = false;
    // Was the last character a range's `-`?
    let mut dash = false;
    loop {
        let Some(&c) = chars.get(j) else {
            return Err(missing());
        };
        let was_class = after_class;
        after_class = false;
        let range_dash = dash;
        dash = false;
        match c {
            ']' => {
                out.push(']');
                return Ok(j + 1);
            }
            '[' if chars.get(j + 1) == Some(&':') => {
                let close = (j + 2..chars.len().saturating_sub(1))
                    .find(|&k| chars[k] == ':' && chars[k + 1] == ']')
                    .ok_or_else(missing)?;
                let name: String = chars[j + 2..close].iter().collect();
                if !POSIX.contains(&name.trim_start_matches('^')) {
                    return Err(err(&format!("invalid character class range: `[:{name}:]`")));
                }
                out.push_str(&format!("[:{name}:]"));
                after_class = true;
                j = close + 2;
            }
            '[' | '&' | '~' => {
                out.push('\\');
                out.push(c);
                j += 1;
            }
            '-' => {
                let last = chars.get(j + 1) == Some(&']');
                let first = out.ends_with('[') || out.ends_with("[^");
                // Literal first, last, after a class (`[\d-z]`) and right after a
                // range's `-` (`[a--b]` is the range a to `-`, which Go refuses; never
                // `regex`'s set difference). Otherwise a range.
                if was_class || last || first || range_dash {
                    out.push_str(r"\-");
                } else {
                    out.push('-');
                    dash = true;
                }
                j += 1;
            }
            '\\' => {
                let Some(&e) = chars.get(j + 1) else {
                    return Err(missing());
                };
                match e {
                    'd' => out.push_str(DIGIT),
                    'w' => out.push_str(WORD),
                    's' => out.push_str(SPACE),
                    'D' => out.push_str(&format!("[^{DIGIT}]")),
                    'W' => out.push_str(&format!("[^{WORD}]")),
                    'S' => out.push_str(&format!("[^{SPACE}]")),
                    'p' | 'P' => {
                        j = property(chars, j, out)?;
                        after_class = true;
                        continue;
                    }
                    '0'..='7' => {
                        j = octal(chars, j, out)?;
                        continue;
                    }
                    'x' => {
                        // A surrogate inside a class adds nothing to it.
                        j = hex_escape(chars, j, out)?;
                        continue;
                    }
                    'a' | 'f' | 't' | 'n' | 'r' | 'v' => {
                        out.push('\\');
                        out.push(e);
                    }
                    e if e.is_ascii_punctuation() || e == ' ' => {
                        out.push('\\');
                        out.push(e);
                    }
                    _ => return Err(err(&format!("invalid escape sequence: `\\{e}`"))),
                }
                after_class = matches!(e, 'd' | 'w' | 's' | 'D' | 'W' | 'S');
                j += 2;
            }
            _ => {
                out.push(c);
                j += 1;
            }
        }
    }
}

/// A group at `i`: flags (Go allows only `i m s U`), named groups (only `MatchString` is
/// used, so they become plain groups), and `(?)`, a no-op in Go.
fn group(chars: &[char], i: usize, out: &mut String) -> Result<usize, GoRegexError> {
    if chars.get(i + 1) != Some(&'?') {
        out.push('(');
        return Ok(i + 1);
    }
    let rest: String = chars[i + 2..].iter().take(2).collect();
    if rest.starts_with("P<") || (rest.starts_with('<') && !rest.starts_with("<=")) {
        let open = if rest.starts_with('P') { i + 4 } else { i + 3 };
        let close = chars[open..]
            .iter()
            .position(|&c| c == '>')
            .map(|p| open + p)
            .ok_or_else(|| err("invalid named capture"))?;
        let name: String = chars[open..close].iter().collect();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(err(&format!("invalid named capture: `{name}`")));
        }
        out.push('(');
        return Ok(close + 1);
    }
    let mut j = i + 2;
    let mut flags = String::new();
    while let Some(&c) = chars.get(j) {
        match c {
            'i' | 'm' | 's' | 'U' | '-' => flags.push(c),
            ')' | ':' => break,
            _ => return Err(err(&format!("invalid or unsupported Perl syntax: `(?{c}`"))),
        }
        j += 1;
    }
    let Some(&end) = chars.get(j) else {
        return Err(err("missing closing )"));
    };
    if flags.matches('-').count() > 1 || flags.ends_with('-') {
        return Err(err("invalid or unsupported Perl syntax"));
    }
    if flags.is_empty() && end == ')' {
        return Ok(j + 1);
    }
    out.push_str("(?");
    out.push_str(&flags);
    out.push(end);
    Ok(j + 1)
}

/// Go's `repeatIsValid`: counted repetitions nested inside each other may multiply to
/// at most 1000 (`(a{500}){3}` is refused, `(?:a{30}){30}` is not).
fn repeats_are_valid(ast: &Ast, budget: u32) -> bool {
    match ast {
        Ast::Repetition(rep) => {
            let mut budget = budget;
            if let RepetitionKind::Range(range) = &rep.op.kind {
                let m = match range {
                    RepetitionRange::Exactly(n) | RepetitionRange::AtLeast(n) => *n,
                    RepetitionRange::Bounded(_, max) => *max,
                };
                if m > budget {
                    return false;
                }
                budget = budget.checked_div(m).unwrap_or(budget);
            }
            repeats_are_valid(&rep.ast, budget)
        }
        Ast::Group(g) => repeats_are_valid(&g.ast, budget),
        Ast::Alternation(a) => a.asts.iter().all(|x| repeats_are_valid(x, budget)),
        Ast::Concat(c) => c.asts.iter().all(|x| repeats_are_valid(x, budget)),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[pattern, input, "true" | "false" | "error"]`, from Go's `regexp` (README there).
    fn cases() -> Vec<[String; 3]> {
        serde_json::from_str(include_str!("testdata/go_regexp_cases.json")).unwrap()
    }

    /// Go accepts these; they do not fit [`SIZE_LIMIT`] (or `regex`'s nesting) here.
    const TOO_LARGE_HERE: &[&str] = &[r"\pL{1000}"];
    /// Go refuses these Unicode property names; `regex` knows them. Accepting a pattern
    /// Go refuses changes no secret Go sealed.
    const ACCEPTED_HERE: &[&str] = &[r"\p{Emoji}", r"\p{Alphabetic}"];

    #[test]
    fn patterns_mean_what_they_mean_in_go() {
        let mut failures = Vec::new();
        for [pattern, input, go] in cases() {
            if TOO_LARGE_HERE.contains(&pattern.as_str()) {
                assert!(compile(&pattern).is_err(), "{pattern}");
                continue;
            }
            if ACCEPTED_HERE.contains(&pattern.as_str()) {
                assert_eq!(go, "error");
                continue;
            }
            let here = match compile(&pattern) {
                Ok(re) => re.is_match(&input).to_string(),
                Err(_) => "error".to_owned(),
            };
            if here != go {
                failures.push(format!("{pattern:?} on {input:?}: Go {go}, here {here}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn real_host_patterns_compile_small() {
        for p in [
            r"^[\w-]{1,63}\.example\.com$",
            r"^[\w-]{1,1000}$",
            r"^(?:[\w-]+\.)*googleapis\.com(:443)?$",
            r"(?i)^\Qapi.github.com\E$",
        ] {
            assert!(compile(p).is_ok(), "{p}");
        }
    }
}
