//! Streaming PII redaction for text bodies of any size.
//!
//! Each chunk is appended to a bounded tail and scanned. Bytes are emitted only once no
//! later data can change them: a match starting more than `MAX_MATCH_LEN + CONTEXT`
//! bytes before the end of what has arrived is complete, and so is every byte before
//! it. The rest (at most [`RedactBody::MAX_CARRY`] bytes, including a little
//! already-emitted left context) waits for the next chunk. The output is the same as
//! redacting the whole body at once, however it is chunked.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::detect::{CONTEXT, MAX_MATCH_LEN, Matches, REDACTED};
use super::findings::Findings;
use super::kind::KindSet;

/// Bytes held back because a match starting in them may not have arrived in full.
const HOLD: usize = MAX_MATCH_LEN + CONTEXT;

/// Wait for this many bytes past [`HOLD`] before scanning, so that tiny chunks do not
/// each cost a scan of the whole tail.
const BATCH: usize = 4096;

pin_project! {
    /// A body that replaces every PII match with `[REDACTED]` and counts what it
    /// replaced in a shared [`Findings`].
    pub struct RedactBody<B> {
        #[pin]
        inner: B,
        kinds: KindSet,
        findings: Arc<Findings>,
        // Data to process before `inner` (bytes already read while trying to buffer).
        head: Option<Bytes>,
        // `buf[..ctx]` was emitted and is kept as left context; `buf[ctx..]` is pending.
        buf: BytesMut,
        ctx: usize,
        trailers: Option<http::HeaderMap>,
        done: bool,
    }
}

impl<B> RedactBody<B> {
    /// Most bytes held between chunks, whatever the body size.
    pub const MAX_CARRY: usize = CONTEXT + HOLD + BATCH;

    pub fn new(inner: B, kinds: KindSet, findings: Arc<Findings>) -> Self {
        Self {
            inner,
            kinds,
            findings,
            head: None,
            buf: BytesMut::new(),
            ctx: 0,
            trailers: None,
            done: false,
        }
    }

    /// Process `head` before anything from the inner body.
    pub fn with_head(mut self, head: Bytes) -> Self {
        self.head = (!head.is_empty()).then_some(head);
        self
    }

    /// Bytes currently held back (context plus pending), for bound checks.
    pub fn carry_len(&self) -> usize {
        self.buf.len()
    }
}

/// Redact and return what is final in `buf[*ctx..]`, keeping the rest (and up to
/// [`CONTEXT`] bytes before it) in `buf`. With `last`, everything is final.
fn drain(
    buf: &mut BytesMut,
    ctx: &mut usize,
    kinds: KindSet,
    findings: &Findings,
    last: bool,
) -> Bytes {
    let pending = buf.len() - *ctx;
    if !last && pending < HOLD + BATCH {
        return Bytes::new();
    }
    // Matches starting before `safe` are complete, and so are the bytes before them.
    let safe = if last { buf.len() } else { buf.len() - HOLD };
    let mut out = BytesMut::with_capacity(safe - *ctx + REDACTED.len());
    let mut copied = *ctx;
    for m in Matches::new(buf, *ctx, kinds) {
        if m.range.start >= safe {
            break;
        }
        out.extend_from_slice(&buf[copied..m.range.start]);
        out.extend_from_slice(REDACTED.as_bytes());
        findings.record(m.kind);
        copied = m.range.end;
    }
    let emit_to = copied.max(safe);
    out.extend_from_slice(&buf[copied..emit_to]);
    let keep_from = emit_to.saturating_sub(CONTEXT);
    buf.advance(keep_from);
    *ctx = emit_to - keep_from;
    out.freeze()
}

impl<B> Body for RedactBody<B>
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
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            let data = match this.head.take() {
                Some(head) => Some(head),
                None => match ready!(this.inner.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => Some(data),
                        Err(frame) => {
                            // Trailers end the body: flush what is held back first.
                            *this.trailers = frame.into_trailers().ok();
                            None
                        }
                    },
                    Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                    None => None,
                },
            };
            let last = data.is_none();
            if let Some(data) = data {
                this.buf.extend_from_slice(&data);
            }
            *this.done = last;
            let out = drain(this.buf, this.ctx, *this.kinds, this.findings, last);
            if last {
                // Release the context bytes too.
                *this.buf = BytesMut::new();
                *this.ctx = 0;
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // Each match changes the length, so it is unknown (chunked).
        SizeHint::default()
    }
}
