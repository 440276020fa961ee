//! `sigv4_processor`: re-sign an AWS SigV4 request with the sealed keys.
//!
//! The client signs with dummy credentials; the date, region and service come from its
//! `Authorization` header (and `X-Amz-Date`). Signing runs last (see
//! [`super::step::finish`]) so the signature covers the request exactly as sent.
//!
//! What is signed is what the Go tokenizer (aws-sdk-go-v2 `SignHTTP`) signs, with two
//! fixes (wire-compat §0): without `X-Amz-Content-Sha256` the payload hash is the
//! SHA-256 of the (bounded) body instead of "", and S3 keeps single path escaping.
//! A third, smaller one: the query is sorted by encoded name and value, as AWS sorts it
//! (Go sorts decoded names, which differs for names such as `%E1%88%B4` vs `Param`).
//!
//! **Why a hand-written signer and not the `aws-sigv4` crate.** The crate can be told
//! the time, a precomputed payload hash, single or double path encoding and extra
//! excluded headers, but not everything Go does: it signs whatever `Content-Length`
//! header is present (Go signs it only when the length is above zero), it computes its
//! canonical query without giving back the query to send (Go rewrites the outgoing
//! query to that form, so we would re-implement it anyway), it adds its own headers
//! depending on settings, and it holds the secret in its own credential types and
//! brings the aws-smithy runtime crates with it. The whole of SigV4 is four HMACs over
//! a canonical string; writing it here keeps every byte under our control. It is
//! proven against AWS's published test suite (`sigv4/testdata/`), the Go vectors of
//! wire-compat §7.3, and botocore's `SigV4Auth` through the running proxy
//! (`tests/integration/sigv4.rs`).

mod canonical;
mod client_auth;
mod signer;

use http::request::Parts;
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderName, HeaderValue, Uri, header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use self::canonical::{CanonicalRequest, canonical_headers, canonical_query, escape_path};
use self::client_auth::ClientScope;
use self::signer::Scope;
use super::step::{StepContext, buffer};
use super::{ProcessorError, Step};
use tokenizer_core::{Params, SecretBytes, SecretString};
use tokenizer_http::body::Body;

/// Headers Go deletes before signing, besides those header hygiene already removed
/// (`Proxy-*`, hop-by-hop, FILTERED_HEADERS): `Accept-Encoding` and what proxies on
/// the way out may add or change.
const DELETED: [&str; 8] = [
    "authorization",
    "accept-encoding",
    "via",
    "x-forwarded-for",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-forwarded-ssl",
    "x-request-start",
];

const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
const X_AMZ_DATE: &str = "x-amz-date";

/// The sealed `sigv4_processor` object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigV4Config {
    /// The AWS access key id put in the signed `Authorization`; required.
    #[serde(default)]
    pub access_key: SecretString,
    /// The AWS secret access key that signs; required, and never sent upstream.
    #[serde(default)]
    pub secret_key: SecretString,
    /// Go's bug-compatible default (`false`) swaps region and service.
    #[serde(default)]
    pub no_swap: bool,
}

/// A built SigV4 signer for one request.
#[derive(Debug)]
pub struct SigV4Step {
    access_key: SecretString,
    secret_key: SecretString,
    no_swap: bool,
}

// === impl SigV4Config ===

impl SigV4Config {
    /// Push the `SigV4` step, which re-signs the request last (in `finish`).
    pub fn build(&self, _params: &Params, out: &mut Vec<Step>) -> Result<(), ProcessorError> {
        if self.access_key.is_empty() {
            return Err(ProcessorError::BadConfig("missing access key".to_owned()));
        }
        if self.secret_key.is_empty() {
            return Err(ProcessorError::BadConfig("missing secret key".to_owned()));
        }
        out.push(Step::SigV4(Box::new(SigV4Step {
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
            no_swap: self.no_swap,
        })));
        Ok(())
    }

    /// A copy with every credential replaced by `REDACTED`, for logs.
    pub fn stripped(&self) -> Self {
        Self {
            access_key: SecretString::redacted(),
            secret_key: SecretString::redacted(),
            no_swap: self.no_swap,
        }
    }
}

// === impl SigV4Step ===

impl SigV4Step {
    /// Sign `parts` (final absolute `https://` URI, Host set, hygiene done) and return
    /// the body to send. The body is buffered (up to `max_buffered_body`) only when
    /// there is no `X-Amz-Content-Sha256` to take the payload hash from.
    pub async fn sign(
        &self,
        parts: &mut Parts,
        body: Body,
        ctx: &mut StepContext,
    ) -> Result<Body, ProcessorError> {
        let client = ClientScope::parse(&parts.headers, self.no_swap)?;
        let (payload_hash, body) = match declared_payload_hash(parts)? {
            Some(hash) => (hash, body),
            None => {
                let mut hasher = Sha256::new();
                let buffered = buffer(parts, body, ctx, |chunk| hasher.update(chunk)).await?;
                if !buffered.bytes.is_empty() {
                    parts.headers.insert(
                        header::CONTENT_LENGTH,
                        HeaderValue::from(buffered.bytes.len()),
                    );
                }
                (hex::encode(hasher.finalize()), buffered.into_body())
            }
        };
        let signature = self.sign_head(parts, &client, &payload_hash)?;
        ctx.created.push(SecretBytes::new(signature.into_bytes()));
        Ok(body)
    }

    /// Everything but choosing the payload hash: drop the headers Go drops, fix the Host,
    /// set `X-Amz-Date`, rewrite the query to canonical form and set `Authorization`.
    fn sign_head(
        &self,
        parts: &mut Parts,
        client: &ClientScope,
        payload_hash: &str,
    ) -> Result<String, ProcessorError> {
        for name in DELETED {
            parts.headers.remove(name);
        }
        let host = sanitize_host(parts)?;
        let amz_date = client.amz_date();
        parts.headers.insert(
            HeaderName::from_static(X_AMZ_DATE),
            HeaderValue::from_str(&amz_date).map_err(|_| ProcessorError::BadValue)?,
        );
        let query = canonical_query(parts.uri.query().unwrap_or(""));
        parts.uri = with_query(&parts.uri, &query)?;
        let uri = canonical_uri(parts.uri.path(), &client.service);

        let headers = canonical_headers(&parts.headers, &host);
        let scope = Scope {
            date: &client.date,
            region: &client.region,
            service: &client.service,
        };
        let request = CanonicalRequest {
            method: parts.method.as_str(),
            uri: &uri,
            query: &query,
            headers: &headers,
            payload_hash,
        };
        let signature = signer::signature(&self.secret_key, &amz_date, &scope, &request.to_bytes());
        let authorization = self.authorization(&scope, &request, &signature)?;
        parts.headers.insert(header::AUTHORIZATION, authorization);
        Ok(signature)
    }

    /// The `Authorization` value for `request` and its `signature`, marked sensitive.
    fn authorization(
        &self,
        scope: &Scope<'_>,
        request: &CanonicalRequest<'_>,
        signature: &str,
    ) -> Result<HeaderValue, ProcessorError> {
        let text = signer::authorization(
            self.access_key.expose(),
            scope,
            &request.headers.signed,
            signature,
        );
        let mut value = HeaderValue::from_str(&text).map_err(|_| ProcessorError::BadValue)?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// The Host the signature covers: the request's `Host` header (else the URI authority)
/// without the scheme's default port, which is also what is sent (Go's
/// `SanitizeHostForHeader`).
fn sanitize_host(parts: &mut Parts) -> Result<String, ProcessorError> {
    let missing = || ProcessorError::BadRequest("missing host".to_owned());
    let host = match parts.headers.get(header::HOST) {
        Some(v) => v.to_str().map_err(|_| missing())?.to_owned(),
        None => parts
            .uri
            .authority()
            .ok_or_else(missing)?
            .as_str()
            .to_owned(),
    };
    let default_port = match parts.uri.scheme() {
        Some(s) if *s == Scheme::HTTP => ":80",
        _ => ":443",
    };
    let host = host.strip_suffix(default_port).unwrap_or(&host).to_owned();
    let value = HeaderValue::from_str(&host).map_err(|_| missing())?;
    parts.headers.insert(header::HOST, value);
    Ok(host)
}

/// The client's `X-Amz-Content-Sha256` (e.g. `UNSIGNED-PAYLOAD`), taken as the payload
/// hash as it is, like Go does.
fn declared_payload_hash(parts: &Parts) -> Result<Option<String>, ProcessorError> {
    parts
        .headers
        .get(X_AMZ_CONTENT_SHA256)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ProcessorError::BadRequest("bad X-Amz-Content-Sha256".to_owned()))
        })
        .transpose()
}

/// `uri` with its query replaced by `query` (dropped when empty).
fn with_query(uri: &Uri, query: &str) -> Result<Uri, ProcessorError> {
    let path = uri.path();
    let pq = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let mut builder = http::uri::Parts::from(uri.clone());
    builder.path_and_query = Some(PathAndQuery::try_from(pq).map_err(|_| ProcessorError::BadPath)?);
    Uri::from_parts(builder).map_err(|_| ProcessorError::BadPath)
}

/// The canonical URI of the escaped request `path`: S3 and its variants sign it as sent
/// (single escaping); every other service escapes it once more (Go always does).
fn canonical_uri(path: &str, service: &str) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let s3 = service == "s3" || service == "s3express" || service.starts_with("s3-");
    if s3 {
        path.to_owned()
    } else {
        escape_path(path.as_bytes())
    }
}

#[cfg(test)]
mod tests;
