//! Log output: JSON lines (default) or human-readable text, on stderr. `RUST_LOG`
//! overrides the level (default `info`).
//!
//! Every line — tracing events and the audit line of each request — is appended to one
//! in-memory buffer, and a dedicated thread writes the buffer to stderr in batches: when
//! 64 KiB have gathered, and at least every 100 ms. A request never waits on a `write`,
//! lines never interleave, and under load one `write` carries hundreds of lines instead of
//! one line costing a thread wake-up and a system call (what a per-line queue, such as
//! `tracing-appender`'s, costs: about a third of a request's CPU time on one core). When
//! the buffer holds `BUFFER_LIMIT` bytes (stderr is stuck), lines are dropped and
//! counted (`tokenizer_log_lines_dropped` in `/metrics`) rather than stall the proxy.
//!
//! Hand-written: no maintained crate batches by size and time for a writer thread; the
//! whole of it is this file.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// `json` (one object per line) or `text`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (the default).
    #[default]
    Json,
    /// Human-readable text lines.
    Text,
}

/// Bytes waiting to be written at most; past it, lines are dropped and counted.
const BUFFER_LIMIT: usize = 8 * 1024 * 1024;
/// The writer thread is woken when this much is waiting …
const HIGH_WATER: usize = 64 * 1024;
/// … and writes at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The buffer shared by every producer and the writer thread.
struct Shared {
    buf: Mutex<Vec<u8>>,
    wake: Condvar,
    dropped: AtomicUsize,
    closing: AtomicBool,
}

struct Output {
    shared: Arc<Shared>,
    format: LogFormat,
}

static OUTPUT: OnceLock<Output> = OnceLock::new();

/// Flushes what is buffered and stops the writer thread when dropped.
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Shared {
    fn push(&self, line: &[u8]) {
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        if buf.len() + line.len() > BUFFER_LIMIT {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let below = buf.len() < HIGH_WATER;
        buf.extend_from_slice(line);
        if below && buf.len() >= HIGH_WATER {
            self.wake.notify_one();
        }
    }

    /// The writer thread: swap the buffer for an empty one (keeping both allocations)
    /// and write it, until closing and empty.
    fn run(&self) {
        let mut spare: Vec<u8> = Vec::with_capacity(HIGH_WATER);
        let stderr = std::io::stderr();
        loop {
            {
                let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
                if buf.len() < HIGH_WATER && !self.closing.load(Ordering::Acquire) {
                    buf = self
                        .wake
                        .wait_timeout(buf, FLUSH_EVERY)
                        .map(|(b, _)| b)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
                std::mem::swap(&mut *buf, &mut spare);
            }
            if !spare.is_empty() {
                // A failed write (stderr closed) loses these lines; nothing else can be
                // done with them.
                let _ = stderr.lock().write_all(&spare);
                // Keep a normal-sized allocation, not one a burst grew.
                if spare.capacity() > 4 * HIGH_WATER {
                    spare = Vec::with_capacity(HIGH_WATER);
                } else {
                    spare.clear();
                }
            } else if self.closing.load(Ordering::Acquire) {
                return;
            }
        }
    }
}

/// What tracing's formatter writes to: each event arrives as one `write` of a whole line.
#[derive(Clone)]
struct LineWriter(Arc<Shared>);

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.push(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LineWriter {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Start logging; `debug` (Go's `-debug`) makes our own default level `debug`. Keep the
/// guard until the process exits: dropping it writes what is buffered.
pub fn init(format: LogFormat, debug: bool) -> Option<LogGuard> {
    // Our own crate only: dependencies at debug level are noise.
    let default = if debug {
        "info,tokenizer=debug"
    } else {
        "info"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let shared = Arc::new(Shared {
        buf: Mutex::new(Vec::with_capacity(HIGH_WATER)),
        wake: Condvar::new(),
        dropped: AtomicUsize::new(0),
        closing: AtomicBool::new(false),
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LineWriter(shared.clone()));
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
    let writer = shared.clone();
    let thread = std::thread::Builder::new()
        .name("log-writer".to_owned())
        .spawn(move || writer.run())
        .ok()?;
    let _ = OUTPUT.set(Output {
        shared: shared.clone(),
        format,
    });
    Some(LogGuard {
        shared,
        thread: Some(thread),
    })
}

/// The log format, once logging has started.
pub fn format() -> Option<LogFormat> {
    OUTPUT.get().map(|o| o.format)
}

/// Buffer one complete line (its newline included); dropped (and counted) when the
/// buffer is full, a no-op before [`init`] (tests that run the proxy in-process).
pub fn write_line(line: &[u8]) {
    if let Some(out) = OUTPUT.get() {
        out.shared.push(line);
    }
}

/// Lines dropped because the buffer was full.
pub fn dropped_lines() -> usize {
    OUTPUT
        .get()
        .map_or(0, |o| o.shared.dropped.load(Ordering::Relaxed))
}

/// A list of things for a log field, comma-separated; `off` when empty (an optional
/// listener that is not configured).
pub fn listed<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let text = items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    if text.is_empty() {
        "off".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared {
            buf: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            dropped: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
        }
    }

    #[test]
    fn a_full_buffer_drops_and_counts_whole_lines() {
        let s = shared();
        let line = vec![b'x'; 1024 * 1024];
        for _ in 0..8 {
            s.push(&line);
        }
        s.push(b"one more\n");
        assert_eq!(s.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(s.buf.lock().unwrap().len(), BUFFER_LIMIT);
    }
}
