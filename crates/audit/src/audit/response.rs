//! How a failure becomes a response and an audit decision: what every error type of the
//! proxy and the sidecar implements, and the one plain-text error body.

use http::{HeaderValue, Response, StatusCode, header};

use super::Decision;
use tokenizer_http::body::{self, Body};

/// An error that has an HTTP form and an audit decision: `ProxyError`, `SidecarError`.
pub trait IntoErrorResponse: std::fmt::Display {
    /// The response sent to the client for this error.
    fn into_error_response(self) -> Response<Body>;
    /// The audit decision for this error (denied, rate-limited, error…).
    fn decision(&self) -> Decision;
}

/// A plain-text error response: `message` plus a newline.
pub fn error_response(status: StatusCode, message: &str) -> Response<Body> {
    let mut resp = Response::new(body::full(format!("{message}\n")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
