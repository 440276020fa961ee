//! Built processor steps and running them over a request.

use http::request::Parts;
use http::{HeaderName, HeaderValue, header};
use http_body_util::BodyExt;

use super::ProcessorError;
use super::fmt_dst::{FmtArg, Format};
use super::inject_hmac_processor::sign;
use super::replace::ReplaceBody;
use crate::body::{self, Body};
use crate::secret::{SecretBytes, SecretString};

/// One resolved action on the request.
#[derive(Debug)]
pub enum Step {
    /// Replace all values of a header (Go's `Header.Set`).
    SetHeader {
        name: HeaderName,
        value: HeaderValue,
    },
    /// HMAC the whole body (buffered, bounded) and set the header from it.
    HmacBody {
        key: SecretBytes,
        format: Format,
        name: HeaderName,
    },
    /// Stream the body, replacing every placeholder with the token.
    Replace {
        placeholder: Vec<u8>,
        token: SecretString,
    },
}

impl Step {
    pub(crate) fn replace(placeholder: &str, token: &SecretString) -> Self {
        Self::Replace {
            placeholder: placeholder.as_bytes().to_vec(),
            token: token.clone(),
        }
    }

    /// True when the step must read the body before the request can be sent.
    pub fn buffers_body(&self) -> bool {
        matches!(self, Self::HmacBody { .. })
    }
}

/// Run `steps` in order. Returns the (possibly replaced) body.
pub async fn apply(
    steps: &[Step],
    parts: &mut Parts,
    mut body: Body,
    max_buffered_body: usize,
) -> Result<Body, ProcessorError> {
    for step in steps {
        body = match step {
            Step::SetHeader { name, value } => {
                parts.headers.insert(name.clone(), value.clone());
                body
            }
            Step::HmacBody { key, format, name } => {
                let bytes = buffer(parts, body, max_buffered_body).await?;
                let value = format.render(FmtArg::Bin(&sign(key, &bytes)))?;
                parts.headers.insert(name.clone(), value);
                body::full(bytes)
            }
            Step::Replace { placeholder, token } => {
                // The length changes, so the body goes out chunked.
                parts.headers.remove(header::CONTENT_LENGTH);
                ReplaceBody::new(body, placeholder, token.expose().as_bytes()).boxed()
            }
        };
    }
    Ok(body)
}

/// Read the whole body, refusing more than `limit` bytes (early, when Content-Length
/// already says so).
async fn buffer(parts: &Parts, body: Body, limit: usize) -> Result<bytes::Bytes, ProcessorError> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ProcessorError::BodyTooLarge);
    }
    // Collected by hand rather than with `http_body_util::Limited`: its generic
    // `Into<BoxError>` bound trips rustc's higher-ranked `Send` inference in spawned
    // futures (rust-lang/rust#102211).
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ProcessorError::BodyRead)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(ProcessorError::BodyTooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}
