//! Log output: JSON lines (default) or human-readable text, on stderr. `RUST_LOG`
//! overrides the level (default `info`).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// `debug` (Go's `-debug`) makes the default level `debug`.
pub fn init(format: LogFormat, debug: bool) {
    // Our own crate only: dependencies at debug level are noise.
    let default = if debug {
        "info,tokenizer=debug"
    } else {
        "info"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests calling run twice) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}
