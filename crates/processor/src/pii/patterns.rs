//! One pattern per [`PiiKind`]: a bounded regex (bytes API, ASCII only) plus a check
//! on the candidate and up to two bytes either side of it, which the regex crate cannot
//! express (it has no look-around).
//!
//! Every pattern matches at most [`MAX_MATCH_LEN`](super::detect::MAX_MATCH_LEN) bytes,
//! and its check looks at most [`CONTEXT`](super::detect::CONTEXT) bytes outside the
//! match; the streaming scanner relies on both bounds (asserted in tests).

use std::ops::Range;
use std::sync::LazyLock;

use regex::bytes::Regex;

use super::kind::PiiKind;

/// Email addresses: a local part of 1–64 of `[A-Za-z0-9._%+-]`, `@`, one to four
/// DNS labels and an alphabetic TLD of 2–24 letters, ending at a word boundary.
///
/// Does not match: `user@localhost` (no dot), `pkg@1.2.3` (numeric TLD), `@handle`,
/// non-ASCII addresses, or asset names like `logo@2x.png` (TLDs that are common file
/// extensions are refused). Local parts longer than 64 bytes match their last 64 bytes.
const EMAIL: &str = r"(?x-u)
    [A-Za-z0-9._%+\-]{1,64} @
    (?: [A-Za-z0-9] (?: [A-Za-z0-9\-]{0,61} [A-Za-z0-9] )? \. ){1,4}
    [A-Za-z]{2,24} \b";

/// Payment card numbers: 13–19 digits, either unbroken or as a 4-digit group followed
/// by 2–4 groups of 3–6 digits separated by single spaces or by single dashes (one
/// style per number: 4-4-4-4, 4-6-5, 4-4-4-4-3). The number must pass the Luhn check
/// and start with 2–6 (the major networks: Mastercard, Amex, Diners, JCB, Visa,
/// Discover, UnionPay). When a trailing group breaks the Luhn check, shorter group
/// prefixes are tried.
///
/// Does not match: numbers failing Luhn; numbers starting 0, 1, 7, 8 or 9 (so neither
/// 13-digit millisecond timestamps nor most database ids); digits touching a letter,
/// digit or underscore (a longer run, `order_4111...`); the integer or fractional part
/// of a decimal (`0.4111...`); numbers continued by `-digit` or `.digit`.
const CARD: &str = r"(?x-u)
    \b (?: [0-9]{13,19}
         | [0-9]{4} (?: \x20 [0-9]{3,6} ){2,4}
         | [0-9]{4} (?: - [0-9]{3,6} ){2,4}
       ) \b";

/// US social security numbers written `ddd-dd-dddd`, excluding areas 000, 666 and
/// 900–999, group 00 and serial 0000, which are never issued.
///
/// Does not match: unformatted 9-digit runs or space-separated forms (too many false
/// positives), or a `ddd-dd-dddd` inside a longer dashed or dotted number.
const SSN: &str = r"(?-u)\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b";

/// Phone numbers. North American: area code and exchange starting 2–9, written
/// `415-555-0100`, `415.555.0100`, `415 555 0100` (one separator style) or
/// `(415) 555-0100`, optionally after `+1`, `+1 `, `+1-`, `1-` or `1 `. International: `+`,
/// then 8–15 digits (E.164) with optional single spaces, dots or dashes between them,
/// as in `+44 20 7946 0958` or `+14155550100`.
///
/// Does not match: plain digit runs without `+` (`4155550100`), dates (`2026-11-24`),
/// dotted runs continuing a number (`1.415.555.0100`, `415.555.0100.2`), numbers
/// touching letters or digits, or international numbers without the leading `+`. A bare
/// three-part version `415.555.0100` is indistinguishable from a phone and matches.
const PHONE: &str = r"(?x-u)
    (?: (?: \+1 [\x20.\-]? | \b 1 [\x20\-] )?
        (?: [2-9][0-9]{2} - [2-9][0-9]{2} - [0-9]{4}
          | [2-9][0-9]{2} \. [2-9][0-9]{2} \. [0-9]{4}
          | [2-9][0-9]{2} \x20 [2-9][0-9]{2} \x20 [0-9]{4}
          | \( [2-9][0-9]{2} \) \x20? [2-9][0-9]{2} [\x20.\-] [0-9]{4}
        )
      | \+ [1-9] (?: [\x20.\-]? [0-9] ){7,14}
    ) \b";

/// API keys and tokens with a recognisable shape:
/// - Anthropic `sk-ant-<tag>-…` and OpenAI `sk-proj-`/`sk-svcacct-`/`sk-admin-…`
///   (32–200 of `[A-Za-z0-9_-]`), legacy OpenAI `sk-` + 32–200 alphanumerics mixing
///   digits, upper and lower case;
/// - GitHub `ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_` + 36 or more alphanumerics and
///   `github_pat_…`;
/// - AWS access key ids `AKIA`/`ASIA` + exactly 16 of `[A-Z0-9]`;
/// - Slack `xoxa-`/`xoxb-`/`xoxp-`/`xoxr-…`; Stripe `sk_live_`/`rk_live_…`;
/// - Google API keys `AIza` + 35 characters (39 in all);
/// - JWT-looking `eyJ….eyJ…[.signature]` (header up to 200, payload up to 500,
///   signature up to 300 characters; a longer payload has its first 500 redacted,
///   which is enough to make the token unusable).
///
/// Does not match: tokens glued to a preceding `[A-Za-z0-9_-]` (`task-…`), kebab-case
/// words after `sk-`, AWS secret access keys, Stripe test keys, AWS ids longer than 20,
/// Google keys longer than 39, or opaque tokens with no known prefix.
const API_KEY: &str = r"(?x-u)
      sk-ant- [a-z0-9]{2,12} - [A-Za-z0-9_\-]{32,200}
    | sk- (?: proj | svcacct | admin ) - [A-Za-z0-9_\-]{32,200}
    | sk- [A-Za-z0-9]{32,200}
    | gh[pousr]_ [A-Za-z0-9]{36,251}
    | github_pat_ [A-Za-z0-9_]{22,251}
    | (?: AKIA | ASIA ) [A-Z0-9]{16}
    | xox[abpr]- [A-Za-z0-9\-]{10,250}
    | (?: sk | rk ) _live_ [A-Za-z0-9]{20,247}
    | AIza [A-Za-z0-9_\-]{35}
    | eyJ [A-Za-z0-9_\-]{8,200} \. eyJ [A-Za-z0-9_\-]{8,500} (?: \. [A-Za-z0-9_\-]{16,300} )?";

/// Regex sources by kind, for tests that bound match lengths.
#[cfg(test)]
pub(super) const SOURCES: [(PiiKind, &str); 5] = [
    (PiiKind::Email, EMAIL),
    (PiiKind::CreditCard, CARD),
    (PiiKind::Ssn, SSN),
    (PiiKind::Phone, PHONE),
    (PiiKind::ApiKey, API_KEY),
];

/// TLDs that are really file extensions (`logo@2x.png`); none is a TLD in use.
const FILE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "css", "js", "mjs", "ts", "tsx",
    "jsx", "json", "map", "txt", "yaml", "yml", "toml", "lock", "html", "htm",
];

/// The result of checking a regex candidate.
enum Verdict {
    /// A match, possibly shorter than the candidate.
    Accept(Range<usize>),
    /// No match starts before `resume` (always past the candidate's start).
    Reject { resume: usize },
}

/// A compiled pattern and its check.
pub(super) struct Pattern {
    regex: Regex,
    check: fn(&[u8], Range<usize>) -> Verdict,
}

static PATTERNS: LazyLock<[Pattern; 5]> = LazyLock::new(|| {
    // The sources are constants, compiled by every test run.
    #[allow(clippy::expect_used)]
    let compile = |src: &str| Regex::new(src).expect("PII patterns are valid regexes");
    [
        Pattern {
            regex: compile(EMAIL),
            check: check_email,
        },
        Pattern {
            regex: compile(CARD),
            check: check_card,
        },
        Pattern {
            regex: compile(SSN),
            check: check_ssn,
        },
        Pattern {
            regex: compile(PHONE),
            check: check_phone,
        },
        Pattern {
            regex: compile(API_KEY),
            check: check_api_key,
        },
    ]
});

/// The pattern for `kind`.
pub(super) fn pattern(kind: PiiKind) -> &'static Pattern {
    &PATTERNS[kind.index()]
}

// === impl Pattern ===

impl Pattern {
    /// The first accepted match starting at or after `pos`. Bytes before `pos` are
    /// context only (word boundaries, decimal points).
    pub(super) fn next(&self, hay: &[u8], mut pos: usize) -> Option<Range<usize>> {
        while pos <= hay.len() {
            let m = self.regex.find_at(hay, pos)?;
            match (self.check)(hay, m.range()) {
                Verdict::Accept(r) => return Some(r),
                Verdict::Reject { resume } => pos = resume,
            }
        }
        None
    }
}

/// True for a full payment card number: 13–19 ASCII digits, a major-network first
/// digit (2–6) and a valid Luhn check digit.
pub(super) fn is_card_number(digits: &[u8]) -> bool {
    digits.iter().all(u8::is_ascii_digit) && is_card_span(digits)
}

/// [`is_card_number`] for a span of digits and separators that starts with a digit.
fn is_card_span(span: &[u8]) -> bool {
    let digits = || span.iter().copied().filter(u8::is_ascii_digit);
    (13..=19).contains(&digits().count()) && (b'2'..=b'6').contains(&span[0]) && luhn(digits())
}

fn luhn(digits: impl DoubleEndedIterator<Item = u8>) -> bool {
    let sum: u32 = digits
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            match (i % 2 == 1, d * 2) {
                (false, _) => d,
                (true, twice) if twice > 9 => twice - 9,
                (true, twice) => twice,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

// === checks ===

fn check_email(hay: &[u8], m: Range<usize>) -> Verdict {
    let at = m.start + hay[m.clone()].iter().position(|b| *b == b'@').unwrap_or(0);
    let tld_start = m.start + hay[m.clone()].iter().rposition(|b| *b == b'.').unwrap_or(0) + 1;
    let tld = &hay[tld_start..m.end];
    if FILE_EXTENSIONS
        .iter()
        .any(|ext| tld.eq_ignore_ascii_case(ext.as_bytes()))
    {
        // Every candidate starting before the `@` shares this domain.
        return Verdict::Reject { resume: at + 1 };
    }
    Verdict::Accept(m)
}

fn check_card(hay: &[u8], m: Range<usize>) -> Verdict {
    let reject = Verdict::Reject {
        resume: m.start + 1,
    };
    if !(b'2'..=b'6').contains(&hay[m.start]) || continues_before(hay, m.start) {
        return reject;
    }
    // Longest first, then each shorter prefix ending at a group boundary.
    let mut end = m.end;
    loop {
        let span = &hay[m.start..end];
        let digits = span.iter().filter(|b| b.is_ascii_digit()).count();
        if digits < 13 {
            return reject;
        }
        if digits <= 19 && is_card_span(span) && !continues_after(hay, end) {
            return Verdict::Accept(m.start..end);
        }
        match span.iter().rposition(|b| !b.is_ascii_digit()) {
            Some(sep) => end = m.start + sep,
            None => return reject,
        }
    }
}

fn check_ssn(hay: &[u8], m: Range<usize>) -> Verdict {
    let s = &hay[m.clone()];
    let (area, group, serial) = (&s[0..3], &s[4..6], &s[7..11]);
    let valid =
        area != b"000" && area != b"666" && area[0] != b'9' && group != b"00" && serial != b"0000";
    if !valid || continues_before(hay, m.start) || continues_after(hay, m.end) {
        return Verdict::Reject {
            resume: m.start + 1,
        };
    }
    Verdict::Accept(m)
}

fn check_phone(hay: &[u8], m: Range<usize>) -> Verdict {
    let prev = m.start.checked_sub(1).map(|i| hay[i]);
    let glued = prev.is_some_and(|b| is_word(b) || b == b'+');
    if glued || continues_before(hay, m.start) || continues_after(hay, m.end) {
        return Verdict::Reject {
            resume: m.start + 1,
        };
    }
    Verdict::Accept(m)
}

fn check_api_key(hay: &[u8], m: Range<usize>) -> Verdict {
    let reject = Verdict::Reject {
        resume: m.start + 1,
    };
    let s = &hay[m.clone()];
    let next = hay.get(m.end).copied();
    let prev = m.start.checked_sub(1).map(|i| hay[i]);
    if prev.is_some_and(|b| is_word(b) || b == b'-') {
        return reject;
    }
    let ok = if s.starts_with(b"AKIA") || s.starts_with(b"ASIA") {
        !next.is_some_and(|b| b.is_ascii_alphanumeric())
    } else if s.starts_with(b"AIza") {
        !next.is_some_and(|b| is_word(b) || b == b'-')
    } else if s.starts_with(b"sk-") && s[3..].iter().all(u8::is_ascii_alphanumeric) {
        // Legacy OpenAI: random base62 mixes digits and both cases; words do not.
        let rest = &s[3..];
        rest.iter().any(u8::is_ascii_digit)
            && rest.iter().any(u8::is_ascii_uppercase)
            && rest.iter().any(u8::is_ascii_lowercase)
    } else {
        true
    };
    if !ok {
        return reject;
    }
    Verdict::Accept(m)
}

/// `[A-Za-z0-9_]`, as in the regex `\b`.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The bytes before `i` are `<digit>.` or `<digit>-`: the candidate continues a number.
fn continues_before(hay: &[u8], i: usize) -> bool {
    i >= 2 && matches!(hay[i - 1], b'.' | b'-') && hay[i - 2].is_ascii_digit()
}

/// The bytes at `i` are `.<digit>` or `-<digit>`: the number goes on.
fn continues_after(hay: &[u8], i: usize) -> bool {
    matches!(hay.get(i), Some(b'.' | b'-')) && hay.get(i + 1).is_some_and(u8::is_ascii_digit)
}
