//! Opening, checking and building every secret of a request, in named steps:
//!
//! 1. [`open_all`]: parse each `Proxy-Tokenizer` line and open its secret.
//! 2. [`judged_path`]: the one path every rule judges — the path that will be forwarded
//!    (a processor's path when it sets one), normalized when any rule looks at paths.
//! 3. [`refuse_reinterpretable`]: with method or path rules, nothing an upstream stack
//!    would read as another method or path (method-override headers, `..;`).
//! 4. per secret: [`check_revocation`], [`authorize`] (407), [`check_rules`] (400),
//!    its rate limit, [`build`] its steps and guard.
//! 5. [`check_combination`]: what the secrets together may not do.
//! 6. the limits to take ([`Prepared::limits`]): the pipeline takes them (from the
//!    fleet's Redis, or this process's counters) only once every secret has passed.
//!
//! The first failure stops the request. Every rule holds whatever other secrets the
//! request carries: anyone can seal a secret and send it beside a real one.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;

use super::Proxy;
use crate::proxy::error::ProxyError;
use tokenizer_audit::audit::request_log::RequestLog;
use tokenizer_core::Params;
use tokenizer_core::time::now_unix;
use tokenizer_fleet::fleet::FailureMode;
use tokenizer_http::reflection::GuardSet;
use tokenizer_processor::pii::PiiPolicy;
use tokenizer_processor::processor::{ProcessorError, Step};
use tokenizer_secret::auth::{
    AuthConfig, AuthInput, Candidates, ClientCert, FlySrc, FlySrcError, VerifiedTokens,
};
use tokenizer_secret::exchange::TokenSealer;
use tokenizer_secret::policy::method_override;
use tokenizer_secret::policy::{Limit, PolicyError, Refusal, paths};
use tokenizer_secret::secret::{Opened, PROXY_TOKENIZER, TokenizerHeader, Unsealed};

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
    /// The raw query, if any.
    pub query: Option<&'a str>,
    /// The request's own headers (for method overrides); `None` for a CONNECT.
    pub headers: Option<&'a HeaderMap>,
    /// The verified Fly-Src; `None` when verification is off.
    pub flysrc: Option<&'a Result<FlySrc, FlySrcError>>,
    /// The request's verified OIDC tokens.
    pub oidc: &'a VerifiedTokens,
    /// The verified client certificate (TLS listener).
    pub cert: Option<&'a ClientCert>,
}

/// The built processors of every secret of a request.
#[derive(Default)]
pub struct Prepared {
    pub steps: Vec<Step>,
    pub secrets: usize,
    /// The path to forward, when the rules judged a normalized form of it: the upstream
    /// then sees exactly what was checked.
    pub forward_path: Option<String>,
    /// Seals the response of a token exchange (jwt, client credentials, GitHub App).
    pub sealer: Option<TokenSealer>,
    /// The reflection guards of the secrets that inject a credential.
    pub guards: GuardSet,
    /// The PII policy: `PII_ACTION`/`PII_KINDS`, tightened by each secret's own.
    pub pii: PiiPolicy,
    /// The secrets' `rate_limit`s and `max_requests`, one per counter.
    pub limits: Vec<Limit>,
    /// A secret has method or path rules (or macaroon caveats): the request as it is
    /// sent, after every processor, must carry no method override in its head.
    pub judges_overrides: bool,
    /// A secret has method rules (or macaroon caveats): a POST body a framework reads
    /// fields from must carry no method override (see [`tokenizer_secret::policy::method_override`]).
    pub judges_body_override: bool,
    /// The `allowed_git_refs` of each secret that has them: a push must keep to all.
    pub git_refs: Vec<Vec<tokenizer_secret::policy::GitRefPattern>>,
    /// The `allowed_mcp_tools` of each secret that has them: a tool must match all.
    pub mcp_tools: Vec<Vec<tokenizer_secret::policy::McpToolPattern>>,
}

/// One opened secret and where it came from.
struct OpenedSecret<'a> {
    secret: Arc<Unsealed>,
    params: Params,
    source: SecretSource<'a>,
}

/// Open, check and build every secret, in header order (CONNECT-level sources first).
pub fn prepare(
    proxy: &Proxy,
    sources: &[SecretSource<'_>],
    facts: &RequestFacts<'_>,
    log: &mut RequestLog,
) -> Result<Prepared, ProxyError> {
    if let Some(Ok(src)) = facts.flysrc {
        log.set_flysrc(src);
    }
    let opened = open_all(proxy, sources, log)?;
    let path = judged_path(&opened, facts)?;
    refuse_reinterpretable(&opened, facts, path.as_deref())?;
    let candidates = Candidates::from_headers(sources.iter().map(|s| s.headers));
    let now = now_unix();
    let input = AuthInput {
        candidates: &candidates,
        flysrc: facts.flysrc,
        request: facts.method.zip(path.as_deref()),
        now,
        oidc: facts.oidc,
        cert: facts.cert,
    };
    let mut prepared = Prepared {
        pii: proxy.config().pii,
        ..Prepared::default()
    };
    let mut built: Vec<Range<usize>> = Vec::new();
    for s in &opened {
        check_revocation(proxy, s)?;
        authorize(s, &input)?;
        check_rules(s, facts.method, path.as_deref(), now)?;
        if facts.method.is_some() {
            add_limit(proxy, s, now, &mut prepared.limits);
        }
        let start = prepared.steps.len();
        build(s, &mut prepared)?;
        built.push(start..prepared.steps.len());
    }
    check_combination(&prepared.steps, &built)?;
    prepared.judges_overrides = judges_overrides(&opened);
    prepared.judges_body_override = opened.iter().any(|s| {
        s.secret.policy.restricts_method() || matches!(s.secret.auth, AuthConfig::Macaroon(_))
    });
    prepared.git_refs = opened
        .iter()
        .filter_map(|s| s.secret.policy.allowed_git_refs.clone())
        .collect();
    prepared.mcp_tools = opened
        .iter()
        .filter_map(|s| s.secret.policy.allowed_mcp_tools.clone())
        .collect();
    log.set_processors(prepared.secrets);
    prepared.forward_path = path.filter(|p| Some(p.as_str()) != facts.path);
    Ok(prepared)
}

/// Parse and open every secret; each is logged (redacted) as soon as it is open.
fn open_all<'a>(
    proxy: &Proxy,
    sources: &[SecretSource<'a>],
    log: &mut RequestLog,
) -> Result<Vec<OpenedSecret<'a>>, ProxyError> {
    let mut opened = Vec::new();
    for source in sources {
        for value in source.headers.get_all(PROXY_TOKENIZER) {
            let header = TokenizerHeader::parse(value)?;
            let (secret, how) = proxy.secrets().open(header.sealed)?;
            match how {
                Opened::Cached => proxy.telemetry().metrics.unseal_cache_hits.inc(),
                Opened::Decrypted => proxy.telemetry().metrics.secrets_opened.inc(),
            };
            log.add_secret(
                secret.logged_json(),
                &header.params,
                secret.audit_name().to_owned(),
            );
            opened.push(OpenedSecret {
                secret,
                params: header.params,
                source: *source,
            });
        }
    }
    Ok(opened)
}

/// The path every rule of every secret judges: the one that will be forwarded (a
/// processor's, when one replaces the client's), normalized — and forwarded normalized —
/// as soon as any secret has a rule that reads paths (`allowed_paths`, macaroon
/// caveats). `None` while a CONNECT is checked.
fn judged_path(
    opened: &[OpenedSecret<'_>],
    facts: &RequestFacts<'_>,
) -> Result<Option<String>, ProxyError> {
    let Some(client_path) = facts.path else {
        return Ok(None);
    };
    let forced = opened
        .iter()
        .rev()
        .find_map(|s| s.secret.processor.forced_path());
    let path = forced.as_deref().unwrap_or(client_path);
    let reads_paths = opened
        .iter()
        .any(|s| s.secret.policy.needs_path() || matches!(s.secret.auth, AuthConfig::Macaroon(_)));
    if !reads_paths {
        return Ok(Some(path.to_owned()));
    }
    let normal = paths::normalize(path).map_err(PolicyError::from)?;
    Ok(Some(normal))
}

/// With method or path rules present, refuse what an upstream stack would read as a
/// method or path other than the one judged: method-override headers and query
/// parameters (`X-HTTP-Method-Override: DELETE` on an allowed POST), and path
/// parameters on dot segments (`/v1/..;/admin`, which Tomcat and Spring read as
/// `/admin`).
fn refuse_reinterpretable(
    opened: &[OpenedSecret<'_>],
    facts: &RequestFacts<'_>,
    path: Option<&str>,
) -> Result<(), ProxyError> {
    if !judges_overrides(opened) {
        return Ok(());
    }
    let empty = HeaderMap::new();
    if method_override::in_head(facts.headers.unwrap_or(&empty), facts.query) {
        return Err(PolicyError::MethodOverride.into());
    }
    if path.is_some_and(paths::has_dot_segment_params) {
        return Err(PolicyError::BadPath(paths::PathError::DotSegmentParams).into());
    }
    Ok(())
}

/// Do any rules read the method or the path (which an override could change)?
fn judges_overrides(opened: &[OpenedSecret<'_>]) -> bool {
    opened.iter().any(|s| {
        s.secret.policy.restricts_request() || matches!(s.secret.auth, AuthConfig::Macaroon(_))
    })
}

/// Revoked by id, by the digest of its sealed text, or through the secret it was
/// derived from. With `REDIS_FAILURE=closed`, a secret is refused (503) while the
/// fleet's revocations cannot be known to be current.
fn check_revocation(proxy: &Proxy, s: &OpenedSecret<'_>) -> Result<(), ProxyError> {
    if let Some(fleet) = proxy.fleet()
        && fleet.failure() == FailureMode::Closed
        && !fleet.revocations_current()
    {
        return Err(ProxyError::RateLimited(Refusal::Unavailable));
    }
    let policy = &s.secret.policy;
    let revocations = proxy.revocations();
    let revoked = revocations.is_revoked(policy.id.as_deref(), || s.secret.digest().hex())
        || policy
            .derived_from
            .as_deref()
            .is_some_and(|parent| revocations.is_revoked(Some(parent), String::new));
    if revoked {
        return Err(PolicyError::Revoked.into());
    }
    Ok(())
}

/// May the caller use this secret? (407)
fn authorize(s: &OpenedSecret<'_>, input: &AuthInput<'_>) -> Result<(), ProxyError> {
    s.secret.auth.authorize(input, s.source.policy_host)?;
    Ok(())
}

/// Hosts, the exchange pin, the validity window, methods and paths (400).
fn check_rules(
    s: &OpenedSecret<'_>,
    method: Option<&str>,
    path: Option<&str>,
    now: i64,
) -> Result<(), ProxyError> {
    let secret = &s.secret;
    secret.hosts.check(s.source.policy_host)?;
    if secret.hosts.is_unrestricted()
        && let Some(expected) = secret.processor.exchange_host()
        && !s.source.dial_host.eq_ignore_ascii_case(&expected)
    {
        return Err(PolicyError::HostNotAllowed(s.source.policy_host.to_owned()).into());
    }
    secret.policy.check_time(now)?;
    if let Some(method) = method {
        secret.policy.check_method(method)?;
    }
    if let (true, Some(path)) = (secret.policy.needs_path(), path) {
        secret.policy.check_path(path)?;
    }
    Ok(())
}

/// The secret's steps, its token exchange, its reflection guard and PII policy.
fn build(s: &OpenedSecret<'_>, prepared: &mut Prepared) -> Result<(), ProxyError> {
    let secret = &s.secret;
    secret.processor.build(&s.params, &mut prepared.steps)?;
    if let Some(kind) = secret.processor.exchange() {
        if prepared.sealer.is_some() || secret.processor.exchanges() > 1 {
            return Err(ProcessorError::BadRequest(
                "only one token exchange per request".to_owned(),
            )
            .into());
        }
        prepared.sealer = Some(TokenSealer::new(
            kind,
            secret,
            &secret.digest().hex(),
            secret.limit_key(),
        ));
    }
    if let Some(guard) = secret.reflection_guard()? {
        prepared.guards.push(guard.clone());
    }
    if let Some(p) = secret.policy.pii {
        prepared.pii = prepared.pii.stricter(p);
    }
    prepared.secrets += 1;
    Ok(())
}

/// A secret whose steps sign the request (an HMAC of the body, SigV4) must not see
/// another secret's credential: the signature would be a function of it, and an
/// upstream that echoes the signature would hand its holder an oracle.
fn check_combination(steps: &[Step], built: &[Range<usize>]) -> Result<(), ProxyError> {
    let signs = |r: &Range<usize>| steps[r.clone()].iter().any(Step::signs);
    let injects = |r: &Range<usize>| steps[r.clone()].iter().any(Step::injects);
    for (i, signer) in built.iter().enumerate() {
        if signs(signer)
            && built
                .iter()
                .enumerate()
                .any(|(j, other)| j != i && injects(other))
        {
            return Err(ProcessorError::BadRequest(
                "a secret that signs the request cannot be combined with other secrets".to_owned(),
            )
            .into());
        }
    }
    Ok(())
}

/// The secret's limits, if any: one entry per counter (the same secret twice in a
/// request counts once).
fn add_limit(proxy: &Proxy, s: &OpenedSecret<'_>, now: i64, limits: &mut Vec<Limit>) {
    let policy = &s.secret.policy;
    if policy.rate_limit.is_none() && policy.max_requests.is_none() {
        return;
    }
    let key = *s.secret.limit_key();
    if limits.iter().any(|l| l.key == key) {
        return;
    }
    // A use count is kept until the secret expires (a minute of slack for clocks), and
    // at most for the retention after its last use: a counter's lifetime is bounded
    // whatever `expires_at` a secret names.
    let retention = proxy.config().max_requests_retention;
    let keep_uses = match policy.expires_at {
        Some(at) => Duration::from_secs(u64::try_from(at.saturating_sub(now)).unwrap_or(0))
            .saturating_add(Duration::from_secs(60))
            .min(retention),
        None => retention,
    };
    limits.push(Limit {
        key,
        pool: *s.secret.limit_pool(),
        rate: policy.rate_limit,
        max_requests: policy.max_requests,
        keep_uses,
    });
}
