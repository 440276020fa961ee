//! The one body type that flows through the proxy, small constructors for it, reading a
//! body into memory within bounds, and the stall timeout.

mod bounded;
mod idle_timeout;
mod transform;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};

pub use bounded::{Budget, Buffered, Read, ReadError, drain, read_bounded, read_until};
pub use idle_timeout::{IdleTimeout, Stalled};
pub use transform::{Transform, TransformBody};

/// Errors carried by bodies: from the client, the upstream, or a body adapter.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streamed request or response body.
pub type Body = BoxBody<Bytes, BoxError>;

/// A body with no data and no trailers.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A body of exactly `bytes`, sent as one frame.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Box any body whose error converts into [`BoxError`].
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}

/// A client or upstream body. Not generic on purpose: generic `Into` bounds inside
/// spawned async code trip rustc's higher-ranked `Send` inference (rust-lang/rust#102211).
pub fn incoming(body: hyper::body::Incoming) -> Body {
    body.map_err(|e| Box::new(e) as BoxError).boxed()
}
