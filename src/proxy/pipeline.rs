//! The request pipeline: secrets → revocation → auth → validators and rules → rate
//! limits → processors → header hygiene → upstream, for absolute-form, transparent and
//! tunnelled requests alike.

use std::time::Instant;

use http::header::{self, HeaderMap};
use http::request::Parts;
use http::{Request, Response, StatusCode, Version};
use hyper::upgrade::OnUpgrade;

use super::Proxy;
use super::target::Target;
use crate::auth::{AuthInput, Candidates, FlySrc, FlySrcError};
use crate::body::Body;
use crate::error::ProxyError;
use crate::headers::{is_upgrade, plain_or_chunked, sanitize_request, strip_hop_by_hop};
use crate::pii::{PiiAction, PiiPolicy};
use crate::policy::{PolicyError, RateLimit, paths, time::now_unix};
use crate::processor::{self, ProcessorError, ReflectionGuard, Step, TokenSealer};
use crate::request_log::RequestLog;
use crate::secret::{Opened, PROXY_TOKENIZER, SealedDigest, TokenizerHeader};

/// Headers that carry secrets, and the host their validators check.
#[derive(Clone, Copy)]
pub struct SecretSource<'a> {
    pub headers: &'a HeaderMap,
    pub policy_host: &'a str,
    /// The host that is dialled (no port; IPv6 in brackets).
    pub dial_host: &'a str,
}

/// What the rules see of the request besides its secrets' headers.
#[derive(Clone, Copy)]
pub struct RequestFacts<'a> {
    /// `None` when checking a CONNECT before the tunnel opens: method and path rules,
    /// macaroon caveats and rate limits then wait for the requests inside.
    pub method: Option<&'a str>,
    /// The raw (escaped) path.
    pub path: Option<&'a str>,
    /// The verified Fly-Src; `None` when verification is off.
    pub flysrc: Option<&'a Result<FlySrc, FlySrcError>>,
}

/// The built processors of every secret of a request.
pub struct Prepared {
    pub steps: Vec<Step>,
    pub secrets: usize,
    /// The normalized path, when a path rule normalized it to something else: the
    /// request is forwarded with it, so the upstream sees what was checked.
    pub normalized_path: Option<String>,
    /// Seals the response of a token exchange (jwt, client credentials, GitHub App).
    pub sealer: Option<TokenSealer>,
    /// The reflection guards of the secrets, one per secret that injects a credential.
    pub guards: Vec<ReflectionGuard>,
    /// The strictest PII policy the secrets set, overriding the global one.
    pub pii: Option<PiiPolicy>,
}

/// Open, check and build every secret, in header order (CONNECT-level sources first).
/// The first failure stops the request.
pub fn prepare(
    proxy: &Proxy,
    sources: &[SecretSource<'_>],
    facts: &RequestFacts<'_>,
    log: &mut RequestLog,
) -> Result<Prepared, ProxyError> {
    let candidates = Candidates::from_headers(sources.iter().map(|s| s.headers));
    let now = now_unix();
    let input = AuthInput {
        candidates: &candidates,
        flysrc: facts.flysrc,
        request: facts.method.zip(facts.path),
        now,
    };
    let mut normalized: Option<String> = None;
    let mut limits: Vec<(String, RateLimit)> = Vec::new();
    let mut prepared = Prepared {
        steps: Vec::new(),
        secrets: 0,
        normalized_path: None,
        sealer: None,
        guards: Vec::new(),
        pii: None,
    };
    for source in sources {
        for value in source.headers.get_all(PROXY_TOKENIZER) {
            let header = TokenizerHeader::parse(value)?;
            let sealed_digest = SealedDigest::of(header.sealed);
            let (secret, how) = proxy.secrets().open(header.sealed, sealed_digest)?;
            match how {
                Opened::Cached => proxy.telemetry().metrics.unseal_cache_hits.inc(),
                Opened::Decrypted => proxy.telemetry().metrics.secrets_opened.inc(),
            };
            let policy = &secret.policy;
            let digest = || sealed_digest.hex();
            let name = match &policy.id {
                Some(id) => format!("id:{id}"),
                None => format!("sha256:{}", &digest()[..16]),
            };
            log.add_secret(secret.logged_json(), &header.params, name);
            if proxy.revocations().is_revoked(policy.id.as_deref(), digest) {
                return Err(PolicyError::Revoked.into());
            }
            secret.auth.authorize(&input, source.policy_host)?;
            secret.hosts.check(source.policy_host)?;
            if secret.hosts.is_unrestricted()
                && let Some(expected) = secret.processor.exchange_host()
                && !source.dial_host.eq_ignore_ascii_case(&expected)
            {
                return Err(PolicyError::HostNotAllowed(source.policy_host.to_owned()).into());
            }
            policy.check_time(now)?;
            if let Some(method) = facts.method {
                policy.check_method(method)?;
            }
            if let (true, Some(path)) = (policy.needs_path(), facts.path) {
                let normal = match &normalized {
                    Some(n) => n,
                    None => normalized.insert(paths::normalize(path).map_err(PolicyError::from)?),
                };
                policy.check_path(normal)?;
            }
            if let (Some(limit), Some(_)) = (policy.rate_limit, facts.method) {
                let key = policy
                    .id
                    .as_ref()
                    .map_or_else(|| format!("sha256:{}", digest()), |id| format!("id:{id}"));
                limits.push((key, limit));
            }
            secret
                .processor
                .build(&header.params, &mut prepared.steps)?;
            if let Some(kind) = secret.processor.exchange() {
                if prepared.sealer.is_some() || secret.processor.exchanges() > 1 {
                    return Err(ProcessorError::BadRequest(
                        "only one token exchange per request".to_owned(),
                    )
                    .into());
                }
                prepared.sealer = Some(TokenSealer::new(kind, &secret));
            }
            if proxy.config().reflection_guard
                && let Some(guard) = secret.reflection_guard()
            {
                prepared.guards.push(guard.clone());
            }
            if let Some(p) = policy.pii {
                prepared.pii = Some(prepared.pii.map_or(p, |q| stricter(p, q)));
            }
            prepared.secrets += 1;
        }
    }
    // Rate limits are taken only once every secret has passed its checks.
    let started = Instant::now();
    for (key, limit) in &limits {
        proxy
            .limiter()
            .check(key, *limit, started)
            .map_err(ProxyError::RateLimited)?;
    }
    log.set_processors(prepared.secrets);
    prepared.normalized_path = normalized.filter(|n| Some(n.as_str()) != facts.path);
    Ok(prepared)
}

/// Run the pipeline for one request and forward it to `target`.
pub async fn forward(
    proxy: &Proxy,
    target: &Target,
    mut parts: Parts,
    body: Body,
    connect: Option<SecretSource<'_>>,
    flysrc: Option<&Result<FlySrc, FlySrcError>>,
    log: &mut RequestLog,
) -> Result<Response<Body>, ProxyError> {
    if !plain_or_chunked(&parts.headers) {
        return Err(ProxyError::Target("unsupported transfer coding"));
    }
    let own = SecretSource {
        headers: &parts.headers,
        policy_host: &target.policy_host,
        dial_host: &target.host,
    };
    let sources: Vec<SecretSource<'_>> = connect.into_iter().chain([own]).collect();
    let facts = RequestFacts {
        method: Some(parts.method.as_str()),
        path: Some(parts.uri.path()),
        flysrc,
    };
    let mut prepared = prepare(proxy, &sources, &facts, log)?;
    if prepared.secrets == 0 && !proxy.config().open_proxy {
        return Err(ProxyError::NoSecrets);
    }
    // Forward the path the rules checked; processors may still replace it.
    if let Some(path) = &prepared.normalized_path {
        processor::set_path(&mut parts.uri, path)?;
    }
    let max_body = proxy.config().max_buffered_body;
    // PII scanning sees the client's body, before credentials are injected into it.
    let pii = prepared.pii.unwrap_or(proxy.config().pii);
    let body = if pii.is_active() {
        let scanned = crate::pii::inspect(
            body,
            parts.headers.get(header::CONTENT_TYPE),
            content_length(&parts.headers),
            &pii,
            max_body,
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
        scanned.body
    } else {
        body
    };
    let body = processor::apply(&prepared.steps, &mut parts, body, max_body).await?;

    // A WebSocket handshake keeps its upgrade headers; the client side of the upgrade is
    // taken out of the request so it can be joined to the upstream's.
    // No upgrades for token exchanges: their response must be read to be sealed.
    let upgrade = is_upgrade(&parts.headers) && prepared.sealer.is_none();
    let client_upgrade = parts.extensions.remove::<OnUpgrade>();
    sanitize_request(
        &mut parts.headers,
        &proxy.config().filtered_headers,
        upgrade,
    );
    parts.headers.insert(header::HOST, target.host_header()?);
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    parts.uri = target.upstream_uri(&path)?;
    parts.version = Version::HTTP_11;
    let body = processor::finish(&prepared.steps, &mut parts, body, max_body).await?;

    let sent = std::time::Instant::now();
    let mut response = proxy
        .upstream()
        .send(Request::from_parts(parts, body))
        .await?;
    log.set_upstream(sent.elapsed());
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching && let Some(client) = client_upgrade {
        crate::upgrade::splice(client, hyper::upgrade::on(&mut response));
    }
    let (mut head, body) = response.into_parts();
    strip_hop_by_hop(&mut head.headers, switching);
    let mut response = Response::from_parts(head, body);
    if let Some(sealer) = &prepared.sealer {
        response = sealer
            .seal(response, &proxy.keys().current().seal_key())
            .await
            .map_err(ProxyError::TokenResponse)?;
    }
    if !switching && !prepared.guards.is_empty() {
        let (mut head, body) = response.into_parts();
        let count = log.reflection_counter();
        let body = ReflectionGuard::apply_all(&mut prepared.guards, &mut head, body, &count);
        response = Response::from_parts(head, body);
    }
    Ok(response)
}

/// The stricter of two PII policies: block over redact over off, and every kind either
/// names.
fn stricter(a: PiiPolicy, b: PiiPolicy) -> PiiPolicy {
    match (a.action, b.action) {
        (PiiAction::Off, _) => return b,
        (_, PiiAction::Off) => return a,
        _ => {}
    }
    let rank = |p: &PiiPolicy| match p.action {
        PiiAction::Off => 0,
        PiiAction::Redact => 1,
        PiiAction::Block => 2,
    };
    let action = if rank(&a) >= rank(&b) {
        a.action
    } else {
        b.action
    };
    let mut kinds = a.kinds;
    for k in b.kinds.iter() {
        kinds.insert(k);
    }
    PiiPolicy { action, kinds }
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}
