//! The one streaming loop behind every body the proxy rewrites on the fly: placeholder
//! replacement in request bodies, PII redaction, and the reflection guard's masking of
//! responses. Each is a [`Transform`] — what to send of each chunk now, what is left at
//! the end — and [`TransformBody`] drives it over a body, frame by frame, holding back
//! only what the transform holds back and passing trailers on last.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// A streaming rewrite of a body's data.
pub trait Transform {
    /// Take the next chunk; what can be sent now (possibly nothing).
    fn push(&mut self, data: Bytes) -> Bytes;

    /// The data ended: everything still held back.
    fn finish(&mut self) -> Bytes;

    /// The trailers, rewritten if need be (after [`Transform::finish`]).
    fn trailers(&mut self, trailers: HeaderMap) -> HeaderMap {
        trailers
    }

    /// Is the output exactly as long as the input (so a known length stays right)?
    fn keeps_length(&self) -> bool {
        false
    }
}

pin_project! {
    /// `inner` with its data run through a [`Transform`].
    pub struct TransformBody<B, T> {
        #[pin]
        inner: B,
        transform: T,
        // Data to process before `inner` (bytes already read while trying to buffer).
        head: Option<Bytes>,
        trailers: Option<HeaderMap>,
        ended: bool,
        finished: bool,
    }
}

impl<B, T> TransformBody<B, T> {
    /// Run `inner`'s data through `transform`.
    pub fn new(inner: B, transform: T) -> Self {
        Self {
            inner,
            transform,
            head: None,
            trailers: None,
            ended: false,
            finished: false,
        }
    }

    /// Process `head` before anything from the inner body.
    pub fn with_head(mut self, head: Bytes) -> Self {
        self.head = (!head.is_empty()).then_some(head);
        self
    }

    /// The transform, as it stands now (to inspect its state).
    pub fn transform(&self) -> &T {
        &self.transform
    }
}

impl<B, T> Body for TransformBody<B, T>
where
    B: Body<Data = Bytes>,
    T: Transform,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        loop {
            if *this.ended {
                if !*this.finished {
                    *this.finished = true;
                    let tail = this.transform.finish();
                    if !tail.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(tail))));
                    }
                }
                let trailers = this.trailers.take().map(|t| this.transform.trailers(t));
                return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))));
            }
            let data = match this.head.take() {
                Some(head) => head,
                None => match ready!(this.inner.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => data,
                        Err(frame) => {
                            // Trailers end the body: what is held back goes first.
                            *this.trailers = frame.into_trailers().ok();
                            *this.ended = true;
                            continue;
                        }
                    },
                    Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                    None => {
                        *this.ended = true;
                        continue;
                    }
                },
            };
            let out = this.transform.push(data);
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.finished && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.transform.keeps_length() {
            self.inner.size_hint()
        } else {
            SizeHint::default()
        }
    }
}
