//! Output that tells the truth: a closed or full stdout never panics, a failure after the
//! firewall changed says so (exit [`EXIT_CHANGED_OUTPUT_FAILED`]), and `--json` prints one
//! JSON document on failure too.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::backends::BackendKind;

/// Exit code when the firewall was changed but the report could not be written to stdout
/// (closed pipe, full disk): not 0, and not 1 (which means "nothing was changed").
pub const EXIT_CHANGED_OUTPUT_FAILED: u8 = 4;

static APPLIED: AtomicBool = AtomicBool::new(false);
static BACKEND: Mutex<Option<&'static str>> = Mutex::new(None);

/// Records that a backend changed the firewall in this run.
pub fn mark_applied() {
    APPLIED.store(true, Ordering::SeqCst);
}

/// True when a backend changed the firewall in this run.
pub fn applied() -> bool {
    APPLIED.load(Ordering::SeqCst)
}

/// Records the chosen backend (for the `--json` error document) and passes it on.
pub fn chosen(kind: BackendKind) -> BackendKind {
    if let Ok(mut backend) = BACKEND.lock() {
        *backend = Some(kind.as_str());
    }
    kind
}

/// The chosen backend's name, once chosen.
pub fn backend() -> Option<&'static str> {
    BACKEND.lock().ok().and_then(|b| *b)
}

/// Writing to stdout failed: the report is lost, whatever the command did.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to stdout: {0}")]
pub struct OutputError(#[source] pub io::Error);

/// Writes `bytes` to stdout and flushes.
pub fn write_stdout(bytes: &[u8]) -> Result<(), OutputError> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(OutputError)
}

/// Flushes what `println!` left buffered.
pub fn flush_stdout() -> Result<(), OutputError> {
    io::stdout().flush().map_err(OutputError)
}

/// The reason of a `println!` panic ("failed printing to stdout: Broken pipe"), if the
/// panic `payload` is one.
pub fn stdout_panic(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())?;
    text.strip_prefix("failed printing to stdout: ")
        .map(str::to_string)
}

/// Replaces the panic hook with one that stays silent for a failed `println!` (main reports
/// it in one line) and keeps the default report for every other panic.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if stdout_panic(info.payload()).is_none() {
            default(info);
        }
    }));
}

/// One line on stderr (ignored when stderr is gone too).
pub fn error_line(text: &str) {
    let _ = writeln!(io::stderr(), "cf-allow: error: {text}");
}

/// Reports a lost report and returns the exit code: [`EXIT_CHANGED_OUTPUT_FAILED`] when
/// the firewall was changed, else 1.
pub fn output_failed(reason: &str) -> u8 {
    if applied() {
        error_line(&format!(
            "the firewall WAS changed, but the report could not be written to stdout ({reason}); run `cf-allow status` to see the result"
        ));
        EXIT_CHANGED_OUTPUT_FAILED
    } else {
        error_line(&format!(
            "cannot write to stdout ({reason}); the firewall was not changed"
        ));
        1
    }
}

/// The `--json` document printed on failure: `{"error": …, "backend": …, "changed": …}`.
pub fn error_json(message: &str) -> serde_json::Value {
    serde_json::json!({
        "error": message,
        "backend": backend(),
        "changed": applied(),
    })
}
