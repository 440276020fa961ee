//! Built processor steps and running them over a request.
//!
//! Most steps run in [`apply`], before header hygiene. SigV4 signing must see the request
//! exactly as it will be sent (final Host, path, query and headers), so its steps are
//! deferred to [`finish`], which the pipeline calls last.
//!
//! Two rules keep the secrets of one request from acting on each other's credentials:
//! every body replacement of every secret happens in one pass over the client's body
//! (so no secret's placeholder is ever searched for in another's injected token), and a
//! secret whose steps read the body or the request to sign it is never combined with
//! another secret's credential (see [`Step::signs`], checked by the pipeline).

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Uri, header};
use zeroize::Zeroizing;

use super::ProcessorError;
use super::fmt_dst::{FmtArg, Format};
use super::jwt_sign::JwtKey;
use super::replace::{Replacer, replace_body};
use super::sigv4_processor::SigV4Step;
use tokenizer_core::SecretBytes;
use tokenizer_core::mac::{HmacSha256, hmac_sha256};
use tokenizer_http::body::{self, Body, Budget, Read, read_bounded};

/// One resolved action on the request.
#[derive(Debug)]
pub enum Step {
    /// Replace all values of a header (Go's `Header.Set`).
    SetHeader {
        /// The header to set.
        name: HeaderName,
        /// Its one value (marked sensitive when it carries a credential).
        value: HeaderValue,
    },
    /// Set a header the client must not have sent (a Basic `Authorization`): which
    /// credential the server would use is ambiguous, so such a request is refused.
    SetFreshHeader {
        /// The header to set.
        name: HeaderName,
        /// Its one value (sensitive).
        value: HeaderValue,
    },
    /// Set one query parameter to the (percent-encoded) credential; see
    /// [`super::set_query_param`] for what is refused.
    SetQueryParam {
        /// The parameter's name, as sealed.
        name: String,
        /// The credential, percent-encoded.
        value: tokenizer_core::SecretString,
        /// Remove the client's occurrences first instead of refusing.
        replace: bool,
    },
    /// Remove a header.
    RemoveHeader(HeaderName),
    /// HMAC-SHA256 of `msg`, or without it of the whole body (buffered, bounded, hashed
    /// as it arrives), into header `name`.
    Hmac {
        /// The HMAC key; it never leaves the proxy.
        key: SecretBytes,
        /// How the hex MAC is written into the header (`%x` or `%X`, with any prefix and
        /// suffix).
        format: Format,
        /// The header that receives the MAC.
        name: HeaderName,
        /// The message (the `msg` param); `None` signs the whole body.
        msg: Option<SecretBytes>,
    },
    /// Replace every placeholder in the body with the token, streaming. All the
    /// request's replacements run as one pass (see the module docs).
    Replace {
        /// The text searched for (never empty).
        placeholder: SecretBytes,
        /// What each occurrence becomes.
        token: SecretBytes,
    },
    /// Replace the whole body (token exchanges). `content_type: None` removes the header.
    SetBody {
        /// The new body (a token-exchange form, or empty).
        body: SecretBytes,
        /// The new `Content-Type`; `None` removes it.
        content_type: Option<HeaderValue>,
    },
    /// Replace the request path, keeping the query (GitHub App installation tokens).
    SetPath(String),
    /// Sign a JWT (off the async runtime: an RSA signature takes milliseconds) and use
    /// it as a token-exchange assertion or a bearer token.
    SignJwt(Box<JwtStep>),
    /// Re-sign an AWS SigV4 request; runs in [`finish`].
    SigV4(Box<SigV4Step>),
}

/// A JWT to sign when the request is processed.
#[derive(Debug)]
pub struct JwtStep {
    /// The private key from the secret's PEM.
    pub key: Arc<JwtKey>,
    /// The claims to sign (a JSON object; `iat` and `exp` fixed when the step was built).
    pub claims: serde_json::Value,
    /// Where the signed JWT goes.
    pub use_as: JwtUse,
}

/// Where a signed JWT goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwtUse {
    /// The body becomes `assertion=<jwt>&grant_type=…jwt-bearer` (RFC 7523).
    Assertion,
    /// `Authorization: Bearer <jwt>` (GitHub App).
    Bearer,
}

const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// What running the steps needs, and what it made.
pub struct StepContext {
    /// `MAX_BUFFERED_BODY`.
    pub max_buffered_body: usize,
    /// `BUFFERED_BODY_BUDGET`, shared by the process.
    pub budget: Budget,
    /// Credentials the steps created (signed assertions), for the reflection guard.
    pub created: Vec<SecretBytes>,
}

impl StepContext {
    /// A context for one request's steps, with nothing created yet.
    pub fn new(max_buffered_body: usize, budget: Budget) -> Self {
        Self {
            max_buffered_body,
            budget,
            created: Vec::new(),
        }
    }
}

impl Step {
    pub(crate) fn replace(placeholder: &str, token: &tokenizer_core::SecretString) -> Option<Self> {
        (!placeholder.is_empty()).then(|| Self::Replace {
            placeholder: SecretBytes::new(placeholder.as_bytes().to_vec()),
            token: SecretBytes::new(token.expose().as_bytes().to_vec()),
        })
    }

    /// True when the step must read the body before the request can be sent.
    pub fn buffers_body(&self) -> bool {
        matches!(self, Self::Hmac { msg: None, .. } | Self::SigV4(_))
    }

    /// True when the step signs what the request carries (its body or, for SigV4, its
    /// headers): such a step must not see another secret's credential.
    pub fn signs(&self) -> bool {
        self.buffers_body()
    }

    /// True when the step creates a credential for this request (a signature, a signed
    /// JWT), which the reflection guard must also cover.
    pub fn creates(&self) -> bool {
        matches!(self, Self::Hmac { .. } | Self::SigV4(_) | Self::SignJwt(_))
    }

    /// True when the step puts a credential into the request.
    pub fn injects(&self) -> bool {
        !matches!(self, Self::RemoveHeader(_) | Self::SetPath(_))
    }

    /// The header the step writes a credential to, if any.
    pub fn header(&self) -> Option<&HeaderName> {
        match self {
            Self::SetHeader { name, .. }
            | Self::SetFreshHeader { name, .. }
            | Self::Hmac { name, .. } => Some(name),
            Self::SignJwt(j) if j.use_as == JwtUse::Bearer => Some(&header::AUTHORIZATION),
            Self::SigV4(_) => Some(&header::AUTHORIZATION),
            _ => None,
        }
    }
}

/// Run `steps` in order, except SigV4 signing. Returns the (possibly replaced) body.
pub async fn apply(
    steps: &[Step],
    parts: &mut Parts,
    mut body: Body,
    ctx: &mut StepContext,
) -> Result<Body, ProcessorError> {
    let mut replaced = false;
    for step in steps {
        body = match step {
            Step::SetHeader { name, value } => {
                parts.headers.insert(name.clone(), value.clone());
                body
            }
            Step::SetFreshHeader { name, value } => {
                if parts.headers.contains_key(name) {
                    return Err(ProcessorError::BadRequest(format!(
                        "the request already has an {name} header (a secret with \"replace\": true overwrites it)"
                    )));
                }
                parts.headers.insert(name.clone(), value.clone());
                body
            }
            Step::SetQueryParam {
                name,
                value,
                replace,
            } => {
                super::set_query_param(&mut parts.uri, name, value.expose(), *replace)?;
                body
            }
            Step::RemoveHeader(name) => {
                parts.headers.remove(name);
                body
            }
            Step::Hmac {
                key,
                format,
                name,
                msg,
            } => {
                let (mac, body) = match msg {
                    Some(msg) => (hmac_sha256(key.expose(), &[msg.expose()]), body),
                    None => hmac_body(key, parts, body, ctx).await?,
                };
                let value = format.render(FmtArg::Bin(&mac[..]))?;
                parts.headers.insert(name.clone(), value);
                ctx.created
                    .push(SecretBytes::new(hex::encode(&mac[..]).into_bytes()));
                ctx.created
                    .push(SecretBytes::new(hex::encode_upper(&mac[..]).into_bytes()));
                body
            }
            Step::Replace { .. } if replaced => body,
            Step::Replace { .. } => {
                replaced = true;
                match replacer(steps) {
                    Some(r) => {
                        // The length changes, so the body goes out chunked.
                        parts.headers.remove(header::CONTENT_LENGTH);
                        body::boxed(replace_body(body, r))
                    }
                    None => body,
                }
            }
            Step::SetBody {
                body: replacement,
                content_type,
            } => set_body(
                parts,
                Bytes::copy_from_slice(replacement.expose()),
                content_type.clone(),
            ),
            Step::SetPath(path) => {
                set_path(&mut parts.uri, path)?;
                body
            }
            Step::SignJwt(jwt) => {
                let signed =
                    super::jwt_sign::sign_off_runtime(jwt.key.clone(), jwt.claims.clone()).await?;
                ctx.created
                    .push(SecretBytes::new(signed.as_bytes().to_vec()));
                match jwt.use_as {
                    JwtUse::Assertion => {
                        let form = super::jwt_processor::form(&[
                            ("assertion", signed.as_str()),
                            ("grant_type", GRANT_JWT_BEARER),
                        ]);
                        set_body(
                            parts,
                            Bytes::copy_from_slice(form.as_bytes()),
                            Some(HeaderValue::from_static(
                                "application/x-www-form-urlencoded",
                            )),
                        )
                    }
                    JwtUse::Bearer => {
                        let text = Zeroizing::new(format!("Bearer {}", signed.as_str()));
                        let mut value =
                            HeaderValue::from_str(&text).map_err(|_| ProcessorError::BadValue)?;
                        value.set_sensitive(true);
                        parts.headers.insert(header::AUTHORIZATION, value);
                        body
                    }
                }
            }
            Step::SigV4(_) => body,
        };
    }
    Ok(body)
}

/// One replacer for every `Replace` step of the request: all placeholders are found in
/// the client's body in one pass, so one secret's token is never searched for another
/// secret's placeholder.
fn replacer(steps: &[Step]) -> Option<Arc<Replacer>> {
    let pairs = steps
        .iter()
        .filter_map(|s| match s {
            Step::Replace { placeholder, token } => {
                Some((placeholder.expose().to_vec(), token.expose().to_vec()))
            }
            _ => None,
        })
        .collect();
    Replacer::new(pairs)
}

fn set_body(parts: &mut Parts, bytes: Bytes, content_type: Option<HeaderValue>) -> Body {
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    match content_type {
        Some(ct) => parts.headers.insert(header::CONTENT_TYPE, ct),
        None => parts.headers.remove(header::CONTENT_TYPE),
    };
    parts.headers.remove(header::TRANSFER_ENCODING);
    body::full(bytes)
}

/// HMAC-SHA256 of the whole body, computed as it arrives; the body, to send on.
async fn hmac_body(
    key: &SecretBytes,
    parts: &Parts,
    body: Body,
    ctx: &StepContext,
) -> Result<(Zeroizing<[u8; 32]>, Body), ProcessorError> {
    let mut mac = HmacSha256::new(key.expose());
    let buffered = buffer(parts, body, ctx, |chunk| mac.update(chunk)).await?;
    Ok((mac.finish(), buffered.into_body()))
}

/// Run the deferred SigV4 steps on the request as it will be sent.
pub async fn finish(
    steps: &[Step],
    parts: &mut Parts,
    mut body: Body,
    ctx: &mut StepContext,
) -> Result<Body, ProcessorError> {
    for step in steps {
        if let Step::SigV4(signer) = step {
            body = signer.sign(parts, body, ctx).await?;
        }
    }
    Ok(body)
}

/// Replace the path of `uri`, keeping its query.
pub fn set_path(uri: &mut Uri, path: &str) -> Result<(), ProcessorError> {
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

/// Read the whole body within the limits of `ctx`, showing each chunk to `inspect` as
/// it arrives (it holds its share of the buffering budget until sent).
pub(crate) async fn buffer(
    parts: &Parts,
    body: Body,
    ctx: &StepContext,
    inspect: impl FnMut(&[u8]),
) -> Result<tokenizer_http::body::Buffered, ProcessorError> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match read_bounded(
        body,
        ctx.max_buffered_body,
        declared,
        &ctx.budget,
        false,
        inspect,
    )
    .await
    {
        Ok(Read::Complete(buffered)) => Ok(buffered),
        Ok(Read::Partial { .. }) => Err(ProcessorError::Body(
            tokenizer_http::body::ReadError::TooLarge,
        )),
        Err(e) => Err(ProcessorError::Body(e)),
    }
}
