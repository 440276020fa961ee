//! A body that fails if no frame arrives for a while: a stalled upstream does not hold a
//! client connection (and its credentials) open forever, and a stalled upload does not
//! hold a buffer or an upstream connection (`CLIENT_BODY_TIMEOUT`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;

/// The peer sent nothing for the timeout.
#[derive(Debug, thiserror::Error)]
#[error("body stalled")]
pub struct Stalled;

pin_project! {
    /// `inner`, failing with [`Stalled`] when no frame arrives for `timeout`; the clock
    /// restarts with each frame.
    pub struct IdleTimeout<B> {
        #[pin]
        inner: B,
        #[pin]
        sleep: Sleep,
        timeout: Duration,
    }
}

impl<B> IdleTimeout<B> {
    /// Wrap `inner`, allowing at most `timeout` between frames (and before the first).
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            sleep: tokio::time::sleep(timeout),
            timeout,
        }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes, Error = BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            this.sleep.as_mut().reset(Instant::now() + *this.timeout);
            return Poll::Ready(frame);
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(Stalled))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_and_a_flowing_one_does_not() {
        let (tx2, mut rx2) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let body = StreamBody::new(futures_util::stream::poll_fn(move |cx| rx2.poll_recv(cx)));
        let mut body = Box::pin(IdleTimeout::new(body, Duration::from_secs(5)));
        tx2.send(Ok(Frame::data(Bytes::from_static(b"a"))))
            .await
            .unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        tokio::time::advance(Duration::from_secs(4)).await;
        tx2.send(Ok(Frame::data(Bytes::from_static(b"b"))))
            .await
            .unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<Stalled>());
    }
}
