//! The `fmt` / `dst` fields shared by `inject_processor` and `inject_hmac_processor`:
//! which header receives the credential and how the value is written.

use http::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::ProcessorError;
use tokenizer_core::Params;

const PARAM_FMT: &str = "fmt";
const PARAM_DST: &str = "dst";

/// Headers a credential may never be written to: framing and hop-by-hop headers (writing
/// there could smuggle a second request upstream) and `Host` (the destination is fixed
/// before processors run). Also refused: `Proxy-*`, and `Sec-WebSocket-*`, which a
/// WebSocket handshake echoes back (`Sec-WebSocket-Protocol`).
const FORBIDDEN_DST: &[&str] = &[
    "Host",
    "Content-Length",
    "Transfer-Encoding",
    "Connection",
    "Keep-Alive",
    "Te",
    "Trailer",
    "Upgrade",
];

/// `fmt`, `allowed_fmt`, `dst`, `allowed_dst` (flattened into the processor's object).
/// `[]` in an allow-list means "nothing allowed" and is kept when re-sealing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FmtDst {
    /// A fixed format (`Bearer %s`); when set, a `fmt` param must equal it. Empty: unset.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fmt: String,
    /// The formats a `fmt` param may choose; the first is the default. `None`: any
    /// valid format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_fmt: Option<Vec<String>>,
    /// A fixed destination header; when set, a `dst` param must name it. Empty: unset.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dst: String,
    /// The headers a `dst` param may choose (any case); the first is the default. `None`:
    /// any header not forbidden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_dst: Option<Vec<String>>,
}

/// The value handed to the format: a string token (`%s`) or binary, e.g. an HMAC (`%x`).
#[derive(Clone, Copy)]
pub enum FmtArg<'a> {
    /// A token, written as is (`%s`).
    Str(&'a str),
    /// Bytes, written in hex (`%x` lower case, `%X` upper case).
    Bin(&'a [u8]),
}

/// A format that passed the checks: `prefix %verb suffix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    prefix: String,
    verb: u8,
    suffix: String,
}

// === impl FmtDst ===

impl FmtDst {
    /// Choose the format: param `fmt` (if present, even empty) → config `fmt` →
    /// `allowed_fmt[0]` → `Bearer %x` / `Bearer %s`; then check it against the config.
    pub fn format(&self, params: &Params, binary: bool) -> Result<Format, ProcessorError> {
        let chosen = match params.get(PARAM_FMT) {
            Some(p) => p.as_str(),
            None if !self.fmt.is_empty() => &self.fmt,
            None => match self.allowed_fmt.as_deref() {
                Some([first, ..]) => first,
                _ if binary => "Bearer %x",
                _ => "Bearer %s",
            },
        };
        if !self.fmt.is_empty() && chosen != self.fmt {
            return Err(ProcessorError::BadFmt);
        }
        if let Some(allowed) = &self.allowed_fmt
            && !allowed.iter().any(|a| a == chosen)
        {
            return Err(ProcessorError::BadFmt);
        }
        Format::parse(chosen, binary)
    }

    /// Choose the header: param `dst` (if present) → config `dst` → `allowed_dst[0]` →
    /// `Authorization`, compared in Go's canonical form.
    pub fn dst(&self, params: &Params) -> Result<HeaderName, ProcessorError> {
        let chosen = match params.get(PARAM_DST) {
            Some(p) => p.as_str(),
            None if !self.dst.is_empty() => &self.dst,
            None => match self.allowed_dst.as_deref() {
                Some([first, ..]) => first,
                _ => "Authorization",
            },
        };
        let chosen = canonical_header_key(chosen);
        if !self.dst.is_empty() && chosen != canonical_header_key(&self.dst) {
            return Err(ProcessorError::BadDst);
        }
        if let Some(allowed) = &self.allowed_dst
            && !allowed.iter().any(|a| canonical_header_key(a) == chosen)
        {
            return Err(ProcessorError::BadDst);
        }
        if FORBIDDEN_DST.contains(&chosen.as_str())
            || chosen.starts_with("Proxy-")
            || chosen.starts_with("Sec-Websocket-")
        {
            return Err(ProcessorError::BadDst);
        }
        HeaderName::from_bytes(chosen.as_bytes()).map_err(|_| ProcessorError::BadDst)
    }
}

// === impl Format ===

impl Format {
    /// Only one directive is allowed: `%s` for strings, `%x`/`%X` for binary values.
    fn parse(format: &str, binary: bool) -> Result<Self, ProcessorError> {
        let (prefix, rest) = format.split_once('%').ok_or(ProcessorError::BadFmt)?;
        let verb = *rest.as_bytes().first().ok_or(ProcessorError::BadFmt)?;
        let ok = match verb {
            b's' => !binary,
            b'x' | b'X' => binary,
            _ => false,
        };
        // The verb is one ASCII byte when `ok`; `get` also keeps a multi-byte character
        // after `%` from being cut in half (`%é` panicked here).
        let Some(suffix) = rest.get(1..).filter(|_| ok) else {
            return Err(ProcessorError::BadFmt);
        };
        if suffix.contains('%') {
            return Err(ProcessorError::BadFmt);
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            verb,
            suffix: suffix.to_owned(),
        })
    }

    /// Render the header value; a value with CR, LF or NUL is refused rather than sent.
    /// Spaces and tabs at either end are dropped, as Go's header writer drops them (a
    /// token sealed with a trailing space goes out without it).
    pub fn render(&self, arg: FmtArg<'_>) -> Result<HeaderValue, ProcessorError> {
        let mut out = Zeroizing::new(String::with_capacity(
            self.prefix.len() + self.suffix.len() + 64,
        ));
        out.push_str(&self.prefix);
        match (arg, self.verb) {
            (FmtArg::Str(s), _) => out.push_str(s),
            (FmtArg::Bin(b), b'X') => out.push_str(&hex::encode_upper(b)),
            (FmtArg::Bin(b), _) => out.push_str(&hex::encode(b)),
        }
        out.push_str(&self.suffix);
        let trimmed = out.trim_matches([' ', '\t']);
        let mut value =
            HeaderValue::from_bytes(trimmed.as_bytes()).map_err(|_| ProcessorError::BadValue)?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `x-api-key` → `X-Api-Key`. A key containing
/// a byte that is not a token character is returned unchanged.
pub fn canonical_header_key(key: &str) -> String {
    let is_token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if key.is_empty() || !key.bytes().all(is_token) {
        return key.to_owned();
    }
    let mut upper = true;
    key.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn fmt_cfg(fmt: &str, allowed: Option<&[&str]>) -> FmtDst {
        FmtDst {
            fmt: fmt.to_owned(),
            allowed_fmt: allowed.map(|a| a.iter().map(|s| (*s).to_owned()).collect()),
            ..FmtDst::default()
        }
    }

    fn render(cfg: &FmtDst, p: &Params, binary: bool) -> Result<String, ProcessorError> {
        let f = cfg.format(p, binary)?;
        let arg = if binary {
            FmtArg::Bin(&[1, 2, 3])
        } else {
            FmtArg::Str("123")
        };
        Ok(f.render(arg)?.to_str().unwrap().to_owned())
    }

    #[test]
    fn default_formats() {
        let none = Params::default();
        assert_eq!(
            render(&FmtDst::default(), &none, true).unwrap(),
            "Bearer 010203"
        );
        assert_eq!(
            render(&FmtDst::default(), &none, false).unwrap(),
            "Bearer 123"
        );
    }

    #[test]
    fn verbs() {
        let d = FmtDst::default();
        assert_eq!(
            render(&d, &params(&[("fmt", "%x")]), true).unwrap(),
            "010203"
        );
        assert_eq!(
            render(&d, &params(&[("fmt", "%X")]), true).unwrap(),
            "010203"
        );
        assert_eq!(render(&d, &params(&[("fmt", "%s")]), false).unwrap(), "123");
        assert_eq!(
            render(&d, &params(&[("fmt", "x%Xy")]), true).unwrap(),
            "x010203y"
        );
    }

    #[test]
    fn bad_formats() {
        let d = FmtDst::default();
        // `%é` and `%€…` put a multi-byte character after the `%` (it panicked).
        for bad in [
            "%d",
            "%.3s",
            "%s%s",
            "asdf%",
            "asdf",
            "%é",
            "x%€s",
            "%\u{1f600}",
        ] {
            assert_eq!(
                render(&d, &params(&[("fmt", bad)]), false),
                Err(ProcessorError::BadFmt),
                "{bad}"
            );
        }
        assert_eq!(
            render(&d, &params(&[("fmt", "%s")]), true),
            Err(ProcessorError::BadFmt)
        );
        assert_eq!(
            render(&d, &params(&[("fmt", "%x")]), false),
            Err(ProcessorError::BadFmt)
        );
    }

    #[test]
    fn allowed_and_fixed_formats() {
        let p = params(&[("fmt", "%s")]);
        assert!(render(&fmt_cfg("", Some(&["%s"])), &p, false).is_ok());
        assert!(render(&fmt_cfg("", Some(&["x %s"])), &p, false).is_err());
        assert!(render(&fmt_cfg("%s", None), &p, false).is_ok());
        assert!(render(&fmt_cfg("x %s", None), &p, false).is_err());
        assert!(render(&fmt_cfg("%s", Some(&["%s"])), &p, false).is_ok());
        assert!(render(&fmt_cfg("%s", Some(&["%s"])), &Params::default(), false).is_ok());
        assert!(render(&fmt_cfg("%s", Some(&["x %s"])), &Params::default(), false).is_err());
        assert!(render(&fmt_cfg("", Some(&[])), &Params::default(), false).is_err());
    }

    fn dst_cfg(dst: &str, allowed: Option<&[&str]>) -> FmtDst {
        FmtDst {
            dst: dst.to_owned(),
            allowed_dst: allowed.map(|a| a.iter().map(|s| (*s).to_owned()).collect()),
            ..FmtDst::default()
        }
    }

    fn dst(cfg: &FmtDst, p: &Params) -> Result<String, ProcessorError> {
        cfg.dst(p).map(|h| canonical_header_key(h.as_str()))
    }

    #[test]
    fn dst_choice() {
        let none = Params::default();
        let d = FmtDst::default();
        assert_eq!(dst(&d, &none).unwrap(), "Authorization");
        assert_eq!(
            dst(&d, &params(&[("dst", "AuThOriZaTiOn")])).unwrap(),
            "Authorization"
        );
        assert_eq!(dst(&d, &params(&[("dst", "Foo")])).unwrap(), "Foo");
        let foo = params(&[("dst", "foO")]);
        assert_eq!(dst(&dst_cfg("Foo", Some(&["fOo"])), &foo).unwrap(), "Foo");
        assert_eq!(dst(&dst_cfg("", Some(&["fOo"])), &foo).unwrap(), "Foo");
        assert_eq!(dst(&dst_cfg("Foo", None), &foo).unwrap(), "Foo");
        assert_eq!(dst(&dst_cfg("Foo", Some(&["fOo"])), &none).unwrap(), "Foo");
        assert_eq!(
            dst(&dst_cfg("", Some(&["asdf", "qwer"])), &none).unwrap(),
            "Asdf"
        );
    }

    #[test]
    fn dst_errors() {
        let none = Params::default();
        let foo = params(&[("dst", "Foo")]);
        assert!(dst(&dst_cfg("Foo", Some(&["Bar"])), &none).is_err());
        assert!(dst(&dst_cfg("Foo", Some(&["Bar"])), &foo).is_err());
        assert!(dst(&dst_cfg("", Some(&["Bar"])), &foo).is_err());
        assert!(dst(&dst_cfg("Bar", None), &foo).is_err());
        for bad in [
            "Host",
            "content-length",
            "Proxy-Authorization",
            "sec-websocket-protocol",
            "Sec-WebSocket-Key",
            "bad header",
            "a\r\nb",
        ] {
            assert!(
                dst(&FmtDst::default(), &params(&[("dst", bad)])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn values_with_line_breaks_are_refused() {
        let f = FmtDst::default().format(&Params::default(), false).unwrap();
        assert_eq!(
            f.render(FmtArg::Str("a\r\nX-Evil: 1")),
            Err(ProcessorError::BadValue)
        );
    }

    #[test]
    fn canonical_keys() {
        assert_eq!(canonical_header_key("x-api-key"), "X-Api-Key");
        assert_eq!(canonical_header_key("AUTHORIZATION"), "Authorization");
        assert_eq!(canonical_header_key("has space"), "has space");
    }
}
