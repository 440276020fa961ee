//! The request pipeline, for absolute-form, transparent and tunnelled requests alike.
//! [`forward`] reads as the list of its steps: check framing, prepare the secrets (open,
//! authorize, check rules, build processors — see [`super::prepare`]), take their
//! limits (from the fleet's Redis or this process), scan PII, run the processors, judge
//! the request as sent (method overrides, a git push's refs, MCP tool calls), clean the
//! head, sign and send; then the response's steps: refuse what the guard cannot read,
//! splice an upgrade, mask the response, filter MCP tool lists, seal derived tokens.

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Version};
use hyper::upgrade::OnUpgrade;

use super::Caller;
use super::Proxy;
use super::prepare::{Prepared, RequestFacts, SecretSource, prepare};
use super::target::Target;
use crate::proxy::error::ProxyError;
use tokenizer_audit::audit::request_log::RequestLog;
use tokenizer_http::body::Body;
use tokenizer_http::headers::{is_upgrade, plain_or_chunked, sanitize_request, strip_hop_by_hop};
use tokenizer_http::reflection::{Guard, GuardSet};
use tokenizer_processor::processor::{self, Step, StepContext};
use tokenizer_secret::auth::VerifiedTokens;

/// Run the pipeline for one request and forward it to `target`.
pub async fn forward(
    proxy: &Proxy,
    target: &Target,
    mut parts: Parts,
    body: Body,
    connect: Option<SecretSource<'_>>,
    caller: &Caller,
    log: &mut RequestLog,
) -> Result<Response<Body>, ProxyError> {
    if !plain_or_chunked(&parts.headers) {
        return Err(ProxyError::Target("unsupported transfer coding"));
    }
    let oidc = proxy
        .verify_oidc(connect.iter().map(|c| c.headers).chain([&parts.headers]))
        .await;
    log.set_identity(&oidc, caller.cert.as_deref());
    let prepared = prepare_request(proxy, target, &parts, connect, caller, &oidc, log)?;
    if prepared.secrets == 0 && !proxy.config().open_proxy {
        return Err(ProxyError::NoSecrets);
    }
    proxy.take_limits(&prepared.limits).await?;
    let body = scan_pii(proxy, &prepared, &mut parts, body, log).await?;
    let mut ctx = StepContext::new(proxy.config().max_buffered_body, proxy.budget().clone());
    let body = processor::apply(&prepared.steps, &mut parts, body, &mut ctx).await?;
    let body = refuse_overrides_as_sent(proxy, &prepared, &mut parts, body).await?;
    let body = super::git_push::judge(proxy, &prepared, &parts, body).await?;
    let (body, tool_lists) = super::mcp::judge(proxy, &prepared, &mut parts, body, log).await?;
    // The path the rules judged, also where a processor set its own.
    if let Some(path) = &prepared.forward_path {
        processor::set_path(&mut parts.uri, path)?;
    }
    // No upgrades for token exchanges: their response must be read to be sealed.
    let upgrade = is_upgrade(&parts.headers) && prepared.sealer.is_none();
    let client_upgrade = parts.extensions.remove::<OnUpgrade>();
    let guarded = proxy.config().reflection_guard
        && (!prepared.guards.is_empty() || prepared.steps.iter().any(Step::creates));
    clean_head(proxy, target, &mut parts, upgrade, guarded)?;
    let body = processor::finish(&prepared.steps, &mut parts, body, &mut ctx).await?;
    let guards = request_guards(proxy, &prepared, &ctx)?;

    let head_only = parts.method == Method::HEAD;
    let sent = std::time::Instant::now();
    let mut response = proxy
        .upstream()
        .send(Request::from_parts(parts, body))
        .await?;
    log.set_upstream(sent.elapsed());
    if !guards.is_empty() {
        refuse_unreadable(&response, head_only)?;
    }
    splice_upgrade(&mut response, client_upgrade, &guards, log);
    let response = mask_response(response, &guards, log);
    let response = super::mcp::filter(proxy, &prepared, tool_lists, response).await?;
    seal_derived_tokens(proxy, &prepared, response).await
}

/// A `101`: join the client's and the upstream's streams, the upstream's bytes masked
/// when guarded.
fn splice_upgrade(
    response: &mut Response<Body>,
    client: Option<OnUpgrade>,
    guards: &GuardSet,
    log: &RequestLog,
) {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    if let Some(client) = client {
        let guarded = (!guards.is_empty()).then(|| (guards.clone(), log.reflection_counter()));
        tokenizer_http::upgrade::splice(client, hyper::upgrade::on(response), guarded);
    }
}

/// Hop-by-hop headers out; with any guard, every credential spelling masked in the
/// headers (a `101`'s included) and, as it streams, the body.
fn mask_response(response: Response<Body>, guards: &GuardSet, log: &RequestLog) -> Response<Body> {
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    let (mut head, body) = response.into_parts();
    strip_hop_by_hop(&mut head.headers, switching);
    if guards.is_empty() {
        return Response::from_parts(head, body);
    }
    let count = log.reflection_counter();
    let n = guards.mask_headers(&mut head.headers);
    count.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    Response::from_parts(head, tokenizer_http::body::boxed(guards.body(body, count)))
}

/// For a token exchange, the answer's token replaced with a sealed secret. After the
/// guard: a token response that quotes another secret's credential has it masked before
/// it could be sealed into a token the client may send anywhere.
async fn seal_derived_tokens(
    proxy: &Proxy,
    prepared: &Prepared,
    response: Response<Body>,
) -> Result<Response<Body>, ProxyError> {
    let Some(sealer) = &prepared.sealer else {
        return Ok(response);
    };
    sealer
        .seal(response, &proxy.keys().current().seal_key(), proxy.budget())
        .await
        .map_err(ProxyError::TokenResponse)
}

/// The secrets of the CONNECT (if tunnelled) and of the request itself.
fn prepare_request(
    proxy: &Proxy,
    target: &Target,
    parts: &Parts,
    connect: Option<SecretSource<'_>>,
    caller: &Caller,
    oidc: &VerifiedTokens,
    log: &mut RequestLog,
) -> Result<Prepared, ProxyError> {
    let own = SecretSource {
        headers: &parts.headers,
        policy_host: &target.policy_host,
        dial_host: &target.host,
    };
    let sources: Vec<SecretSource<'_>> = connect.into_iter().chain([own]).collect();
    let facts = RequestFacts {
        method: Some(parts.method.as_str()),
        path: Some(parts.uri.path()),
        query: parts.uri.query(),
        headers: Some(&parts.headers),
        flysrc: caller.flysrc.as_ref(),
        oidc,
        cert: caller.cert.as_deref(),
    };
    prepare(proxy, &sources, &facts, log)
}

/// The request as it will be sent, after every secret's processors, must carry no
/// method override the rules did not judge: under method or path rules none in its
/// headers or query (a caller-sealed secret could write `X-HTTP-Method-Override` or a
/// `_method` parameter), and under method rules none in a POST body a framework would
/// read fields from (a form, multipart or JSON, read within `MAX_BUFFERED_BODY`).
async fn refuse_overrides_as_sent(
    proxy: &Proxy,
    prepared: &Prepared,
    parts: &mut Parts,
    body: Body,
) -> Result<Body, ProxyError> {
    use tokenizer_secret::policy::PolicyError;
    use tokenizer_secret::policy::method_override::{
        OverrideError, check_body, field_body, in_head,
    };
    if prepared.judges_overrides && in_head(&parts.headers, parts.uri.query()) {
        return Err(PolicyError::MethodOverride.into());
    }
    if !prepared.judges_body_override || parts.method != Method::POST {
        return Ok(body);
    }
    let refused = |e: OverrideError| -> ProxyError {
        match e {
            OverrideError::Found => PolicyError::MethodOverride.into(),
            OverrideError::Unreadable => PolicyError::UnreadableBody.into(),
        }
    };
    let Some(kind) = field_body(&parts.headers).map_err(refused)? else {
        return Ok(body);
    };
    let buffered = proxy.read_whole(&parts.headers, body).await?;
    check_body(&kind, &buffered.bytes).await.map_err(refused)?;
    parts
        .headers
        .insert(header::CONTENT_LENGTH, buffered.bytes.len().into());
    parts.headers.remove(header::TRANSFER_ENCODING);
    Ok(buffered.into_body())
}

/// PII scanning sees the client's body, before credentials are injected into it.
async fn scan_pii(
    proxy: &Proxy,
    prepared: &Prepared,
    parts: &mut Parts,
    body: Body,
    log: &mut RequestLog,
) -> Result<Body, ProxyError> {
    if !prepared.pii.is_active() {
        return Ok(body);
    }
    let scanned = tokenizer_processor::pii::inspect(
        body,
        parts.headers.get(header::CONTENT_TYPE),
        tokenizer_http::headers::content_length(&parts.headers),
        &prepared.pii,
        proxy.config().max_buffered_body,
        proxy.budget(),
    )
    .await
    .map_err(ProxyError::Pii)?;
    match scanned.content_length {
        Some(n) => {
            parts.headers.insert(header::CONTENT_LENGTH, n.into());
            parts.headers.remove(header::TRANSFER_ENCODING);
        }
        None => {
            parts.headers.remove(header::CONTENT_LENGTH);
        }
    }
    log.set_pii_findings(scanned.findings);
    Ok(scanned.body)
}

/// The secrets' cached guards, and one for what the processors created (signatures,
/// signed assertions), which exist only for this request.
fn request_guards(
    proxy: &Proxy,
    prepared: &Prepared,
    ctx: &StepContext,
) -> Result<GuardSet, ProxyError> {
    let mut guards = prepared.guards.clone();
    if proxy.config().reflection_guard
        && !ctx.created.is_empty()
        && let Some(created) = Guard::new(&ctx.created)?
    {
        guards.push(std::sync::Arc::new(created));
    }
    Ok(guards)
}

/// Header hygiene, the upstream Host and URI. With a guard, the response must be one the
/// guard can read whole: no compression (`Accept-Encoding: identity`), no byte ranges
/// (a credential cut across ranges matches nowhere), no WebSocket compression.
fn clean_head(
    proxy: &Proxy,
    target: &Target,
    parts: &mut Parts,
    upgrade: bool,
    guarded: bool,
) -> Result<(), ProxyError> {
    sanitize_request(
        &mut parts.headers,
        &proxy.config().filtered_headers,
        upgrade,
    );
    if guarded {
        parts.headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        parts.headers.remove(header::RANGE);
        parts.headers.remove(header::IF_RANGE);
        parts.headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    }
    parts.headers.insert(header::HOST, target.host_header()?);
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    parts.uri = target.upstream_uri(&path)?;
    parts.version = Version::HTTP_11;
    Ok(())
}

/// A guarded response must reach the client in a form the guard reads: a body with a
/// content coding, or a transfer coding other than chunked, is refused (502) — the
/// client could decode what the guard could not.
fn refuse_unreadable<B>(response: &Response<B>, head_only: bool) -> Result<(), ProxyError> {
    let status = response.status();
    let bodiless = head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let encoded = tokenizer_http::headers::has_content_coding(response.headers());
    if (encoded && !bodiless) || !plain_or_chunked(response.headers()) {
        return Err(ProxyError::UnreadableResponse);
    }
    Ok(())
}
