//! Built processor steps and running them over a request.
//!
//! Most steps run in [`apply`], before header hygiene. SigV4 signing must see the request
//! exactly as it will be sent (final Host, path, query and headers), so its steps are
//! deferred to [`finish`], which the pipeline calls last.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Uri, header};
use http_body_util::BodyExt;

use super::ProcessorError;
use super::fmt_dst::{FmtArg, Format};
use super::inject_hmac_processor::sign;
use super::replace::{ReplaceBody, Replacer};
use super::sigv4_processor::SigV4Step;
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
    /// Remove a header.
    RemoveHeader(HeaderName),
    /// HMAC the whole body (buffered, bounded) and set the header from it.
    HmacBody {
        key: SecretBytes,
        format: Format,
        name: HeaderName,
    },
    /// Stream the body, replacing every placeholder with the token.
    Replace(Arc<Replacer>),
    /// Replace the whole body (token exchanges). `content_type: None` removes the header.
    SetBody {
        body: SecretBytes,
        content_type: Option<HeaderValue>,
    },
    /// Replace the request path, keeping the query (GitHub App installation tokens).
    SetPath(String),
    /// Re-sign an AWS SigV4 request; runs in [`finish`].
    SigV4(Box<SigV4Step>),
}

impl Step {
    pub(crate) fn replace(placeholder: &str, token: &SecretString) -> Option<Self> {
        Replacer::new(vec![(
            placeholder.as_bytes().to_vec(),
            token.expose().as_bytes().to_vec(),
        )])
        .map(Self::Replace)
    }

    /// True when the step must read the body before the request can be sent.
    pub fn buffers_body(&self) -> bool {
        matches!(self, Self::HmacBody { .. } | Self::SigV4(_))
    }
}

/// Run `steps` in order, except SigV4 signing. Returns the (possibly replaced) body.
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
            Step::RemoveHeader(name) => {
                parts.headers.remove(name);
                body
            }
            Step::HmacBody { key, format, name } => {
                let bytes = buffer(parts, body, max_buffered_body).await?;
                let value = format.render(FmtArg::Bin(&sign(key, &bytes)))?;
                parts.headers.insert(name.clone(), value);
                body::full(bytes)
            }
            Step::Replace(replacer) => {
                // The length changes, so the body goes out chunked.
                parts.headers.remove(header::CONTENT_LENGTH);
                ReplaceBody::new(body, replacer.clone()).boxed()
            }
            Step::SetBody {
                body: replacement,
                content_type,
            } => {
                let bytes = Bytes::copy_from_slice(replacement.expose());
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                match content_type {
                    Some(ct) => parts.headers.insert(header::CONTENT_TYPE, ct.clone()),
                    None => parts.headers.remove(header::CONTENT_TYPE),
                };
                parts.headers.remove(header::TRANSFER_ENCODING);
                body::full(bytes)
            }
            Step::SetPath(path) => {
                set_path(&mut parts.uri, path)?;
                body
            }
            Step::SigV4(_) => body,
        };
    }
    Ok(body)
}

/// Run the deferred SigV4 steps on the request as it will be sent.
pub async fn finish(
    steps: &[Step],
    parts: &mut Parts,
    mut body: Body,
    max_buffered_body: usize,
) -> Result<Body, ProcessorError> {
    for step in steps {
        if let Step::SigV4(signer) = step {
            body = signer.sign(parts, body, max_buffered_body).await?;
        }
    }
    Ok(body)
}

/// Replace the path of `uri`, keeping its query.
pub(crate) fn set_path(uri: &mut Uri, path: &str) -> Result<(), ProcessorError> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut builder = http::uri::Parts::from(uri.clone());
    builder.path_and_query =
        Some(PathAndQuery::try_from(pq.as_str()).map_err(|_| ProcessorError::BadPath)?);
    *uri = Uri::from_parts(builder).map_err(|_| ProcessorError::BadPath)?;
    Ok(())
}

/// Read the whole body, refusing more than `limit` bytes (early, when Content-Length
/// already says so).
pub(crate) async fn buffer(
    parts: &Parts,
    body: Body,
    limit: usize,
) -> Result<Bytes, ProcessorError> {
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
