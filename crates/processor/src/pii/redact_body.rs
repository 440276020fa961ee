//! Streaming PII redaction for text bodies of any size.
//!
//! Each chunk is appended to a bounded tail and scanned. Bytes are emitted only once no
//! later data can change them: a match starting more than `MAX_MATCH_LEN + CONTEXT`
//! bytes before the end of what has arrived is complete, and so is every byte before
//! it. The rest (at most [`MAX_CARRY`] bytes, including a little
//! already-emitted left context) waits for the next chunk. The output is the same as
//! redacting the whole body at once, however it is chunked.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};

use super::detect::{CONTEXT, MAX_MATCH_LEN, Matches, REDACTED};
use super::findings::Findings;
use super::kind::KindSet;
use tokenizer_http::body::{Transform, TransformBody};

/// Bytes held back because a match starting in them may not have arrived in full.
const HOLD: usize = MAX_MATCH_LEN + CONTEXT;

/// Wait for this many bytes past [`HOLD`] before scanning, so that tiny chunks do not
/// each cost a scan of the whole tail.
const BATCH: usize = 4096;

/// A body that replaces every PII match with `[REDACTED]` and counts what it replaced
/// in a shared [`Findings`].
pub type RedactBody<B> = TransformBody<B, Redacting>;

/// Most bytes held between chunks, whatever the body size.
pub const MAX_CARRY: usize = CONTEXT + HOLD + BATCH;

/// The streaming state of one redacted body.
pub struct Redacting {
    kinds: KindSet,
    findings: Arc<Findings>,
    // `buf[..ctx]` was emitted and is kept as left context; `buf[ctx..]` is pending.
    buf: BytesMut,
    ctx: usize,
}

/// `inner` with every PII match of `kinds` redacted.
pub fn redact_body<B>(inner: B, kinds: KindSet, findings: Arc<Findings>) -> RedactBody<B> {
    TransformBody::new(
        inner,
        Redacting {
            kinds,
            findings,
            buf: BytesMut::new(),
            ctx: 0,
        },
    )
}

impl Redacting {
    /// Bytes currently held back (context plus pending), for bound checks.
    pub fn carry_len(&self) -> usize {
        self.buf.len()
    }
}

impl Transform for Redacting {
    fn push(&mut self, data: Bytes) -> Bytes {
        self.buf.extend_from_slice(&data);
        drain(
            &mut self.buf,
            &mut self.ctx,
            self.kinds,
            &self.findings,
            false,
        )
    }

    fn finish(&mut self) -> Bytes {
        let out = drain(
            &mut self.buf,
            &mut self.ctx,
            self.kinds,
            &self.findings,
            true,
        );
        // Release the context bytes too.
        self.buf = BytesMut::new();
        self.ctx = 0;
        out
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
