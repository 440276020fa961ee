//! Reading a body into memory (HMAC and SigV4 signing, PII scanning, token responses),
//! within two bounds: `MAX_BUFFERED_BODY` for one body (413 beyond), and a process-wide
//! budget for all bodies held at once (`BUFFERED_BODY_BUDGET`, 503 beyond), so that
//! many slow or stalled uploads cannot together take the process's memory. The budget
//! is charged as bytes arrive and released when the buffered body is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Body, BoxError, Stalled};

/// Why a body could not be read into memory.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    /// Larger than the per-body limit (413).
    #[error("request body too large to buffer")]
    TooLarge,
    /// Every byte of the buffering budget is taken (503).
    #[error("too many request bodies buffered at once; retry later")]
    Busy,
    /// Nothing arrived for the body timeout (408).
    #[error("request body stalled")]
    Stalled,
    /// The peer broke off or sent a malformed body (400).
    #[error("error reading request body")]
    Read,
}

/// Bytes every buffered body of the process may hold together.
#[derive(Clone, Debug)]
pub struct Budget {
    bytes: Arc<Semaphore>,
}

impl Budget {
    /// A budget of `bytes` bytes (capped at the semaphore's maximum permit count).
    pub fn new(bytes: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Bytes not charged to any body now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    fn charge(&self, n: usize) -> Result<Option<OwnedSemaphorePermit>, ReadError> {
        if n == 0 {
            return Ok(None);
        }
        let n = u32::try_from(n).map_err(|_| ReadError::TooLarge)?;
        self.bytes
            .clone()
            .try_acquire_many_owned(n)
            .map(Some)
            .map_err(|_| ReadError::Busy)
    }
}

/// A body read into memory, holding its share of the budget.
#[derive(Debug)]
pub struct Buffered {
    /// The body's data, as read.
    pub bytes: Bytes,
    permit: Option<OwnedSemaphorePermit>,
}

/// What [`read_bounded`] got.
pub enum Read {
    /// The whole body.
    Complete(Buffered),
    /// More than the limit: what was read, and the rest of the body, unread.
    Partial {
        /// What was read: more than the limit, ending with the chunk that passed it.
        head: Buffered,
        /// The body after `head`, still unread.
        rest: Body,
    },
}

impl Buffered {
    /// The bytes as a body that releases the budget when dropped (once sent).
    pub fn into_body(self) -> Body {
        HeldBody {
            bytes: Some(self.bytes),
            _permit: self.permit,
        }
        .boxed()
    }

    /// The bytes, then `rest`: a body's start read to judge it, put back in front of
    /// what was not read. The budget is held until the whole body is dropped.
    pub fn then(self, rest: Body) -> Body {
        /// Passes data on unchanged, holding the permit.
        struct Hold {
            _permit: Option<OwnedSemaphorePermit>,
        }
        impl super::Transform for Hold {
            fn push(&mut self, data: Bytes) -> Bytes {
                data
            }
            fn finish(&mut self) -> Bytes {
                Bytes::new()
            }
        }
        super::TransformBody::new(
            rest,
            Hold {
                _permit: self.permit,
            },
        )
        .with_head(self.bytes)
        .boxed()
    }

    /// Bytes charged to no budget.
    pub fn unbudgeted(bytes: Bytes) -> Self {
        Self {
            bytes,
            permit: None,
        }
    }

    /// The same budget for other bytes (a body rewritten from this one).
    pub fn replace(self, bytes: Bytes) -> Self {
        Self {
            bytes,
            permit: self.permit,
        }
    }
}

/// Read `body` until it ends or passes `limit` bytes, charging `budget` as bytes
/// arrive; `inspect` sees each chunk as it comes (to hash while reading). `declared`
/// (Content-Length) larger than the limit is refused before anything is read, unless
/// `partial` is wanted; a declared length within it is charged before anything is read,
/// so a body the budget cannot take is refused at once (before `100 Continue`).
pub async fn read_bounded(
    mut body: Body,
    limit: usize,
    declared: Option<u64>,
    budget: &Budget,
    partial: bool,
    mut inspect: impl FnMut(&[u8]),
) -> Result<Read, ReadError> {
    if !partial && declared.is_some_and(|n| n > limit as u64) {
        return Err(ReadError::TooLarge);
    }
    let reserved = declared.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX).min(limit));
    let mut acc = Accumulator::new(budget, reserved)?;
    while let Some(data) = next_data(&mut body).await? {
        let over = acc.buf.len() + data.len() > limit;
        if over && !partial {
            return Err(ReadError::TooLarge);
        }
        acc.add(&data, budget)?;
        inspect(&data);
        if over {
            return Ok(Read::Partial {
                head: acc.into_buffered(),
                rest: body,
            });
        }
    }
    Ok(Read::Complete(acc.into_buffered()))
}

/// Read the start of `body` until `enough` says the bytes so far (always from the
/// body's start) suffice — `Partial` with the rest unread — or the body ends
/// (`Complete`); more than `limit` bytes before either is `TooLarge`. `enough` is
/// called after each chunk: it should resume where it left off, so that a body sent a
/// byte at a time costs linear work.
pub async fn read_until(
    mut body: Body,
    limit: usize,
    budget: &Budget,
    mut enough: impl FnMut(&[u8]) -> bool,
) -> Result<Read, ReadError> {
    let mut acc = Accumulator::new(budget, 0)?;
    while let Some(data) = next_data(&mut body).await? {
        if acc.buf.len() + data.len() > limit {
            return Err(ReadError::TooLarge);
        }
        acc.add(&data, budget)?;
        if enough(&acc.buf) {
            return Ok(Read::Partial {
                head: acc.into_buffered(),
                rest: body,
            });
        }
    }
    Ok(Read::Complete(acc.into_buffered()))
}

/// Read and drop what is left of `body`, at most `limit` bytes and for at most `time`:
/// after an early refusal, so that the client, still sending, reads the answer instead
/// of a connection reset under its unread data.
pub async fn drain(mut body: Body, limit: usize, time: std::time::Duration) {
    let _ = tokio::time::timeout(time, async {
        let mut left = limit;
        while let Ok(Some(data)) = next_data(&mut body).await {
            if data.len() >= left {
                break;
            }
            left -= data.len();
        }
    })
    .await;
}

/// The next data chunk of `body` (trailers skipped), or `None` at its end.
async fn next_data(body: &mut Body) -> Result<Option<Bytes>, ReadError> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if e.is::<Stalled>() {
                ReadError::Stalled
            } else {
                ReadError::Read
            }
        })?;
        if let Ok(data) = frame.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

/// Bytes read so far and their charge to the budget (`reserved` charged up front).
struct Accumulator {
    buf: BytesMut,
    permit: Option<OwnedSemaphorePermit>,
    reserved: usize,
}

impl Accumulator {
    fn new(budget: &Budget, reserved: usize) -> Result<Self, ReadError> {
        Ok(Self {
            buf: BytesMut::new(),
            permit: budget.charge(reserved)?,
            reserved,
        })
    }

    fn add(&mut self, data: &[u8], budget: &Budget) -> Result<(), ReadError> {
        let unreserved =
            (self.buf.len() + data.len()).saturating_sub(self.reserved.max(self.buf.len()));
        if let Some(more) = budget.charge(unreserved)? {
            match &mut self.permit {
                Some(p) => p.merge(more),
                None => self.permit = Some(more),
            }
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn into_buffered(self) -> Buffered {
        Buffered {
            bytes: self.buf.freeze(),
            permit: self.permit,
        }
    }
}

/// A one-frame body that keeps a budget permit until it is dropped.
struct HeldBody {
    bytes: Option<Bytes>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(
            self.bytes
                .take()
                .filter(|b| !b.is_empty())
                .map(|b| Ok(Frame::data(b))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.bytes.as_ref().is_none_or(Bytes::is_empty)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.bytes.as_ref().map_or(0, |b| b.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(chunks: &[&'static [u8]]) -> Body {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed()
    }

    async fn read(
        chunks: &[&'static [u8]],
        limit: usize,
        budget: &Budget,
    ) -> Result<Read, ReadError> {
        read_bounded(body_of(chunks), limit, None, budget, false, |_| {}).await
    }

    #[tokio::test]
    async fn the_budget_is_held_until_the_body_is_dropped() {
        let budget = Budget::new(10);
        let Read::Complete(first) = read(&[b"abc", b"def"], 100, &budget).await.unwrap() else {
            panic!("complete");
        };
        assert_eq!(&first.bytes[..], b"abcdef");
        assert_eq!(budget.available(), 4);
        assert_eq!(
            read(&[b"12345"], 100, &budget).await.err(),
            Some(ReadError::Busy)
        );
        let body = first.into_body();
        assert_eq!(budget.available(), 4);
        let sent = body.collect().await.unwrap().to_bytes();
        assert_eq!(&sent[..], b"abcdef");
        assert_eq!(budget.available(), 10);
    }

    #[tokio::test]
    async fn limits_and_partial_reads() {
        let budget = Budget::new(1 << 20);
        assert_eq!(
            read(&[b"abc", b"def"], 5, &budget).await.err(),
            Some(ReadError::TooLarge)
        );
        let declared = read_bounded(body_of(&[b"x"]), 5, Some(6), &budget, false, |_| {}).await;
        assert_eq!(declared.err(), Some(ReadError::TooLarge));
        let Read::Partial { head, rest } = read_bounded(
            body_of(&[b"abc", b"def", b"gh"]),
            5,
            None,
            &budget,
            true,
            |_| {},
        )
        .await
        .unwrap() else {
            panic!("partial");
        };
        assert_eq!(&head.bytes[..], b"abcdef");
        assert_eq!(&rest.collect().await.unwrap().to_bytes()[..], b"gh");
        let mut seen = Vec::new();
        read_bounded(body_of(&[b"ab", b"cd"]), 5, None, &budget, false, |c| {
            seen.extend_from_slice(c)
        })
        .await
        .unwrap();
        assert_eq!(seen, b"abcd");
    }
}
