//! A response body with every guarded credential masked as it streams.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::{GuardSet, Masker};

pin_project! {
    /// Data frames go through a [`Masker`]; trailers are masked like headers, after what
    /// was held back has been sent.
    pub struct GuardedBody<B> {
        #[pin]
        inner: B,
        masker: Masker,
        guards: GuardSet,
        count: Arc<AtomicUsize>,
        trailers: Option<http::HeaderMap>,
        done: bool,
    }
}

impl<B> GuardedBody<B> {
    pub fn new(inner: B, guards: GuardSet, count: Arc<AtomicUsize>) -> Self {
        Self {
            inner,
            masker: Masker::new(guards.clone(), count.clone()),
            guards,
            count,
            trailers: None,
            done: false,
        }
    }
}

impl<B> Body for GuardedBody<B>
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
                let tail = this.masker.finish();
                if !tail.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(tail))));
                }
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let out = this.masker.push(data);
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(frame) => {
                        // Trailers end the body: flush what is held back first.
                        if let Ok(mut trailers) = frame.into_trailers() {
                            let n = this.guards.mask_headers(&mut trailers);
                            this.count.fetch_add(n, Ordering::Relaxed);
                            *this.trailers = Some(trailers);
                        }
                        *this.done = true;
                    }
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => *this.done = true,
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        // Masks keep the length: a known length stays exact.
        self.inner.size_hint()
    }
}
