//! `Fly-Src`: the caller identity fly-proxy attaches to requests, signed with Ed25519.
//!
//! `Fly-Src: instance=<machine>;app=<app>;org=<org>;ts=<unix secs>` and
//! `Fly-Src-Signature: base64(Ed25519 signature over the exact Fly-Src bytes)`. A header
//! is accepted only from an address inside the fly-proxy networks, with a valid
//! signature, exactly the four fields, and a timestamp at most 30 s old (or ahead).

use std::net::IpAddr;
use std::path::Path;

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use http::HeaderMap;
use ipnet::IpNet;

use tokenizer_core::b64;

/// Maximum age (and clock skew ahead) of a Fly-Src timestamp.
pub const MAX_AGE_SECS: i64 = 30;

/// A verified caller identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlySrc {
    /// The caller's Fly.io organization slug (the header's `org` field).
    pub org: String,
    /// The caller's Fly.io app name (`app`).
    pub app: String,
    /// The caller's machine id (`instance`).
    pub instance: String,
    /// When fly-proxy signed the header (`ts`), unix seconds.
    pub ts: i64,
}

/// Why a Fly-Src header was not accepted.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlySrcError {
    /// The request lacks `Fly-Src` or `Fly-Src-Signature`.
    #[error("missing Fly-Src or Fly-Src-Signature")]
    Missing,
    /// The peer address is outside the fly-proxy networks.
    #[error("fly-src is not from fly-proxy")]
    NotFromProxy,
    /// The signature is not base64 of an Ed25519 signature, or does not verify.
    #[error("bad fly-src signature")]
    BadSignature,
    /// The signed header is not exactly `org`, `app`, `instance` and `ts`; says what is
    /// wrong.
    #[error("malformed fly-src: {0}")]
    Malformed(&'static str),
    /// `ts` is more than [`MAX_AGE_SECS`] in the past.
    #[error("fly-src too old")]
    TooOld,
    /// `ts` is more than [`MAX_AGE_SECS`] in the future.
    #[error("fly-src timestamp in the future")]
    FromTheFuture,
}

/// Checks Fly-Src headers against fly-proxy's public key.
#[derive(Clone, Debug)]
pub struct FlySrcVerifier {
    key: VerifyingKey,
    proxy_nets: Vec<IpNet>,
}

impl FlySrcVerifier {
    /// A verifier trusting fly-proxy's Ed25519 `key`, for headers from peers inside
    /// `proxy_nets`.
    pub fn new(key: VerifyingKey, proxy_nets: Vec<IpNet>) -> Self {
        Self { key, proxy_nets }
    }

    /// Read a 64-hex-character Ed25519 public key from `path`.
    pub fn from_key_file(path: &Path, proxy_nets: Vec<IpNet>) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("{}: want 64 hex characters", path.display()))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| format!("{}: not an Ed25519 public key", path.display()))?;
        Ok(Self::new(key, proxy_nets))
    }

    /// Verify the request's Fly-Src, sent from `peer`, at `now` (unix seconds).
    pub fn verify(
        &self,
        headers: &HeaderMap,
        peer: IpAddr,
        now: i64,
    ) -> Result<FlySrc, FlySrcError> {
        let (Some(src), Some(sig)) = (headers.get("fly-src"), headers.get("fly-src-signature"))
        else {
            return Err(FlySrcError::Missing);
        };
        let peer = peer.to_canonical();
        if !self.proxy_nets.iter().any(|n| n.contains(&peer)) {
            return Err(FlySrcError::NotFromProxy);
        }
        let sig = sig
            .to_str()
            .ok()
            .and_then(|s| b64::decode(s.trim()).ok())
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or(FlySrcError::BadSignature)?;
        self.key
            .verify(src.as_bytes(), &sig)
            .map_err(|_| FlySrcError::BadSignature)?;
        let parsed = parse(
            src.to_str()
                .map_err(|_| FlySrcError::Malformed("not text"))?,
        )?;
        if now - parsed.ts > MAX_AGE_SECS {
            return Err(FlySrcError::TooOld);
        }
        if parsed.ts - now > MAX_AGE_SECS {
            return Err(FlySrcError::FromTheFuture);
        }
        Ok(parsed)
    }
}

/// Exactly `org`, `app`, `instance` and `ts`, in any order, all non-empty.
fn parse(text: &str) -> Result<FlySrc, FlySrcError> {
    let (mut org, mut app, mut instance, mut ts) = (None, None, None, None);
    let parts: Vec<&str> = text.split(';').collect();
    if parts.len() != 4 {
        return Err(FlySrcError::Malformed("want 4 fields"));
    }
    for part in parts {
        let (k, v) = part
            .split_once('=')
            .ok_or(FlySrcError::Malformed("want key=value"))?;
        if v.is_empty() {
            return Err(FlySrcError::Malformed("empty value"));
        }
        let slot = match k {
            "org" => &mut org,
            "app" => &mut app,
            "instance" => &mut instance,
            "ts" => &mut ts,
            _ => return Err(FlySrcError::Malformed("unknown field")),
        };
        if slot.replace(v).is_some() {
            return Err(FlySrcError::Malformed("duplicate field"));
        }
    }
    let missing = FlySrcError::Malformed("missing field");
    Ok(FlySrc {
        org: org.ok_or(missing.clone())?.to_owned(),
        app: app.ok_or(missing.clone())?.to_owned(),
        instance: instance.ok_or(missing.clone())?.to_owned(),
        ts: ts
            .ok_or(missing)?
            .parse()
            .map_err(|_| FlySrcError::Malformed("ts is not an integer"))?,
    })
}

impl FlySrc {
    /// The header text, in fly-proxy's field order.
    pub fn header(&self) -> String {
        format!(
            "instance={};app={};org={};ts={}",
            self.instance, self.app, self.org, self.ts
        )
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};
    use http::HeaderValue;

    use super::*;

    fn signing() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn verifier() -> FlySrcVerifier {
        FlySrcVerifier::new(
            signing().verifying_key(),
            vec!["127.0.0.0/8".parse().unwrap()],
        )
    }

    fn headers(src: &str, key: &SigningKey) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("fly-src", HeaderValue::from_str(src).unwrap());
        let sig = b64::encode(&key.sign(src.as_bytes()).to_bytes());
        h.insert("fly-src-signature", HeaderValue::from_str(&sig).unwrap());
        h
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn accepts_a_fresh_signed_header() {
        let src = "instance=m1;app=a;org=o;ts=1000";
        let got = verifier()
            .verify(&headers(src, &signing()), LOCAL, 1010)
            .unwrap();
        assert_eq!(
            (got.org.as_str(), got.app.as_str(), got.instance.as_str()),
            ("o", "a", "m1")
        );
        assert_eq!(got.header(), src);
        let reordered = "ts=1000;org=o;instance=m1;app=a";
        assert!(
            verifier()
                .verify(&headers(reordered, &signing()), LOCAL, 1000)
                .is_ok()
        );
    }

    #[test]
    fn refuses_forgeries_replays_and_strangers() {
        let src = "instance=m1;app=a;org=o;ts=1000";
        let v = verifier();
        let forged = SigningKey::from_bytes(&[8u8; 32]);
        assert_eq!(
            v.verify(&headers(src, &forged), LOCAL, 1000),
            Err(FlySrcError::BadSignature)
        );
        assert_eq!(
            v.verify(&headers(src, &signing()), LOCAL, 1031),
            Err(FlySrcError::TooOld)
        );
        assert_eq!(
            v.verify(&headers(src, &signing()), LOCAL, 900),
            Err(FlySrcError::FromTheFuture)
        );
        let far = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(
            v.verify(&headers(src, &signing()), far, 1000),
            Err(FlySrcError::NotFromProxy)
        );
        let mut tampered = headers(src, &signing());
        tampered.insert(
            "fly-src",
            HeaderValue::from_static("instance=m1;app=a;org=evil;ts=1000"),
        );
        assert_eq!(
            v.verify(&tampered, LOCAL, 1000),
            Err(FlySrcError::BadSignature)
        );
        let mut unsigned = headers(src, &signing());
        unsigned.remove("fly-src-signature");
        assert_eq!(v.verify(&unsigned, LOCAL, 1000), Err(FlySrcError::Missing));
        for bad in [
            "instance=m1;app=a;org=o",
            "instance=m1;app=a;org=o;ts=x",
            "instance=m1;app=;org=o;ts=1000",
            "instance=m1;app=a;org=o;ts=1000;x=y",
            "instance=m1;app=a;region=o;ts=1000",
            "instance=m1;app=a;app=o;ts=1000",
        ] {
            assert!(
                matches!(
                    v.verify(&headers(bad, &signing()), LOCAL, 1000),
                    Err(FlySrcError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }
}
