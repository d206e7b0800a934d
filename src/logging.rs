//! Logging to stderr with `tracing`: human text by default, JSON lines for log shippers.

use tracing::Level;

use crate::cli::LogFormat;

/// Installs the global subscriber. `-q` keeps warnings and errors, `-v` adds debug, `-vv` trace.
pub fn init(verbose: u8, quiet: bool, format: LogFormat) {
    let level = match (quiet, verbose) {
        (true, _) => Level::WARN,
        (false, 0) => Level::INFO,
        (false, 1) => Level::DEBUG,
        (false, _) => Level::TRACE,
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level);
    let _ = match format {
        LogFormat::Text => builder
            .without_time()
            .with_target(verbose > 0)
            .with_ansi(false)
            .try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
}
