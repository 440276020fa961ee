//! Where a request goes: classifying absolute-form, origin-form (transparent) and
//! CONNECT requests, and the port rules (80 or none → 443; explicit 443 refused, since
//! the client must speak plain HTTP to the proxy; other ports as given).

use http::request::Parts;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Method, Uri, header};

use crate::proxy::error::ProxyError;

/// A resolved destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The host as the client wrote it (port included): what validators check.
    pub policy_host: String,
    /// The host to dial (IPv6 in brackets), without port.
    pub host: String,
    /// The TLS port to dial.
    pub port: u16,
}

/// How a request arrived.
#[derive(Debug)]
pub enum Kind {
    /// `CONNECT host:80`.
    Connect(Target),
    /// `GET http://host/path` (or origin-form in transparent mode).
    Forward(Target),
}

impl Target {
    /// From an authority (`host[:port]`) as the client sent it.
    pub fn from_authority(authority: &Authority) -> Result<Self, ProxyError> {
        let host = authority.host();
        if host.is_empty() {
            return Err(ProxyError::Target("must specify host"));
        }
        // Userinfo (`user@host`) is deprecated in http URIs (RFC 9110 §4.2.4); it would
        // make the host the validators see differ from the host that is dialled.
        if authority.as_str().contains('@') {
            return Err(ProxyError::Target("bad host"));
        }
        // Only DNS names and IP literals: forms such as `127.1`, `0x7f.0.0.1`,
        // `2130706433`, a trailing dot or a zone id are refused here, before any lookup,
        // with the same rule the TLS dial applies to the server name.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if rustls::pki_types::ServerName::try_from(bare).is_err() {
            return Err(ProxyError::Target("bad host"));
        }
        let port = match authority.port_u16() {
            None | Some(80) => 443,
            Some(443) => return Err(ProxyError::Target("proxied request must be HTTP")),
            Some(p) => p,
        };
        Ok(Self {
            policy_host: authority.as_str().to_owned(),
            host: host.to_owned(),
            port,
        })
    }

    /// The `Host` header sent upstream: the host, plus the port unless it is 443.
    pub fn host_header(&self) -> Result<HeaderValue, ProxyError> {
        let text = if self.port == 443 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        };
        HeaderValue::from_str(&text).map_err(|_| ProxyError::Target("bad host"))
    }

    /// The absolute `https://` URI for the upstream client.
    pub fn upstream_uri(&self, path_and_query: &str) -> Result<Uri, ProxyError> {
        let pq = if path_and_query.is_empty() {
            "/"
        } else {
            path_and_query
        };
        Uri::builder()
            .scheme(Scheme::HTTPS)
            .authority(format!("{}:{}", self.host, self.port))
            .path_and_query(pq)
            .build()
            .map_err(|_| ProxyError::Target("bad request target"))
    }
}

/// Classify a request. `hostnames` is TOKENIZER_HOSTNAMES: without it, origin-form
/// requests are refused.
pub fn classify(req: &Parts, hostnames: &[String]) -> Result<Kind, ProxyError> {
    let uri = &req.uri;
    // RFC 9112 §3.2: an HTTP/1.1 request without exactly one Host is a 400 (Go's too).
    if req.version == http::Version::HTTP_11 {
        let mut hosts = req.headers.get_all(header::HOST).iter();
        match (hosts.next(), hosts.next()) {
            (None, _) => return Err(ProxyError::Target("missing Host header")),
            (Some(_), Some(_)) => return Err(ProxyError::Target("more than one Host header")),
            _ => {}
        }
    }
    if req.method == Method::CONNECT && req.version == http::Version::HTTP_2 {
        return Err(ProxyError::Target(
            "CONNECT over HTTP/2 is not supported (use HTTP/1.1)",
        ));
    }
    if req.method == Method::CONNECT {
        let authority = uri
            .authority()
            .ok_or(ProxyError::Target("bad CONNECT authority"))?;
        if authority.port_u16() == Some(443) {
            return Err(ProxyError::Target(
                "this proxy takes http:// URLs and speaks TLS to the API itself \
                 (curl -x PROXY http://api.example.com/...); for clients that must use \
                 https://, run `tokenizer sideproxy` in front of it",
            ));
        }
        if authority.port_u16() != Some(80) {
            return Err(ProxyError::Target("CONNECT is only allowed to port 80"));
        }
        let mut target = Target::from_authority(authority)?;
        target.port = 443;
        return Ok(Kind::Connect(target));
    }
    if let Some(authority) = uri.authority() {
        match uri.scheme() {
            Some(s) if *s == Scheme::HTTP => {}
            Some(s) if *s == Scheme::HTTPS => {
                return Err(ProxyError::Target("proxied request must be HTTP"));
            }
            _ => return Err(ProxyError::Target("unsupported scheme")),
        }
        return Target::from_authority(authority).map(Kind::Forward);
    }
    transparent(req, hostnames).map(Kind::Forward)
}

/// Origin-form: only with TOKENIZER_HOSTNAMES, never to one of those names.
fn transparent(req: &Parts, hostnames: &[String]) -> Result<Target, ProxyError> {
    if hostnames.is_empty() {
        return Err(ProxyError::Target("I'm not that kind of server"));
    }
    let host = req
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .ok_or(ProxyError::Target("must specify host"))?;
    let authority: Authority = host.parse().map_err(|_| ProxyError::Target("bad host"))?;
    let bare = authority.host();
    let bare = bare.trim_start_matches('[').trim_end_matches(']');
    if hostnames
        .iter()
        .any(|n| n.trim_start_matches('[').trim_end_matches(']') == bare)
    {
        return Err(ProxyError::Circular);
    }
    Target::from_authority(&authority)
}

/// Does an inner tunnel request's Host name the CONNECT target? Ports compare with 80
/// as the default.
pub fn same_authority(connect: &Authority, host: &str) -> bool {
    // No userinfo: the inner request's host is what its own validators see.
    let Ok(inner) = host.parse::<Authority>() else {
        return false;
    };
    if host.contains('@') {
        return false;
    }
    connect.host().eq_ignore_ascii_case(inner.host())
        && connect.port_u16().unwrap_or(80) == inner.port_u16().unwrap_or(80)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    /// A request; its Host is `host`, else the target's authority (as clients send).
    fn req(method: Method, uri: &str, host: Option<&str>) -> Parts {
        let mut b = Request::builder().method(method.clone()).uri(uri);
        let authority = uri
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.authority().map(ToString::to_string));
        if let Some(h) = host.map(str::to_owned).or(authority) {
            b = b.header(header::HOST, h);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn an_http_1_1_request_needs_exactly_one_host() {
        let none = Request::get("http://api.test/")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert!(
            matches!(classify(&none, &[]), Err(ProxyError::Target(m)) if m.contains("missing Host"))
        );
        let two = Request::get("http://api.test/")
            .header(header::HOST, "api.test")
            .header(header::HOST, "other.test")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert!(
            matches!(classify(&two, &[]), Err(ProxyError::Target(m)) if m.contains("more than one"))
        );
        // HTTP/1.0 has no Host requirement.
        let old = Request::get("http://api.test/")
            .version(http::Version::HTTP_10)
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert!(classify(&old, &[]).is_ok());
    }

    fn forward(uri: &str) -> Result<Target, ProxyError> {
        match classify(&req(Method::GET, uri, None), &[])? {
            Kind::Forward(t) => Ok(t),
            Kind::Connect(_) => panic!("connect"),
        }
    }

    #[test]
    fn absolute_form_ports() {
        let t = forward("http://api.test/v1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.policy_host.as_str()),
            ("api.test", 443, "api.test")
        );
        let t = forward("http://api.test:80/").unwrap();
        assert_eq!((t.port, t.policy_host.as_str()), (443, "api.test:80"));
        assert_eq!(forward("http://127.0.0.1:9443/").unwrap().port, 9443);
        assert!(forward("http://api.test:443/").is_err());
        assert!(forward("https://api.test/").is_err());
        assert!(forward("http://api.test@evil.test/").is_err());
        for odd in [
            "127.1",
            "0x7f.0.0.1",
            "2130706433",
            "0177.0.0.1",
            "127.0.0.1.",
            "0",
        ] {
            assert!(forward(&format!("http://{odd}/")).is_err(), "{odd}");
        }
        assert!(forward("http://localhost/").is_ok());
        assert!(forward("http://api-1.example.com/").is_ok());
        let t = forward("http://[::1]:8443/").unwrap();
        assert_eq!(
            t.upstream_uri("/x").unwrap().to_string(),
            "https://[::1]:8443/x"
        );
        assert_eq!(t.host_header().unwrap(), "[::1]:8443");
    }

    #[test]
    fn transparent_needs_hostnames_and_blocks_loops() {
        let names = vec!["tokenizer.internal".to_owned()];
        let r = req(Method::GET, "/v1", Some("api.test"));
        assert!(
            matches!(classify(&r, &[]), Err(ProxyError::Target(m)) if m.contains("not that kind"))
        );
        assert!(matches!(classify(&r, &names), Ok(Kind::Forward(t)) if t.host == "api.test"));
        let loop_req = req(Method::GET, "/", Some("tokenizer.internal:8080"));
        assert!(matches!(
            classify(&loop_req, &names),
            Err(ProxyError::Circular)
        ));
        let no_host = req(Method::GET, "/", None);
        assert!(classify(&no_host, &names).is_err());
    }

    #[test]
    fn connect_only_to_port_80() {
        let ok = req(Method::CONNECT, "api.test:80", None);
        assert!(
            matches!(classify(&ok, &[]), Ok(Kind::Connect(t)) if t.port == 443 && t.policy_host == "api.test:80")
        );
        for bad in ["api.test:443", "api.test:8080"] {
            assert!(
                classify(&req(Method::CONNECT, bad, None), &[]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn tunnel_host_pinning() {
        let a: Authority = "api.test:80".parse().unwrap();
        assert!(same_authority(&a, "api.test"));
        assert!(same_authority(&a, "API.test:80"));
        assert!(!same_authority(&a, "evil.test"));
        assert!(!same_authority(&a, "api.test:8080"));
        assert!(!same_authority(&a, "api.test.evil"));
        assert!(!same_authority(&a, "evil.test@api.test"));
    }
}
