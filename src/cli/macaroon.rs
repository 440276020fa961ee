//! `tokenizer macaroon`: keys and tokens for `macaroon_auth` secrets.
//!
//! - `genkey`: a random 32-byte key as standard base64 (line 1) and the
//!   `{"macaroon_auth":{"key":…}}` JSON to put in a secret before sealing it (line 2).
//! - `mint --key KEY [caveats]`: a new token as `FlyV1 fm2_…`, the whole value of a
//!   `Proxy-Authorization` header, as Go's `MacaroonAuthConfig.Macaroon` returns it and
//!   Go's client sends it. `--bare` prints the `fm2_…` token alone.
//! - `attenuate --token TOKEN [caveats]`: the same, with caveats added to every tokenizer
//!   macaroon in TOKEN; no key needed. Other parts of a bundle are kept.
//! - `inspect --token TOKEN [--key KEY]`: one JSON object per macaroon (location, key id,
//!   caveats). Without `--key` nothing is verified.
//!
//! KEY and TOKEN may be `-` to read standard input. Caveat flags: `--method`, `--path`,
//! `--path-prefix`, `--path-pattern`, `--host` (each repeatable: any listed value is
//! allowed), `--not-before`/`--not-after` (unix seconds or RFC 3339) and `--ttl`
//! (`90s`, `30m`, `1h30m`, `7d`).

use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use crypto_box::aead::OsRng;
use crypto_box::aead::rand_core::RngCore;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

use super::Failure;
use super::seal::read_arg_or_stdin;
use crate::auth::macaroon::{self, Caveat, LOCATION, Token};
use tokenizer_core::b64;

/// The latest `not_after` written when only `--not-before` is given:
/// 9999-12-31T23:59:59Z. Go's `time.Unix` overflows on larger values and would read
/// them as long expired.
const FOREVER: i64 = 253_402_300_799;

/// Bytes in a key from `genkey`.
const KEY_LEN: usize = 32;

#[derive(Args)]
pub struct MacaroonCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Print a new random key, then the `macaroon_auth` JSON that uses it.
    Genkey,
    /// Mint a token with the key; prints `FlyV1 fm2_…` for Proxy-Authorization.
    Mint(MintArgs),
    /// Add caveats to a token (no key needed); prints the narrower token.
    Attenuate(AttenuateArgs),
    /// Print a token's macaroons and caveats as JSON (verified only with --key).
    Inspect(InspectArgs),
}

#[derive(Args)]
struct MintArgs {
    /// The `macaroon_auth` key, standard base64, or `-` to read it from standard input.
    #[arg(long, value_name = "BASE64")]
    key: String,
    #[command(flatten)]
    caveats: CaveatArgs,
    /// Print only the `fm2_…` token, without the `FlyV1 ` scheme.
    #[arg(long)]
    bare: bool,
}

#[derive(Args)]
struct AttenuateArgs {
    /// The token (`FlyV1 fm2_…` or `fm2_…`), or `-` to read it from standard input.
    #[arg(long)]
    token: String,
    #[command(flatten)]
    caveats: CaveatArgs,
    /// Print only the token(s), without the `FlyV1 ` scheme.
    #[arg(long)]
    bare: bool,
}

#[derive(Args)]
struct InspectArgs {
    /// The token (`FlyV1 fm2_…` or `fm2_…`), or `-` to read it from standard input.
    #[arg(long)]
    token: String,
    /// Also check signatures with this key (standard base64, or `-` for standard input).
    #[arg(long, value_name = "BASE64")]
    key: Option<String>,
}

#[derive(Args)]
struct CaveatArgs {
    /// Allow only this HTTP method (repeat to allow several).
    #[arg(long = "method", value_name = "METHOD")]
    methods: Vec<String>,
    /// Allow only this exact escaped path, e.g. `/v1/a%20b` (repeatable).
    #[arg(long = "path", value_name = "PATH")]
    paths: Vec<String>,
    /// Allow only escaped paths starting with this (repeatable).
    #[arg(long = "path-prefix", value_name = "PREFIX")]
    path_prefixes: Vec<String>,
    /// Allow only escaped paths this regular expression matches anywhere (repeatable).
    #[arg(long = "path-pattern", value_name = "REGEX")]
    path_patterns: Vec<String>,
    /// Allow only this Host, port included if the client sends one (repeatable).
    #[arg(long = "host", value_name = "HOST")]
    hosts: Vec<String>,
    /// Not valid before this time: unix seconds or RFC 3339.
    #[arg(long, value_name = "TIME")]
    not_before: Option<String>,
    /// Not valid after this time: unix seconds or RFC 3339.
    #[arg(long, value_name = "TIME", conflicts_with = "ttl")]
    not_after: Option<String>,
    /// Valid for this long from now: `90s`, `30m`, `1h30m`, `7d`.
    #[arg(long, value_name = "DURATION")]
    ttl: Option<String>,
}

pub fn run(cmd: MacaroonCommand) -> Result<(), Failure> {
    match cmd.action {
        Action::Genkey => genkey(),
        Action::Mint(args) => mint(args),
        Action::Attenuate(args) => attenuate(args),
        Action::Inspect(args) => inspect(args),
    }
}

fn genkey() -> Result<(), Failure> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    OsRng.fill_bytes(&mut key[..]);
    let encoded = Zeroizing::new(b64::encode(&key[..]));
    let text = Zeroizing::new(format!(
        "{}\n{}",
        encoded.as_str(),
        serde_json::json!({ "macaroon_auth": { "key": encoded.as_str() } })
    ));
    super::out::print_line(&text)
}

fn mint(args: MintArgs) -> Result<(), Failure> {
    let key = read_key(&args.key)?;
    let caveats = args.caveats.build(now())?;
    if caveats.is_empty() {
        eprintln!(
            "tokenizer: warning: no caveats: the token allows every request its secret allows"
        );
    }
    let token = macaroon::mint(&key, caveats);
    let text = Zeroizing::new(if args.bare {
        token.encode()
    } else {
        token.to_header()
    });
    super::out::print_line(&text)
}

fn attenuate(args: AttenuateArgs) -> Result<(), Failure> {
    let caveats = args.caveats.build(now())?;
    if caveats.is_empty() {
        return Err(input("nothing to add: give at least one caveat flag"));
    }
    let mut tokens = read_tokens(&args.token)?;
    let mut narrowed = 0;
    for token in &mut tokens {
        let Token::Macaroon(m) = token else {
            continue;
        };
        if m.location() != LOCATION {
            continue;
        }
        m.attenuate(caveats.clone())
            .map_err(|e| Failure::Input(format!("--token: {e}")))?;
        narrowed += 1;
    }
    if narrowed == 0 {
        return Err(input("--token holds no tokenizer macaroon"));
    }
    let text = Zeroizing::new(if args.bare {
        macaroon::join_tokens(&tokens)
    } else {
        macaroon::to_header(&tokens)
    });
    super::out::print_line(&text)
}

fn inspect(args: InspectArgs) -> Result<(), Failure> {
    let key = args.key.as_deref().map(read_key).transpose()?;
    let tokens = read_tokens(&args.token)?;
    let mut shown = 0;
    for token in &tokens {
        let Token::Macaroon(m) = token else {
            continue;
        };
        let mut report = serde_json::json!({
            "location": m.location(),
            "kid": hex::encode(m.kid()),
            "proof": m.is_proof(),
            "caveats": m.unverified_caveats(),
        });
        if let Some(key) = &key {
            report["verified"] = (m.kid() == macaroon::key_id(key) && m.verify(key).is_ok()).into();
        }
        super::out::print_line(&report.to_string())?;
        shown += 1;
    }
    if shown == 0 {
        return Err(input("--token holds no macaroon"));
    }
    Ok(())
}

// === impl CaveatArgs ===

impl CaveatArgs {
    /// The caveats the flags ask for, checked; one caveat per kind of flag.
    fn build(&self, now: i64) -> Result<Vec<Caveat>, Failure> {
        for method in &self.methods {
            check_method(method)?;
        }
        for path in &self.paths {
            check_path("--path", path)?;
        }
        for prefix in &self.path_prefixes {
            check_path("--path-prefix", prefix)?;
        }
        for pattern in &self.path_patterns {
            macaroon::compile_pattern(pattern).map_err(|e| {
                let why = e.to_string();
                let why = why.lines().last().unwrap_or_default().trim();
                let why = why.trim_start_matches("error: ").to_owned();
                Failure::Input(format!(
                    "--path-pattern {pattern:?} is not a valid regular expression: {why}"
                ))
            })?;
        }
        for host in &self.hosts {
            check_host(host)?;
        }
        let lists = [
            (
                &self.methods,
                Caveat::RequestMethod as fn(Vec<String>) -> Caveat,
            ),
            (&self.paths, Caveat::RequestPath),
            (&self.path_prefixes, Caveat::RequestPathPrefix),
            (&self.path_patterns, Caveat::RequestPathPattern),
            (&self.hosts, Caveat::RequestHost),
        ];
        let mut caveats: Vec<Caveat> = lists
            .into_iter()
            .filter(|(values, _)| !values.is_empty())
            .map(|(values, make)| make(values.clone()))
            .collect();
        caveats.extend(self.window(now)?);
        Ok(caveats)
    }

    /// `--not-before`, `--not-after`, `--ttl` as one validity window, if any is given.
    fn window(&self, now: i64) -> Result<Option<Caveat>, Failure> {
        let not_before = self
            .not_before
            .as_deref()
            .map(|t| parse_time("--not-before", t))
            .transpose()?;
        let not_after = match (&self.not_after, &self.ttl) {
            (Some(t), _) => Some(parse_time("--not-after", t)?),
            (None, Some(ttl)) => Some(
                now.checked_add(parse_ttl(ttl)?)
                    .ok_or_else(|| input("--ttl is too long"))?,
            ),
            (None, None) => None,
        };
        if not_before.is_none() && not_after.is_none() {
            return Ok(None);
        }
        let not_before = not_before.unwrap_or(0);
        let not_after = not_after.unwrap_or(FOREVER);
        if not_after < not_before {
            return Err(input("the token would expire before it becomes valid"));
        }
        if not_after < now {
            return Err(input("the token would already be expired"));
        }
        Ok(Some(Caveat::ValidityWindow {
            not_before,
            not_after,
        }))
    }
}

// === flag values ===

fn check_method(method: &str) -> Result<(), Failure> {
    if http::Method::from_bytes(method.as_bytes()).is_err() || method.is_empty() {
        return Err(Failure::Input(format!(
            "--method {method:?} is not an HTTP method"
        )));
    }
    if method.bytes().any(|b| b.is_ascii_lowercase()) {
        eprintln!(
            "tokenizer: warning: methods are case-sensitive: {method:?} does not match {:?}",
            method.to_ascii_uppercase()
        );
    }
    Ok(())
}

/// Caveats compare the escaped path: it starts with `/` and holds only printable ASCII
/// without `?` or `#` (anything else is percent-encoded on the wire).
fn check_path(flag: &str, path: &str) -> Result<(), Failure> {
    let printable = path
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
    if !path.starts_with('/') || !printable {
        return Err(Failure::Input(format!(
            "{flag} {path:?} must be an escaped path starting with / (percent-encode spaces and non-ASCII; no query)"
        )));
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), Failure> {
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
        return Err(Failure::Input(format!(
            "--host {host:?} must be a host name, with :port if clients send one"
        )));
    }
    Ok(())
}

/// Unix seconds, or an RFC 3339 date-time.
fn parse_time(flag: &str, text: &str) -> Result<i64, Failure> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    OffsetDateTime::parse(text, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|_| {
            Failure::Input(format!(
                "{flag} {text:?} is neither unix seconds nor RFC 3339 (2030-01-02T15:04:05Z)"
            ))
        })
}

/// A duration such as `90s`, `30m`, `1h30m` or `7d` (see [`tokenizer_core::settings::parse_duration`]),
/// at least a second.
fn parse_ttl(text: &str) -> Result<i64, Failure> {
    let bad = || {
        Failure::Input(format!(
            "--ttl {text:?} is not a duration like 90s, 30m, 1h30m or 7d"
        ))
    };
    let d = tokenizer_core::settings::parse_duration(text).map_err(|_| bad())?;
    i64::try_from(d.as_secs())
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(bad)
}

fn read_key(value: &str) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let text = read_arg_or_stdin(value)?;
    let key = b64::decode_token(&text)
        .map(Zeroizing::new)
        .map_err(|_| input("--key is not standard base64"))?;
    if key.is_empty() {
        return Err(input("--key is empty"));
    }
    Ok(key)
}

fn read_tokens(value: &str) -> Result<Vec<Token>, Failure> {
    let text = read_arg_or_stdin(value)?;
    macaroon::parse_tokens(&text).map_err(|e| Failure::Input(format!("--token: {e}")))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn input(message: &str) -> Failure {
    Failure::Input(message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_durations() {
        assert_eq!(parse_ttl("90s").ok(), Some(90));
        assert_eq!(parse_ttl("1h30m").ok(), Some(5400));
        assert_eq!(parse_ttl("7d").ok(), Some(604_800));
        assert_eq!(parse_ttl("1").ok(), Some(1));
        for bad in ["", "h", "1x", "0s", "-1h", "99999999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_are_unix_seconds_or_rfc3339() {
        assert_eq!(parse_time("--x", "1700000000").ok(), Some(1_700_000_000));
        assert_eq!(
            parse_time("--x", "2023-11-14T22:13:20Z").ok(),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_time("--x", "2023-11-14T23:13:20+01:00").ok(),
            Some(1_700_000_000)
        );
        assert!(parse_time("--x", "2023-11-14").is_err());
        assert!(parse_time("--x", "soon").is_err());
    }

    #[test]
    fn paths_must_be_escaped() {
        assert!(check_path("--path", "/v1/a%20b").is_ok());
        for bad in ["v1", "/a b", "/a?b=1", "/é", ""] {
            assert!(check_path("--path", bad).is_err(), "{bad}");
        }
    }
}
