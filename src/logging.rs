//! Log output: JSON lines (default) or human-readable text, on stderr. `RUST_LOG`
//! overrides the level (default `info`).
//!
//! Every line — tracing events and the audit line of each request — goes through one
//! non-blocking writer (`tracing-appender`): a request hands its line to a bounded queue
//! and a dedicated thread writes it, so no request waits on a `write` to stderr, and lines
//! from different sources never interleave. When the queue is full a line is dropped and
//! counted (`tokenizer_log_lines_dropped_total` in `/metrics`) rather than stall the
//! proxy.

use std::io::Write;
use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Lines queued for the writer thread at most. Audit lines are clipped (see
/// `audit::entry`), so this bounds the queue's memory too (~4096 × 16 KiB).
const QUEUE_LINES: usize = 4096;

struct Output {
    writer: NonBlocking,
    dropped: ErrorCounter,
    format: LogFormat,
}

static OUTPUT: OnceLock<Output> = OnceLock::new();

/// Start logging; `debug` (Go's `-debug`) makes our own default level `debug`. Keep the
/// guard until the process exits: dropping it flushes what is queued.
pub fn init(format: LogFormat, debug: bool) -> Option<WorkerGuard> {
    // Our own crate only: dependencies at debug level are noise.
    let default = if debug {
        "info,tokenizer=debug"
    } else {
        "info"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone());
    // A second init (tests calling run twice) keeps the first subscriber.
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    if installed.is_err() {
        return None;
    }
    let _ = OUTPUT.set(Output {
        writer,
        dropped,
        format,
    });
    Some(guard)
}

/// The log format, once logging has started.
pub fn format() -> Option<LogFormat> {
    OUTPUT.get().map(|o| o.format)
}

/// Queue one complete line (its newline included); dropped (and counted) when the queue
/// is full, a no-op before [`init`] (tests that run the proxy in-process).
pub fn write_line(line: &[u8]) {
    if let Some(out) = OUTPUT.get() {
        let mut writer = out.writer.clone();
        let _ = writer.write_all(line);
    }
}

/// Lines dropped because the queue was full.
pub fn dropped_lines() -> usize {
    OUTPUT.get().map_or(0, |o| o.dropped.dropped_lines())
}
