//! `allowed_git_refs`: which refs a push made with the secret may create, update or
//! delete (`refs/heads/agent/*`).
//!
//! A push over smart HTTP is a POST to `…/git-receive-pack` whose body starts with the
//! ref-update commands, one pkt-line each (`<old-oid> <new-oid> <ref>`, the first
//! followed by NUL and the client's capabilities), ended by a flush packet `0000`; the
//! pack follows. They are read here exactly as git's `receive-pack` reads them
//! (`read_head_info`, `queue_command`): a trailing LF chomped, the ref ending at a NUL,
//! SHA-1 or SHA-256 object names, `shallow` lines skipped. What it could read otherwise
//! is refused instead: a signed push (`push-cert`, whose commands live inside the
//! certificate), a delimiter or response-end packet, a malformed line, a ref name git
//! itself would refuse, a body with a content coding (http-backend inflates gzip).
//!
//! Patterns are globs over `/`-separated segments: `*` within one segment, `**` any
//! number of them (none included), as `allowed_paths`. A pattern must start with
//! `refs/`: the server sees full ref names, never `main`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokenizer_core::glob::Glob;

/// How many times a path is percent-decoded to look for `git-receive-pack`.
const MAX_DECODES: usize = 3;

/// The longest pkt-line git sends (`LARGE_PACKET_MAX`).
const MAX_PKT: usize = 65520;

/// One `allowed_git_refs` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitRefPattern(Glob);

impl GitRefPattern {
    /// A pattern such as `refs/heads/agent/*`.
    pub fn new(text: &str) -> Result<Self, String> {
        if !text.starts_with("refs/") {
            return Err(format!(
                "git ref pattern {text:?} must start with refs/ (e.g. refs/heads/{text})"
            ));
        }
        Glob::new(text, Some('/')).map(Self)
    }

    /// Does the pattern match the whole ref name?
    pub fn matches(&self, name: &str) -> bool {
        self.0.matches(name)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Serialize for GitRefPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for GitRefPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::new(&text).map_err(serde::de::Error::custom)
    }
}

/// What a ref-update command does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefChange {
    /// The old object name is all zeros.
    Create,
    /// Both are object names.
    Update,
    /// The new object name is all zeros.
    Delete,
}

impl std::fmt::Display for RefChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        })
    }
}

/// One ref-update command of a push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefUpdate {
    /// The full ref name, e.g. `refs/heads/main`.
    pub name: String,
    /// Create, update or delete.
    pub change: RefChange,
}

/// Why a push body could not be judged (fixed texts, at most a clipped ref name).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GitPushError {
    /// Not a pkt-line, or a line `receive-pack` would die on.
    #[error("git push: {0}")]
    Malformed(&'static str),
    /// A form this tokenizer does not read, so cannot judge.
    #[error("git push: {0} is not supported with allowed_git_refs")]
    Unsupported(&'static str),
    /// The body ended before the commands' flush packet.
    #[error("git push: the body ended before the ref-update commands did")]
    Truncated,
}

/// Reads a push's commands from a growing buffer, each packet once, so that reading a
/// body that arrives a byte at a time stays linear.
#[derive(Debug, Default)]
pub struct CommandReader {
    at: usize,
    updates: Vec<RefUpdate>,
    done: bool,
    error: Option<GitPushError>,
}

impl CommandReader {
    /// Read what `buf` (the body so far, from its start) adds; true once the commands
    /// are complete or unreadable (nothing more needs to be read).
    pub fn advance(&mut self, buf: &[u8]) -> bool {
        while !self.done && self.error.is_none() {
            match self.next_packet(buf) {
                Ok(Some(())) => {}
                Ok(None) => return false,
                Err(e) => self.error = Some(e),
            }
        }
        true
    }

    /// The commands, once [`CommandReader::advance`] said so; `Truncated` if the body
    /// ended first.
    pub fn finish(self) -> Result<Vec<RefUpdate>, GitPushError> {
        match (self.error, self.done) {
            (Some(e), _) => Err(e),
            (None, true) => Ok(self.updates),
            (None, false) => Err(GitPushError::Truncated),
        }
    }

    /// One packet at `self.at`: `Ok(None)` when `buf` does not hold all of it yet.
    fn next_packet(&mut self, buf: &[u8]) -> Result<Option<()>, GitPushError> {
        let Some(head) = buf.get(self.at..self.at + 4) else {
            return Ok(None);
        };
        let len = pkt_len(head).ok_or(GitPushError::Malformed("not a pkt-line"))?;
        match len {
            0 => {
                self.done = true;
                self.at += 4;
                return Ok(Some(()));
            }
            1 | 2 => return Err(GitPushError::Malformed("unexpected delimiter packet")),
            3 => return Err(GitPushError::Malformed("not a pkt-line")),
            n if n > MAX_PKT => return Err(GitPushError::Malformed("packet too long")),
            _ => {}
        }
        let Some(payload) = buf.get(self.at + 4..self.at + len) else {
            return Ok(None);
        };
        self.at += len;
        let line = payload.strip_suffix(b"\n").unwrap_or(payload);
        if line.starts_with(b"shallow ") {
            return Ok(Some(()));
        }
        let line = line.split(|&b| b == 0).next().unwrap_or_default();
        if line == b"push-cert" {
            return Err(GitPushError::Unsupported("a signed push (push-cert)"));
        }
        self.updates.push(parse_command(line)?);
        Ok(Some(()))
    }
}

/// The four hex digits of a pkt-line's length (either case, as git's `hexval`).
fn pkt_len(head: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(head).ok()?;
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    usize::from_str_radix(text, 16).ok()
}

/// `<old> SP <new> SP <ref>` with SHA-1 (40) or SHA-256 (64) hex object names.
fn parse_command(line: &[u8]) -> Result<RefUpdate, GitPushError> {
    let bad = GitPushError::Malformed("expected old/new/ref");
    let hexsz = [40, 64]
        .into_iter()
        .find(|&n| line.get(n) == Some(&b' ') && line.get(2 * n + 1) == Some(&b' '))
        .ok_or(bad.clone())?;
    let (old, new) = (&line[..hexsz], &line[hexsz + 1..2 * hexsz + 1]);
    if !old.iter().chain(new).all(u8::is_ascii_hexdigit) {
        return Err(bad);
    }
    let name = std::str::from_utf8(&line[2 * hexsz + 2..])
        .map_err(|_| GitPushError::Malformed("a ref name that is not UTF-8"))?;
    if !is_valid_ref(name) {
        return Err(GitPushError::Malformed("a ref name git refuses"));
    }
    let zero = |oid: &[u8]| oid.iter().all(|&b| b == b'0');
    let change = match (zero(old), zero(new)) {
        (true, _) => RefChange::Create,
        (false, true) => RefChange::Delete,
        (false, false) => RefChange::Update,
    };
    Ok(RefUpdate {
        name: name.to_owned(),
        change,
    })
}

/// git's `check_refname_format` for a full ref under `refs/`: no empty, `.`-led or
/// `.lock`-ended component, no `..`, `@{`, control characters, space, `~^:?*[\`, no
/// trailing `.` or `/`, and not `@`.
pub fn is_valid_ref(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("refs/") else {
        return false;
    };
    if rest.is_empty() || name.ends_with('.') || name.contains("..") || name.contains("@{") {
        return false;
    }
    let bad_char = |c: char| c.is_control() || " ~^:?*[\\".contains(c);
    if name.chars().any(bad_char) {
        return false;
    }
    name.split('/')
        .all(|c| !c.is_empty() && !c.starts_with('.') && !c.ends_with(".lock"))
}

/// Is this request a push, as a git server would route it: a path naming
/// `git-receive-pack` (as written or percent-decoded up to three times, any case,
/// anywhere in it) or a receive-pack content type? The ref advertisement (`GET …/info/refs?service=git-receive-pack`)
/// updates nothing and is not one.
pub fn is_push<'a>(path: &str, content_types: impl IntoIterator<Item = &'a [u8]>) -> bool {
    const NAME: &str = "git-receive-pack";
    let names = |s: &str| s.to_ascii_lowercase().contains(NAME);
    // Decoded again (a server, or a rewrite in front of it, may decode twice), a few
    // rounds at most: unbounded rounds would cost quadratic time on `%2525…`.
    let mut text = path.to_owned();
    let mut named = names(&text);
    for _ in 0..MAX_DECODES {
        if named {
            break;
        }
        let next = percent_encoding::percent_decode_str(&text)
            .decode_utf8_lossy()
            .into_owned();
        if next == text {
            break;
        }
        text = next;
        named = names(&text);
    }
    named
        || content_types
            .into_iter()
            .any(|ct| names(&String::from_utf8_lossy(ct)))
}

/// Every update must match at least one of each pattern list (one list per secret that
/// has the rule): the first update that may not be made, and the list that refuses it.
pub fn refused<'a, 'p>(
    updates: &'a [RefUpdate],
    rules: &[&'p [GitRefPattern]],
) -> Option<(&'a RefUpdate, &'p [GitRefPattern])> {
    updates.iter().find_map(|u| {
        rules
            .iter()
            .find(|set| !set.iter().any(|p| p.matches(&u.name)))
            .map(|set| (u, *set))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const Z: &str = "0000000000000000000000000000000000000000";

    fn pkt(payload: &str) -> String {
        format!("{:04x}{payload}", payload.len() + 4)
    }

    fn read(body: &[u8]) -> Result<Vec<RefUpdate>, GitPushError> {
        let mut r = CommandReader::default();
        r.advance(body);
        r.finish()
    }

    fn names(body: &str) -> Vec<(String, RefChange)> {
        read(body.as_bytes())
            .unwrap()
            .into_iter()
            .map(|u| (u.name, u.change))
            .collect()
    }

    #[test]
    fn reads_commands_as_receive_pack_does() {
        let body = format!(
            "{}{}{}0000PACK...",
            pkt(&format!(
                "{A} {B} refs/heads/agent/x\0report-status side-band-64k\n"
            )),
            pkt(&format!("{Z} {B} refs/heads/agent/new\n")),
            pkt(&format!("{A} {Z} refs/heads/old")),
        );
        assert_eq!(
            names(&body),
            [
                ("refs/heads/agent/x".to_owned(), RefChange::Update),
                ("refs/heads/agent/new".to_owned(), RefChange::Create),
                ("refs/heads/old".to_owned(), RefChange::Delete),
            ]
        );
    }

    #[test]
    fn sha256_names_and_shallow_lines() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let body = format!(
            "{}{}0000",
            pkt(&format!("shallow {}\n", "c".repeat(64))),
            pkt(&format!("{a} {b} refs/heads/main\0object-format=sha256\n"))
        );
        assert_eq!(names(&body)[0].0, "refs/heads/main");
        // Upper-case length digits are read as git reads them.
        let line = format!("{A} {B} refs/heads/abcdefghi");
        assert!(pkt(&line).starts_with("006a"));
        assert_eq!(
            names(&format!("006A{line}0000"))[0].0,
            "refs/heads/abcdefghi"
        );
    }

    #[test]
    fn byte_by_byte_arrival_is_read_once_and_completes_at_the_flush() {
        let body = format!(
            "{}0000PACKDATA",
            pkt(&format!("{A} {B} refs/heads/agent/x\0caps\n"))
        );
        let mut r = CommandReader::default();
        let mut done_at = None;
        for end in 1..=body.len() {
            if r.advance(&body.as_bytes()[..end]) {
                done_at = Some(end);
                break;
            }
        }
        assert_eq!(done_at, Some(body.find("PACK").unwrap()));
        assert_eq!(r.finish().unwrap()[0].name, "refs/heads/agent/x");
    }

    #[test]
    fn what_cannot_be_judged_is_refused() {
        let cases: Vec<(String, &str)> = vec![
            (pkt(&format!("{A} {B} refs/heads/a")), "ended before"),
            ("zzzz".to_owned(), "not a pkt-line"),
            ("0003".to_owned(), "not a pkt-line"),
            ("0001".to_owned(), "delimiter"),
            (format!("{}0000", pkt("push-cert\0caps\n")), "push-cert"),
            (
                format!("{}0000", pkt(&format!("{A} {B}  refs/heads/a"))),
                "git refuses",
            ),
            (
                format!("{}0000", pkt(&format!("{A}x{B} refs/heads/a"))),
                "old/new/ref",
            ),
            (
                format!("{}0000", pkt(&format!("{A} {B} refs/heads/a/../main"))),
                "git refuses",
            ),
            (
                format!("{}0000", pkt(&format!("{A} {B} main"))),
                "git refuses",
            ),
            (
                format!("{}0000", pkt(&format!("{A} {B} refs/heads/x.lock"))),
                "git refuses",
            ),
            (
                format!(
                    "{}0000",
                    pkt(&format!("{A} {B} refs/heads/a\nrefs/heads/b"))
                ),
                "git refuses",
            ),
            (
                format!(
                    "{}0000",
                    pkt(&format!("{} {B} refs/heads/a", "g".repeat(40)))
                ),
                "old/new/ref",
            ),
            ("ffff".to_owned(), "too long"),
        ];
        for (body, want) in cases {
            let err = read(body.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(want), "{body:?}: {err}");
        }
    }

    #[test]
    fn patterns_judge_every_update_against_every_secret() {
        let p = |s: &str| GitRefPattern::new(s).unwrap();
        let agent = [p("refs/heads/agent/*")];
        let tags = [p("refs/tags/**"), p("refs/heads/agent/*")];
        let update = |n: &str| RefUpdate {
            name: n.to_owned(),
            change: RefChange::Update,
        };
        let ok = [update("refs/heads/agent/x")];
        assert_eq!(refused(&ok, &[&agent, &tags]), None);
        let nested = [update("refs/heads/agent/a/b")];
        assert!(refused(&nested, &[&agent]).is_some());
        let mixed = [update("refs/heads/agent/x"), update("refs/heads/main")];
        assert_eq!(
            refused(&mixed, &[&agent]).unwrap().0.name,
            "refs/heads/main"
        );
        let tag = [update("refs/tags/v1")];
        assert!(refused(&tag, &[&tags]).is_none());
        assert!(refused(&tag, &[&tags, &agent]).is_some());
        assert!(refused(&ok, &[&[]]).is_some(), "[] allows no push");
    }

    #[test]
    fn patterns_must_name_full_refs() {
        assert!(GitRefPattern::new("refs/heads/agent/*").is_ok());
        let err = GitRefPattern::new("agent/*").unwrap_err();
        assert!(err.contains("refs/heads/agent/*"), "{err}");
        assert!(serde_json::from_str::<GitRefPattern>(r#""main""#).is_err());
    }

    #[test]
    fn pushes_are_recognized_by_path_or_type() {
        let none: [&[u8]; 0] = [];
        assert!(is_push("/o/r.git/git-receive-pack", none));
        assert!(is_push("/o/r/git-receive-pack", none));
        assert!(is_push("/o/r.git/git%2Dreceive-pack", none));
        assert!(is_push("/o/r.git/git%252Dreceive%25252Dpack", none));
        assert!(is_push("/o/r.git/GIT-RECEIVE-PACK/", none));
        let push: &[u8] = b"application/x-git-receive-pack-request";
        assert!(is_push("/x", [&b"text/plain"[..], push]));
        assert!(!is_push("/o/r.git/info/refs", none));
        let fetch: &[u8] = b"application/x-git-upload-pack-request";
        assert!(!is_push("/o/r.git/git-upload-pack", [fetch]));
    }
}
