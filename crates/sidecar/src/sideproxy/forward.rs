//! Forwarding one intercepted request through the tokenizer: absolute-form
//! `http://<target>/…`, the target's sealed secret in `Proxy-Tokenizer`,
//! `Proxy-Authorization` from `TOKENIZER_AUTH`, and `fly-src-optin: *`. Bodies stream
//! both ways; WebSocket handshakes are passed on and the upgraded streams joined.

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use super::Sidecar;
use super::SidecarError;
use tokenizer_audit::audit::request_log::RequestLog;
use tokenizer_http::body::{self, Body};
use tokenizer_http::headers::{is_upgrade, strip_hop_by_hop};

const FLY_SRC_OPTIN: HeaderName = HeaderName::from_static("fly-src-optin");
const PROXY_TOKENIZER: HeaderName =
    HeaderName::from_static(tokenizer_secret::secret::PROXY_TOKENIZER);

/// Forward `req`, addressed to target `host`, through the tokenizer.
pub async fn forward(
    side: &Sidecar,
    host: &str,
    req: Request<Incoming>,
    log: &mut RequestLog,
) -> Result<Response<Body>, SidecarError> {
    let sealed = side
        .config
        .targets
        .get(host)
        .ok_or_else(|| SidecarError::NotAllowed(host.to_owned()))?;
    let (mut parts, incoming) = req.into_parts();
    let upgrade = parts.version == Version::HTTP_11 && is_upgrade(&parts.headers);
    let client_upgrade = parts.extensions.remove::<OnUpgrade>();

    strip_hop_by_hop(&mut parts.headers, upgrade);
    strip_client_credentials(&mut parts.headers, &side.config.strip_client_headers);
    merge_cookies(&mut parts.headers);
    let host_value =
        HeaderValue::from_str(host).map_err(|_| SidecarError::BadRequest("bad host"))?;
    parts.headers.insert(header::HOST, host_value);
    parts.headers.insert(PROXY_TOKENIZER, sealed.clone());
    if let Some(auth) = &side.proxy_authorization {
        parts
            .headers
            .insert(header::PROXY_AUTHORIZATION, auth.clone());
    }
    parts
        .headers
        .insert(FLY_SRC_OPTIN, HeaderValue::from_static("*"));
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(host)
        .path_and_query(path)
        .build()
        .map_err(|_| SidecarError::BadRequest("bad request target"))?;
    parts.version = Version::HTTP_11;
    parts.extensions = http::Extensions::new();

    let request = Request::from_parts(parts, log.count_request(body::incoming(incoming)));
    let sent = std::time::Instant::now();
    let mut response = side.tokenizer.send(request).await?;
    log.set_upstream(sent.elapsed());
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching && let Some(client) = client_upgrade {
        tokenizer_http::upgrade::splice(client, hyper::upgrade::on(&mut response), None);
    }
    let (mut head, body) = response.into_parts();
    strip_hop_by_hop(&mut head.headers, switching);
    Ok(Response::from_parts(head, body::incoming(body)))
}

/// The sandbox's own (dummy) credentials never travel: an SDK may send its key in a
/// header other than the one the secret injects (Anthropic's SDK sends `Authorization`
/// while the key belongs in `x-api-key`). A SigV4 `Authorization` is kept: the tokenizer
/// reads the client's signing scope from it.
fn strip_client_credentials(headers: &mut http::HeaderMap, names: &[HeaderName]) {
    for name in names {
        let sigv4 = *name == header::AUTHORIZATION
            && headers
                .get(name)
                .is_some_and(|v| v.as_bytes().starts_with(b"AWS4-HMAC-SHA256 "));
        if !sigv4 {
            headers.remove(name);
        }
    }
}

/// HTTP/2 clients may split `Cookie` into several fields; HTTP/1.1 wants one
/// (RFC 9113 §8.2.3).
fn merge_cookies(headers: &mut http::HeaderMap) {
    if headers.get_all(header::COOKIE).iter().count() < 2 {
        return;
    }
    let joined: Vec<&[u8]> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if let Ok(value) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(header::COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_credentials_are_stripped_but_sigv4_is_kept() {
        let names = [header::AUTHORIZATION, HeaderName::from_static("x-api-key")];
        let mut h = http::HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer dummy"),
        );
        h.insert("x-api-key", HeaderValue::from_static("dummy"));
        h.insert("x-other", HeaderValue::from_static("kept"));
        strip_client_credentials(&mut h, &names);
        assert_eq!(h.len(), 1);
        let signed = "AWS4-HMAC-SHA256 Credential=AK/20260304/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";
        h.insert(header::AUTHORIZATION, HeaderValue::from_static(signed));
        strip_client_credentials(&mut h, &names);
        assert_eq!(h[header::AUTHORIZATION], signed);
    }
}
