//! `inject_hmac_processor`: write HMAC-SHA256(key, message) into a header, where the
//! message is the `msg` param or, without it, the whole request body (buffered up to
//! `MAX_BUFFERED_BODY` and forwarded unchanged).

use serde::{Deserialize, Serialize};

use super::fmt_dst::FmtDst;
use super::{ProcessorError, Step};
use tokenizer_core::{Params, SecretBytes};

const PARAM_MSG: &str = "msg";

/// The sealed `inject_hmac_processor` object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HmacConfig {
    /// The HMAC key (base64 on the wire); required, and never sent upstream.
    #[serde(default)]
    pub key: SecretBytes,
    /// The hash function: only `sha256` is supported.
    #[serde(default)]
    pub hash: String,
    /// Which header, and how the hex MAC is written in it (default `Bearer %x`).
    #[serde(flatten)]
    pub fmt_dst: FmtDst,
}

impl HmacConfig {
    /// Push the `Hmac` step: of the `msg` param if given, else of the whole body.
    pub fn build(&self, params: &Params, out: &mut Vec<Step>) -> Result<(), ProcessorError> {
        if self.hash != "sha256" {
            return Err(ProcessorError::UnsupportedHash);
        }
        if self.key.is_empty() {
            return Err(ProcessorError::MissingHmacKey);
        }
        let format = self.fmt_dst.format(params, true)?;
        let name = self.fmt_dst.dst(params)?;
        out.push(Step::Hmac {
            key: self.key.clone(),
            format,
            name,
            msg: params
                .get(PARAM_MSG)
                .map(|m| SecretBytes::new(m.as_bytes().to_vec())),
        });
        Ok(())
    }

    /// A copy with every credential replaced by `REDACTED`, for logs.
    pub fn stripped(&self) -> Self {
        Self {
            key: SecretBytes::redacted(),
            hash: tokenizer_core::REDACTED.to_owned(),
            fmt_dst: self.fmt_dst.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizer_core::mac::hmac_sha256;

    fn sign(key: &SecretBytes, msg: &[u8]) -> [u8; 32] {
        *hmac_sha256(key.expose(), &[msg])
    }

    #[test]
    fn go_vectors() {
        let key = SecretBytes::new(b"trustno2".to_vec());
        assert_eq!(
            hex::encode(sign(&key, b"foo")),
            "d3ac69dec42b3b896fbde93c8e15b2ab997a947703558deb5ae44a70d76c4e12"
        );
        assert_eq!(
            hex::encode(sign(&key, b"my payload")),
            "af081a4fb8f0b77b53c01f3230c13e7553dec7813235fcc2921ebd11fe3e925f"
        );
    }
}
