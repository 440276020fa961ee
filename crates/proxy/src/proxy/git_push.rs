//! `allowed_git_refs` at work: a push (`git-receive-pack`) made with a secret that
//! carries the rule is judged from its ref-update commands, read from the body as it
//! will be sent (after every processor) and as the server will read them (see
//! [`tokenizer_secret::policy::git_refs`]). Only the commands are held in memory
//! (within `MAX_BUFFERED_BODY` and the buffering budget); the pack behind them streams
//! on. A push that touches any ref outside the patterns is refused whole (403) before
//! anything reaches the upstream, so the credential is never used for it.

use http::header;
use http::request::Parts;

use super::Proxy;
use super::prepare::Prepared;
use crate::proxy::error::ProxyError;
use tokenizer_http::body::{Body, Read, drain, read_until};
use tokenizer_processor::processor::ProcessorError;
use tokenizer_secret::policy::PolicyError;
use tokenizer_secret::policy::git_refs::{self, CommandReader, GitPushError, GitRefPattern};

/// The most of a refused push's body read (and dropped) so the refusal reaches git.
const DRAIN_LIMIT: usize = 64 << 20;
/// How long a refused push's body is read for, at most.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(15);

/// The longest ref name quoted back in a refusal.
const MAX_QUOTED_REF: usize = 200;

/// Refuse a push that would change a ref some secret of the request does not allow;
/// any other request passes untouched.
pub async fn judge(
    proxy: &Proxy,
    prepared: &Prepared,
    parts: &Parts,
    body: Body,
) -> Result<Body, ProxyError> {
    if prepared.git_refs.is_empty() {
        return Ok(body);
    }
    let types = parts
        .headers
        .get_all(header::CONTENT_TYPE)
        .iter()
        .map(http::HeaderValue::as_bytes);
    if !git_refs::is_push(parts.uri.path(), types) {
        return Ok(body);
    }
    let encoded = tokenizer_http::headers::has_content_coding(&parts.headers);
    if encoded {
        return Err(PolicyError::GitPush(GitPushError::Unsupported(
            "a push body with a content coding",
        ))
        .into());
    }
    let mut reader = CommandReader::default();
    let read = read_until(
        body,
        proxy.config().max_buffered_body,
        proxy.budget(),
        |buf| reader.advance(buf),
    )
    .await
    .map_err(|e| ProxyError::Processor(ProcessorError::Body(e)))?;
    let (head, rest) = match read {
        Read::Partial { head, rest } => (head, Some(rest)),
        Read::Complete(head) => {
            reader.advance(&head.bytes);
            (head, None)
        }
    };
    let verdict = verdict(reader, &prepared.git_refs);
    match (verdict, rest) {
        (Ok(()), Some(rest)) => Ok(head.then(rest)),
        (Ok(()), None) => Ok(head.into_body()),
        (Err(refusal), rest) => {
            // git is still sending its pack: a connection closed under unread data is
            // reset, and the client would see a broken pipe or a stream error instead
            // of the refusal.
            if let Some(rest) = rest {
                drain(rest, DRAIN_LIMIT, DRAIN_TIME).await;
            }
            Err(refusal)
        }
    }
}

/// The commands `reader` read, judged against every secret's patterns.
fn verdict(reader: CommandReader, rules: &[Vec<GitRefPattern>]) -> Result<(), ProxyError> {
    let updates = reader.finish().map_err(PolicyError::GitPush)?;
    let sets: Vec<&[GitRefPattern]> = rules.iter().map(Vec::as_slice).collect();
    if let Some((update, set)) = git_refs::refused(&updates, &sets) {
        let names: Vec<&str> = set.iter().map(GitRefPattern::as_str).collect();
        return Err(PolicyError::GitRefNotAllowed {
            name: clip(&update.name),
            change: update.change,
            allowed: if names.is_empty() {
                "[] (no push)".to_owned()
            } else {
                names.join(", ")
            },
        }
        .into());
    }
    Ok(())
}

/// At most [`MAX_QUOTED_REF`] characters of a ref name.
fn clip(name: &str) -> String {
    match name.char_indices().nth(MAX_QUOTED_REF) {
        Some((at, _)) => format!("{}…", &name[..at]),
        None => name.to_owned(),
    }
}
