//! The request pipeline: secrets → auth → validators → processors → header hygiene →
//! upstream, for absolute-form, transparent and tunnelled requests alike.

use http::header::{self, HeaderMap};
use http::request::Parts;
use http::{Request, Response, StatusCode, Version};
use hyper::upgrade::OnUpgrade;

use super::Proxy;
use super::target::Target;
use crate::auth::{AuthInput, Candidates};
use crate::body::{self, Body};
use crate::error::ProxyError;
use crate::headers::{is_upgrade, sanitize_request, strip_hop_by_hop};
use crate::processor::{self, Step};
use crate::request_log::RequestLog;
use crate::secret::{PROXY_TOKENIZER, Secret, TokenizerHeader};

/// Headers that carry secrets, and the host their validators check.
#[derive(Clone, Copy)]
pub struct SecretSource<'a> {
    pub headers: &'a HeaderMap,
    pub policy_host: &'a str,
}

/// The built processors of every secret of a request.
pub struct Prepared {
    pub steps: Vec<Step>,
    pub secrets: usize,
}

/// Open, authorize, validate and build every secret, in header order (CONNECT-level
/// sources first). The first failure stops the request.
pub fn prepare(
    proxy: &Proxy,
    sources: &[SecretSource<'_>],
    log: &mut RequestLog,
) -> Result<Prepared, ProxyError> {
    let candidates = Candidates::from_headers(sources.iter().map(|s| s.headers));
    let input = AuthInput {
        candidates: &candidates,
    };
    let mut prepared = Prepared {
        steps: Vec::new(),
        secrets: 0,
    };
    for source in sources {
        for value in source.headers.get_all(PROXY_TOKENIZER) {
            let header = TokenizerHeader::parse(value)?;
            let secret = Secret::open(proxy.keys(), header.sealed)?;
            log.add_secret(secret.stripped_json(), &header.params);
            secret.auth.authorize(&input)?;
            secret.hosts.check(source.policy_host)?;
            secret
                .processor
                .build(&header.params, &mut prepared.steps)?;
            prepared.secrets += 1;
        }
    }
    log.set_processors(prepared.secrets);
    Ok(prepared)
}

/// Run the pipeline for one request and forward it to `target`.
pub async fn forward(
    proxy: &Proxy,
    target: &Target,
    mut parts: Parts,
    body: Body,
    connect: Option<SecretSource<'_>>,
    log: &mut RequestLog,
) -> Result<Response<Body>, ProxyError> {
    let own = SecretSource {
        headers: &parts.headers,
        policy_host: &target.policy_host,
    };
    let sources: Vec<SecretSource<'_>> = connect.into_iter().chain([own]).collect();
    let prepared = prepare(proxy, &sources, log)?;
    if prepared.secrets == 0 && !proxy.config().open_proxy {
        return Err(ProxyError::NoSecrets);
    }
    let body = processor::apply(
        &prepared.steps,
        &mut parts,
        body,
        proxy.config().max_buffered_body,
    )
    .await?;

    // A WebSocket handshake keeps its upgrade headers; the client side of the upgrade is
    // taken out of the request so it can be joined to the upstream's.
    let upgrade = is_upgrade(&parts.headers);
    let client_upgrade = parts.extensions.remove::<OnUpgrade>();
    sanitize_request(
        &mut parts.headers,
        &proxy.config().filtered_headers,
        upgrade,
    );
    parts.headers.insert(header::HOST, target.host_header()?);
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = target.upstream_uri(path)?;
    parts.version = Version::HTTP_11;

    let mut response = proxy
        .upstream()
        .send(Request::from_parts(parts, body))
        .await?;
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching && let Some(client) = client_upgrade {
        crate::upgrade::splice(client, hyper::upgrade::on(&mut response));
    }
    let (mut head, body) = response.into_parts();
    strip_hop_by_hop(&mut head.headers, switching);
    Ok(Response::from_parts(head, body::incoming(body)))
}
