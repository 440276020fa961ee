//! Streaming placeholder replacement for request bodies (`inject_body_processor`,
//! `oauth2_body_processor`, `oauth2_processor` with a placeholder).
//!
//! Hand-written because no maintained crate wraps an `http_body::Body` this way: each
//! incoming chunk is searched with `memchr::memmem`, and only the last
//! `placeholder.len() - 1` bytes are held back (they may be the start of a match split
//! across chunks). Memory use is bounded by the chunk size, never the body size.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use memchr::memmem;
use pin_project_lite::pin_project;
use zeroize::Zeroizing;

pin_project! {
    /// A body that replaces every occurrence of `placeholder` with `replacement`.
    pub struct ReplaceBody<B> {
        #[pin]
        inner: B,
        finder: memmem::Finder<'static>,
        replacement: Zeroizing<Vec<u8>>,
        carry: BytesMut,
        trailers: Option<http::HeaderMap>,
        done: bool,
    }
}

impl<B> ReplaceBody<B> {
    /// `placeholder` must not be empty.
    pub fn new(inner: B, placeholder: &[u8], replacement: &[u8]) -> Self {
        debug_assert!(!placeholder.is_empty());
        Self {
            inner,
            finder: memmem::Finder::new(placeholder).into_owned(),
            replacement: Zeroizing::new(replacement.to_vec()),
            carry: BytesMut::new(),
            trailers: None,
            done: false,
        }
    }
}

/// Replace all matches in `buf`. When `last` is false, keep back a tail that could be the
/// start of a match and return it in `buf`; the replaced head is returned.
fn replace_chunk(
    finder: &memmem::Finder<'_>,
    replacement: &[u8],
    buf: &mut BytesMut,
    last: bool,
) -> Bytes {
    let needle_len = finder.needle().len();
    let mut out = BytesMut::with_capacity(buf.len());
    let mut start = 0;
    while let Some(pos) = finder.find(&buf[start..]) {
        out.extend_from_slice(&buf[start..start + pos]);
        out.extend_from_slice(replacement);
        start += pos + needle_len;
    }
    let keep = if last {
        0
    } else {
        (needle_len - 1).min(buf.len() - start)
    };
    let emit_to = buf.len() - keep;
    out.extend_from_slice(&buf[start..emit_to]);
    let _ = buf.split_to(emit_to);
    out.freeze()
}

impl<B> Body for ReplaceBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        loop {
            if *this.done {
                if !this.carry.is_empty() {
                    let tail = this.carry.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(tail))));
                }
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        this.carry.extend_from_slice(&data);
                        let out = replace_chunk(this.finder, this.replacement, this.carry, false);
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(frame) => {
                        // Trailers end the body: flush what is held back first.
                        *this.trailers = frame.into_trailers().ok();
                        *this.done = true;
                        let out = replace_chunk(this.finder, this.replacement, this.carry, true);
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    *this.done = true;
                    let out = replace_chunk(this.finder, this.replacement, this.carry, true);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.carry.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // The length changes with the number of matches, so it is unknown (chunked).
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;
    use http_body_util::{BodyExt, StreamBody};

    async fn run(chunks: &[&str], needle: &str, repl: &str) -> String {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c.as_bytes()))))
            .collect();
        let body = ReplaceBody::new(
            StreamBody::new(stream::iter(frames)),
            needle.as_bytes(),
            repl.as_bytes(),
        );
        let bytes = body.collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn replaces_all_occurrences() {
        assert_eq!(run(&["a{{T}}b{{T}}"], "{{T}}", "xyz").await, "axyzbxyz");
    }

    #[tokio::test]
    async fn matches_split_across_chunks() {
        assert_eq!(run(&["a{", "{T", "}", "}b{{"], "{{T}}", "X").await, "aXb{{");
        assert_eq!(run(&["{{T}", "}{{T}}"], "{{T}}", "").await, "");
    }

    #[tokio::test]
    async fn no_match_and_empty_bodies_pass_through() {
        assert_eq!(run(&["hello", " world"], "{{T}}", "X").await, "hello world");
        assert_eq!(run(&[], "{{T}}", "X").await, "");
    }

    #[tokio::test]
    async fn many_occurrences_in_small_chunks() {
        let body = "<<TOKEN>>".repeat(10_000);
        let chunks: Vec<String> = body
            .as_bytes()
            .chunks(7)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        assert_eq!(run(&refs, "<<TOKEN>>", "t").await, "t".repeat(10_000));
    }
}
